"""Speed and memory of NCL against its DeepLabV3+ baseline and IMDL-BenCo baselines, measured side by side.

    python benchmarks/speed.py --backbone resnet50 --image_size 256 --device cpu
    python benchmarks/speed.py --backbone resnet101 --image_size 512 --device cuda --amp --batch 8
    python benchmarks/speed.py --amp_vs_float32 --backbone resnet10t --output_stride 16 --decoder_channels 64 \
        --patch_size 16 --batch 8 --channels_last --device cpu     # the casia-cpu network: AMP against float32

Timings are interleaved (A B B A A B ... after warm-up) and the median of the
repeats is reported, so that both models see the same machine state; the
figures to compare are the ratios of one run, never absolute times across
runs. Peak memory is measured in a fresh process per model: CUDA's
max_memory_allocated, or on a CPU the growth of the resident set's high-water
mark (VmHWM) over the process after its imports, the median of several
probe processes per model run in turn (the resident set of one process
varies by a few percent with the allocator's state). Beside it, the bytes
autograd saves for the backward pass of one training forward: a
deterministic count of the activation memory a method adds. The last line
states NCL's three ratios over deeplabv3plus against the targets.

--amp_vs_float32 times each of ncl and deeplabv3plus twice, under autocast (float16 on CUDA, or
bfloat16 with --bf16; bfloat16 on a CPU) and in float32, the four interleaved in one run, the same
weights in both precisions; its last line states AMP's ratios to float32 against AMP_TARGETS.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

warnings.filterwarnings("ignore")

TARGETS = {"train": 1.05, "inference": 1.01, "memory": 1.05}
# AMP's time over float32's, per model (--amp_vs_float32)
AMP_TARGETS = {"train": 0.65, "inference": 0.6}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--output_stride", default=8, type=int)
    p.add_argument("--patch_size", default=32, type=int)
    p.add_argument("--image_size", default=256, type=int)
    p.add_argument("--batch", default=2, type=int)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--decoder_channels", default=256, type=int, help="ASPP and decoder width of ncl and deeplabv3plus")
    p.add_argument("--amp", action="store_true", help="autocast: CUDA's float16 (bfloat16 with --bf16), a CPU's bfloat16")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--amp_vs_float32", action="store_true", help="ncl and deeplabv3plus under AMP and in float32, side by side")
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--warmup", default=2, type=int)
    p.add_argument("--repeats", default=6, type=int, help="interleaved training repeats (inference gets four times as many)")
    p.add_argument("--baselines", default="segformer,IML_ViT,Mesorch,unet", help="IMDL-BenCo models to time too ('' for none)")
    p.add_argument("--baseline_repeats", default=3, type=int)
    p.add_argument("--grids", default="4,8,16,32,64", help="patch grids (per side) for the sampler-and-losses curve ('' to skip)")
    p.add_argument("--no_memory", action="store_true", help="skip the per-model memory processes")
    p.add_argument("--memory_repeats", default=3, type=int, help="probe processes per model (median)")
    p.add_argument("--out", default="speed.json")
    p.add_argument("--threads", default=None, type=int, help="torch threads (default: torch's)")
    p.add_argument("--memory_probe", default=None, help=argparse.SUPPRESS)
    # gpu_check.py --fault slow-ncl: NCL's training step made this many times as long (its check must fail)
    p.add_argument("--slow_ncl", default=1.0, type=float, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------- models and batches
def build(name, args, empty_weights):
    """(model, note): the model on the device, or (None, why it cannot run here)."""
    import contextlib
    import io

    import torch
    from IMDLBenCo.registry import MODELS

    import ncl_plugin  # noqa: F401

    size = args.image_size
    kwargs = {
        "ncl": dict(backbone=args.backbone, output_stride=args.output_stride, patch_size=args.patch_size,
                    decoder_channels=args.decoder_channels),
        "deeplabv3plus": dict(backbone=args.backbone, output_stride=args.output_stride, patch_size=args.patch_size,
                              decoder_channels=args.decoder_channels),
        "segformer": dict(pretrain_pth_path=empty_weights),  # an empty file: random initialisation
        "IML_ViT": dict(input_size=size, vit_pretrain_path=None),
        "Mesorch": dict(seg_pretrain_path=None, conv_pretrain=False),
    }.get(name, {})
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = MODELS.get(name)(**kwargs)
    except Exception as err:  # noqa: BLE001 -- report why a third-party model cannot be built here
        return None, f"cannot build without downloads: {type(err).__name__}: {str(err).splitlines()[0][:90]}"
    model.to(args.device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, ""


def make_batch(args):
    import torch

    size, batch = args.image_size, args.batch
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(batch, 1, size, size)
    for b in range(batch):
        top, left = torch.randint(0, size // 2, (2,), generator=g).tolist()
        mask[b, :, top : top + size // 3, left : left + size // 4] = 1
    image = torch.randn(batch, 3, size, size, generator=g)
    if args.channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    device = args.device
    return {
        "image": image.to(device),
        "mask": mask.to(device),
        "label": torch.ones(batch, dtype=torch.long, device=device),
        "edge_mask": torch.zeros_like(mask).to(device),
        "shape": torch.tensor([[size, size]] * batch, device=device),
    }


def autocast(args, amp=None):
    """``--amp``'s autocast (``amp`` overrides it): float16 on CUDA (bfloat16 with --bf16), bfloat16 on a CPU."""
    import torch

    if not (args.amp if amp is None else amp):
        return nullcontext()
    if args.device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16 if args.bf16 else torch.float16)
    return torch.autocast("cpu", dtype=torch.bfloat16)


def sync(args):
    import torch

    if args.device.startswith("cuda"):
        torch.cuda.synchronize()


class Runner:
    """One model's training step and inference, timed."""

    def __init__(self, model, args, batch, amp=None):
        import torch

        self.model, self.args, self.batch = model, args, batch
        self.amp = args.amp if amp is None else amp
        self.slow = 1.0  # a seeded fault's factor (--slow_ncl)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and args.device.startswith("cuda") and not args.bf16)

    def train_step(self) -> float:
        self.model.train()
        sync(self.args)
        start = time.perf_counter()
        with autocast(self.args, self.amp):
            loss = self.model(**self.batch, if_predcit_label=False)["backward_loss"]
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        sync(self.args)
        if self.slow > 1:
            time.sleep((self.slow - 1) * (time.perf_counter() - start))
        return time.perf_counter() - start

    def inference(self) -> float:
        import torch

        self.model.eval()
        sync(self.args)
        start = time.perf_counter()
        with torch.no_grad(), autocast(self.args, self.amp):
            self.model(image=self.batch["image"], mask=self.batch["mask"], label=self.batch["label"],
                       edge_mask=self.batch["edge_mask"], shape=self.batch["shape"])
        sync(self.args)
        return (time.perf_counter() - start) / self.args.batch


def interleaved(runners, method, warmup, repeats):
    """{name: median seconds}, running the models in turn on every repeat."""
    for _ in range(warmup):
        for runner in runners.values():
            getattr(runner, method)()
    times = {name: [] for name in runners}
    order = list(runners)
    for repeat in range(repeats):
        # A B, then B A: a machine that slowly speeds up or slows down favours neither model.
        for name in order if repeat % 2 == 0 else order[::-1]:
            times[name].append(getattr(runners[name], method)())
    return {name: statistics.median(values) for name, values in times.items()}


# ---------------------------------------------------------------- memory
def _status(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise OSError(field)


def memory_probe(args):
    """Run in a fresh process: the peak memory of training steps of one model, in bytes."""
    import torch

    empty = _empty_weights()
    cpu = not args.device.startswith("cuda")
    if cpu:
        with open("/proc/self/clear_refs", "w") as handle:  # reset VmHWM to the current resident set
            handle.write("5")
        before = _status("VmRSS")
    model, note = build(args.memory_probe, args, empty)
    if model is None:
        return {"error": note}
    runner = Runner(model, args, make_batch(args))
    if not cpu:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        runner.train_step()
    saved = saved_for_backward(runner)
    if cpu:
        return {"peak_bytes": _status("VmHWM") - before, "kind": "peak RSS growth", "saved_bytes": saved}
    return {"peak_bytes": torch.cuda.max_memory_allocated(), "kind": "CUDA max allocated", "saved_bytes": saved}


def saved_for_backward(runner) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass of one training forward."""
    import torch

    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    runner.model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(runner.args):
        loss = runner.model(**runner.batch, if_predcit_label=False)["backward_loss"]
    del loss
    return sum(storages.values())


def _probe(name, argv):
    command = [sys.executable, __file__, *argv, "--memory_probe", name]
    # One malloc arena: the resident set then depends less on which thread allocated what.
    env = {**os.environ, "MALLOC_ARENA_MAX": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": (result.stderr.strip().splitlines() or ["no output"])[-1][:120]}


def measure_memory(names, argv, repeats):
    """{name: probe result with the median peak}, probing the models in turn, ``repeats`` times each."""
    probes = {name: [] for name in names}
    for _ in range(max(repeats, 1)):
        for name in names:
            probes[name].append(_probe(name, argv))
    out = {}
    for name, results in probes.items():
        good = [r for r in results if "peak_bytes" in r]
        if not good:
            out[name] = results[0]
            continue
        peaks = [r["peak_bytes"] for r in good]
        out[name] = {**good[0], "peak_bytes": statistics.median(peaks), "peak_range": [min(peaks), max(peaks)]}
    return out


# ---------------------------------------------------------------- sampler and losses alone
def sampler_curve(args, grids):
    """Sampler + contrastive loss + pivot-consistent loss, forward and backward, per patch grid."""
    import torch

    from ncl_plugin import NCLContrastiveLoss, PivotConsistentLoss, TriClassPatchSampler

    size, batch, channels = args.image_size, args.batch, 256
    g = torch.Generator().manual_seed(1)
    mask = torch.zeros(batch, 1, size, size)
    for b in range(batch):
        mask[b, :, size // 5 : size // 5 + size // 2, size // 6 : size // 6 + size // 3] = 1
    rows = []
    for grid in grids:
        patch = size // grid
        if patch % 4 or patch < 4:
            rows.append({"grid": grid, "patch_size": patch, "note": "patch size not a multiple of 4"})
            continue
        for cap in (256, 0):
            sampler = TriClassPatchSampler(patch_size=patch).to(args.device)
            contrastive = NCLContrastiveLoss(channels, temperature=0.1, max_anchors=cap).to(args.device)
            pc = PivotConsistentLoss(contour_weight=0.7, patch_size=patch)
            features = torch.rand(batch, channels, size // 4, size // 4, generator=g).to(args.device).requires_grad_(True)
            logits = [torch.randn(batch, 1, size // f, size // f, generator=g).to(args.device).requires_grad_(True) for f in (8, 4, 2, 1)]
            m = mask.to(args.device)

            def step():
                sync(args)
                start = time.perf_counter()
                with autocast(args):
                    loss = contrastive(sampler(features, m))["loss"] + pc(logits, m)["loss"]  # noqa: B023 (timed within this iteration)
                loss.backward()
                sync(args)
                return time.perf_counter() - start

            for _ in range(args.warmup):
                step()
            seconds = statistics.median(step() for _ in range(args.repeats))
            rows.append({"grid": grid, "patch_size": patch, "max_anchors": cap or "none", "ms": 1000 * seconds})
    return rows


# ---------------------------------------------------------------- AMP against float32
def amp_vs_float32(args, argv):
    """ncl and deeplabv3plus, each under autocast and in float32 (the same weights), the four runners
    interleaved; memory probed in fresh processes, the precisions in turn."""
    import copy

    import torch

    amp_dtype = "float16" if args.device.startswith("cuda") and not args.bf16 else "bfloat16"
    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    setting = (f"{args.backbone}, output stride {args.output_stride}, decoder {args.decoder_channels}, "
               f"{args.image_size}x{args.image_size}, batch {args.batch}, {args.device}"
               + (", channels_last" if args.channels_last else ""))
    print(f"benchmarks/speed.py --amp_vs_float32 on {machine}: {setting}; AMP {amp_dtype}; torch {torch.__version__}; "
          f"{time.strftime('%Y-%m-%d')}")
    empty, batch = _empty_weights(), make_batch(args)
    names = ["ncl", "deeplabv3plus"]
    runners = {}
    for name in names:
        model, note = build(name, args, empty)
        if model is None:
            raise SystemExit(f"{name}: {note}")
        runners[(name, "float32")] = Runner(model, args, batch, amp=False)
        runners[(name, amp_dtype)] = Runner(copy.deepcopy(model), args, batch, amp=True)
    train = interleaved(runners, "train_step", args.warmup, args.repeats)
    infer = interleaved(runners, "inference", args.warmup, 4 * args.repeats)
    memory = {}
    if not args.no_memory:
        plain = [a for a in argv if a not in ("--amp_vs_float32", "--amp")]
        for _ in range(max(args.memory_repeats, 1)):
            for name in names:
                for precision, extra in (("float32", []), (amp_dtype, ["--amp"])):
                    memory.setdefault((name, precision), []).append(_probe(name, plain + extra))
    rows, results, ratios = [], {}, {}
    for (name, precision) in runners:
        base = (name, "float32")
        peaks = [p["peak_bytes"] for p in memory.get((name, precision), []) if "peak_bytes" in p]
        peak = statistics.median(peaks) if peaks else None
        base_peaks = [p["peak_bytes"] for p in memory.get(base, []) if "peak_bytes" in p]
        results[f"{name} {precision}"] = {"train_s": train[(name, precision)],
                                          "inference_s_per_image": infer[(name, precision)],
                                          "peak_bytes": peak, "peak_range": [min(peaks), max(peaks)] if peaks else None}
        ratio = {"train": train[(name, precision)] / train[base], "inference": infer[(name, precision)] / infer[base],
                 "memory": peak / statistics.median(base_peaks) if peak and base_peaks else None}
        if precision != "float32":
            ratios[name] = ratio
        rows.append([name, precision, fmt_ms(train[(name, precision)]), f"{ratio['train']:.3f}",
                     fmt_ms(infer[(name, precision)]), f"{ratio['inference']:.3f}",
                     "n/a" if peak is None else f"{peak / 2**20:.0f}",
                     "n/a" if ratio["memory"] is None else f"{ratio['memory']:.3f}"])
    kind = "CUDA max allocated" if args.device.startswith("cuda") else "peak RSS growth"
    print_table(f"training step (ms / batch of {args.batch}), inference (ms / image), peak memory ({kind}, MiB, "
                f"median of {args.memory_repeats}); ratios to the same model in float32",
                ["model", "precision", "train ms", "train ratio", "infer ms", "infer ratio", "peak MiB", "peak ratio"], rows)
    report = {"machine": machine, "setting": setting, "amp": amp_dtype, "date": time.strftime("%Y-%m-%d"),
              "torch": torch.__version__, "args": vars(args), "models": results, "ratios": ratios, "targets": AMP_TARGETS}
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"Wrote {args.out}")
    verdicts = [f"{name} {key} {r[key]:.3f}x ({'ok' if r[key] <= AMP_TARGETS[key] else 'over'} <= {AMP_TARGETS[key]})"
                for name, r in ratios.items() for key in AMP_TARGETS]
    within = all(r[key] <= AMP_TARGETS[key] for r in ratios.values() for key in AMP_TARGETS)
    print(f"AMP ({amp_dtype}) / float32 ({setting}): " + ", ".join(verdicts)
          + ("; all within targets" if within else "; NOT all within targets"))
    return 0


# ---------------------------------------------------------------- report
def _empty_weights():
    import tempfile

    from ncl_plugin.zoo.recipes import empty_weight_file

    return str(empty_weight_file(Path(tempfile.gettempdir()) / "ncl_speed"))


def print_table(title, header, rows):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in header:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160).print(table)


def fmt_ms(seconds):
    return "n/a" if seconds is None else f"{1000 * seconds:.1f}"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.memory_probe:
        print(json.dumps(memory_probe(args)))
        return 0

    if args.amp_vs_float32:
        return amp_vs_float32(args, argv)

    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    setting = f"{args.backbone}, {args.image_size}x{args.image_size}, batch {args.batch}, {args.device}" + (" AMP" if args.amp else "")
    print(f"benchmarks/speed.py on {machine}: {setting}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")

    empty = _empty_weights()
    batch = make_batch(args)
    names = ["ncl", "deeplabv3plus"] + [b for b in args.baselines.split(",") if b]
    runners, notes = {}, {}
    for name in names:
        model, note = build(name, args, empty)
        if model is None:
            notes[name] = note
            continue
        runner = Runner(model, args, batch)
        if name == "ncl":
            runner.slow = args.slow_ncl
        try:
            runner.train_step()
        except Exception as err:  # noqa: BLE001 -- a baseline that does not run at this size is reported, not fatal
            notes[name] = f"does not run at {args.image_size}: {type(err).__name__}: {str(err).splitlines()[0][:80]}"
            continue
        runners[name] = runner

    core = {k: v for k, v in runners.items() if k in ("ncl", "deeplabv3plus")}
    others = {k: v for k, v in runners.items() if k not in core}
    train = interleaved(core, "train_step", args.warmup, args.repeats)
    # Inference is the tightest target (1 %), so it gets more repeats to bring the median's noise under it.
    infer = interleaved(core, "inference", args.warmup, 4 * args.repeats)
    if others:
        train.update(interleaved(others, "train_step", 1, args.baseline_repeats))
        infer.update(interleaved(others, "inference", 1, args.baseline_repeats))
    memory = {} if args.no_memory else measure_memory(list(runners), argv, args.memory_repeats)

    base = "deeplabv3plus"
    rows, results = [], {}
    for name in names:
        if name not in runners:
            rows.append([name, "-", "-", "-", "-", "see below"])
            results[name] = {"note": notes[name]}
            continue
        peak = memory.get(name, {}).get("peak_bytes")
        params = sum(p.numel() for p in runners[name].model.parameters())
        saved = memory.get(name, {}).get("saved_bytes")
        results[name] = {"train_s": train[name], "inference_s_per_image": infer[name], "peak_bytes": peak,
                         "peak_range": memory.get(name, {}).get("peak_range"), "saved_bytes": saved, "parameters": params}
        rows.append([
            name, f"{params / 1e6:.1f}", fmt_ms(train[name]), f"{train[name] / train[base]:.3f}", fmt_ms(infer[name]),
            f"{infer[name] / infer[base]:.3f}", "n/a" if peak is None else f"{peak / 2**20:.0f}",
            "n/a" if saved is None else f"{saved / 2**20:.0f}",
        ])
    kind = "CUDA max allocated" if args.device.startswith("cuda") else "peak RSS growth"
    print_table(f"training step (ms / batch of {args.batch}), inference (ms / image), peak memory ({kind}, MiB, "
                f"median of {args.memory_repeats}), saved for backward (MiB); ratios to {base}",
                ["model", "params M", "train ms", "train ratio", "infer ms", "infer ratio", "peak MiB", "saved MiB"], rows)
    for name, note in notes.items():
        print(f"  {name}: {note}")

    curve = sampler_curve(args, [int(g) for g in args.grids.split(",") if g]) if args.grids else []
    if curve:
        print_table("sampler + NCL loss + pivot-consistent loss alone, forward + backward (ms)",
                    ["grid", "patch", "max_anchors", "ms"],
                    [[r["grid"], r["patch_size"], r.get("max_anchors", "-"), f"{r['ms']:.1f}" if "ms" in r else r["note"]] for r in curve])

    ratios = {
        "train": train["ncl"] / train[base],
        "inference": infer["ncl"] / infer[base],
        "memory": (memory["ncl"]["peak_bytes"] / memory[base]["peak_bytes"])
        if all("peak_bytes" in memory.get(k, {}) for k in ("ncl", base)) else None,
    }
    if all(memory.get(k, {}).get("saved_bytes") for k in ("ncl", base)):
        print(f"  saved for backward, NCL / {base}: {memory['ncl']['saved_bytes'] / memory[base]['saved_bytes']:.3f}x")
    report = {"machine": machine, "setting": setting, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
              "args": vars(args), "models": results, "sampler_curve": curve, "ratios": ratios, "targets": TARGETS}
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"Wrote {args.out}")

    verdicts = []
    for key, value in ratios.items():
        if value is None:
            verdicts.append(f"{key} n/a")
        else:
            verdicts.append(f"{key} {value:.3f}x ({'ok' if value <= TARGETS[key] else 'over'} <= {TARGETS[key]})")
    within = all(v is not None and v <= TARGETS[k] for k, v in ratios.items())
    print(f"NCL / deeplabv3plus ({setting}): " + ", ".join(verdicts) + ("; all within targets" if within else "; NOT all within targets"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

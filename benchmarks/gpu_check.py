"""The first GPU's checks: every CUDA path of the plugin, in one run that fits in ten minutes of a GPU machine.

    python benchmarks/gpu_check.py OUT                  # on a GPU machine: every check, within --budget (480 s)
    python benchmarks/gpu_check.py OUT --rehearse       # the same steps at tiny sizes on the CPU
    python benchmarks/gpu_check.py OUT --rehearse --only train-ncl-channels_last,test

The checks run in the order of what they are worth, each under its own time limit and all of them
under --budget; a check that fails or runs out of time is recorded and the next one runs:

  versions                 Python, torch, CUDA, the device, IMDL-BenCo, timm, numpy, albumentations
                           (an import that fails stops the run here, in one line)
  data                     a small synthetic set, built once for every later check
  train-<model>-<variant>  benco train, ncl and deeplabv3plus, with AMP float16, with bfloat16, and
                           with --channels_last: loss, finite gradients, seconds per step
  torchrun-syncbn          torchrun --nproc_per_node=1 over nccl, SyncBatchNorm converted as
                           IMDL-BenCo's train.py converts it
  test, test-robust,       on the checkpoint the first passing ncl check trained
  predict, complexity
  sigterm-resume           SIGTERM in the middle of an epoch, then --resume auto
  imdlbenco-train-py       IMDL-BenCo's own train.py from `benco init`, with the one import line
  speed                    benchmarks/speed.py at the paper's scale: ncl against deeplabv3plus,
                           segformer, IML_ViT and Mesorch
  equal-steps              if the budget still holds its limit: ncl, ncl:contrast_weight=0 and
                           deeplabv3plus through `benco bench`, at equal steps on a larger embedded set

--rehearse runs the same steps and command lines on a CPU at tiny sizes: --device cpu, so torchrun
takes gloo where a GPU takes nccl; AMP and IMDL-BenCo's train.py, which need CUDA, are reported
skipped, and speed.py times segformer and Mesorch only (IML_ViT alone takes minutes on a CPU). OUT receives gpu_check.json (rewritten after every check: status, figures, seconds and the
end of its log, so that a run killed half-way still says what it did), logs/<check>.log, and work/
(the data, the runs, their checkpoints: large, nothing to send back). The summary table comes
last. docs/development.md says how to start it on a GPU machine.

Each `benco train` runs under this script's --observe mode, which is `benco` itself with three
things watched: IMDL-BenCo's autocast (switched to bfloat16 for the bfloat16 checks, since its
trainer always asks for float16), every optimiser step's loss and gradient norm, and the
SyncBatchNorm conversion.
"""
import argparse
import importlib
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

SCRIPT = Path(__file__).resolve()
FORMAT = 1
RESULTS = "gpu_check.json"
OBSERVED = "gpu_check observed: "
TAIL_LINES, TAIL_CHARS = 40, 4000
MIN_START_S = 15  # a check with less time left than this is not started
STOP_GRACE_S = 10  # after SIGTERM, before SIGKILL
# (label, module, distribution) in the order they are imported: the first that fails is the one to name.
IMPORTS = [
    ("torch", "torch", "torch"),
    ("torchvision", "torchvision", "torchvision"),
    ("numpy", "numpy", "numpy"),
    ("IMDL-BenCo", "IMDLBenCo", "imdlbenco"),
    ("timm", "timm", "timm"),
    ("albumentations", "albumentations", "albumentations"),
    ("opencv", "cv2", "opencv-python-headless"),
    ("fvcore", "fvcore", "fvcore"),
    ("ncl_plugin", "ncl_plugin", "ncl-imdlbenco"),
]


# ---------------------------------------------------------------- sizes
@dataclass
class Scale:
    """Everything that differs between a GPU run and the CPU rehearsal; the command lines do not."""

    network: List[str]  # NCL's network flags (none on a GPU: the defaults are the paper's)
    device: List[str]  # flags every benco command gets
    image_size: int
    batch_size: int
    test_batch_size: int
    data_images: int  # the synthetic set (a fifth of it is the test set)
    complexity_size: int
    speed: List[str]
    bench: List[str]
    budget_s: int
    limits: Dict[str, int]


GPU = Scale(
    network=[],
    device=[],
    image_size=256,
    batch_size=4,
    test_batch_size=8,
    data_images=100,
    complexity_size=512,
    speed=["--backbone", "resnet101", "--output_stride", "8", "--patch_size", "32", "--image_size", "512",
           "--batch", "8", "--amp", "--device", "cuda", "--baselines", "segformer,IML_ViT,Mesorch",
           "--memory_repeats", "1", "--grids", "8,16"],
    bench=["--config", "quickstart", "--epochs", "3", "--synthetic_images", "2000", "--device", "cuda"],
    budget_s=480,
    limits={"versions": 60, "data": 90, "train": 120, "torchrun-syncbn": 150, "test": 90, "test-robust": 90,
            "predict": 90, "complexity": 90, "sigterm-resume": 180, "imdlbenco-train-py": 150, "speed": 240,
            "equal-steps": 180},
)
REHEARSAL = Scale(
    network=["--backbone", "resnet18", "--output_stride", "16", "--patch_size", "16"],
    device=["--device", "cpu", "--num_workers", "0"],
    image_size=64,
    batch_size=2,
    test_batch_size=4,
    data_images=20,
    complexity_size=64,
    speed=["--backbone", "resnet18", "--output_stride", "16", "--patch_size", "16", "--image_size", "64",
           "--batch", "2", "--device", "cpu", "--baselines", "segformer,Mesorch", "--warmup", "0",
           "--repeats", "1", "--baseline_repeats", "1", "--memory_repeats", "1", "--grids", "4"],
    bench=["--config", "quickstart", "--epochs", "1", "--synthetic_images", "40", "--image_size", "64",
           "--batch_size", "4", "--device", "cpu", "--num_workers", "0"],
    # Loose: on a CPU shared with other work a step of these runs took from 0.7 s to 157 s (2 cores);
    # here the limits only stop a check that hangs.
    budget_s=5400,
    limits={"versions": 300, "data": 300, "train": 900, "torchrun-syncbn": 900, "test": 600, "test-robust": 600,
            "predict": 600, "complexity": 600, "sigterm-resume": 1200, "imdlbenco-train-py": 600, "speed": 1200,
            "equal-steps": 1200},
)


# ---------------------------------------------------------------- records and outcomes
@dataclass
class Record:
    """One check's line in gpu_check.json."""

    name: str
    title: str
    status: str = "not run"  # passed, failed, skipped; "not run" only in a file written before the check's turn
    seconds: float = 0.0
    limit_s: int = 0
    figures: Dict = field(default_factory=dict)
    brief: str = ""  # the figures that matter, in one line of the summary table
    note: str = ""  # why it failed or was skipped
    log: str = ""
    log_tail: str = ""


class Failed(Exception):
    """The check ran and found something wrong; the message says what."""


class Skipped(Exception):
    """The check does not apply here (a CUDA-only step in the rehearsal, a missing prerequisite)."""


class OutOfTime(Exception):
    pass


class ImportStop(Exception):
    """An import failed, or a GPU run sees no GPU: nothing later can run."""


class UsageError(Exception):
    """A bad flag or output folder, said in one line."""


# ---------------------------------------------------------------- running commands
class Context:
    """The run's folders, sizes, clock, and what earlier checks left for later ones."""

    def __init__(self, out: Path, rehearse: bool, budget: float):
        self.out, self.rehearse = out, rehearse
        self.scale = REHEARSAL if rehearse else GPU
        self.logs, self.work = out / "logs", out / "work"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.run_deadline = time.monotonic() + budget
        self.check_deadline = self.run_deadline
        self.log: Optional[Path] = None
        self.data: Optional[Path] = None  # the synthetic set (check "data")
        self.train_images = 0
        self.checkpoint: Optional[Path] = None  # the first passing ncl training run's folder
        self.device_name = "CPU (rehearsal)" if rehearse else "unknown GPU"

    def left(self) -> float:
        return self.check_deadline - time.monotonic()

    def env(self) -> Dict[str, str]:
        # A cache of its own: the embedded sets that benco bench builds stay inside OUT.
        return {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1",
                "NCL_CACHE_DIR": str(self.work / "cache")}

    def write(self, text: str) -> None:
        with open(self.log, "a", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")

    def start(self, argv: List, cwd: Optional[Path] = None, **popen) -> subprocess.Popen:
        """Start ARGV in a process group of its own (torchrun's and benco bench's children included), in
        work/ unless told otherwise: never the repository's root, whose ncl_plugin/ folder would shadow the
        installed package."""
        argv = [str(a) for a in argv]
        self.write(f"$ {shlex.join(argv)}")
        return subprocess.Popen(argv, cwd=str(cwd or self.work), env=self.env(), start_new_session=True, **popen)

    def run(self, argv: List, cwd: Optional[Path] = None) -> int:
        """ARGV's exit code, its output appended to the check's log; stopped at the check's deadline."""
        with open(self.log, "a", encoding="utf-8") as log:
            process = self.start(argv, cwd, stdout=log, stderr=subprocess.STDOUT)
            try:
                code = process.wait(timeout=max(self.left(), 1))
            except subprocess.TimeoutExpired:
                stop_group(process)
                raise OutOfTime() from None
        self.write(f"[exit {code}]")
        return code


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the whole group (benco train saves its state on it), then SIGKILL to whatever is left:
    a straggler would hold the GPU through the next checks."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass


def benco(*argv) -> List[str]:
    return [sys.executable, "-m", "ncl_plugin", *argv]


def observed_benco(*argv, autocast: str = "") -> List[str]:
    return [sys.executable, str(SCRIPT), f"--observe={autocast}", *argv]


def torchrun(*argv) -> List[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", *argv]


def read_observed(log: Path) -> Dict:
    """The last --observe line of a log (the command's own summary of its steps), or {}."""
    found = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if OBSERVED in line:
            try:
                found = json.loads(line.split(OBSERVED, 1)[1])
            except json.JSONDecodeError:  # another process's output cut into the line
                continue
    return found


def log_tail(path: Path) -> str:
    if not path.is_file():
        return ""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
    return "\n".join(line[:300] for line in lines)[-TAIL_CHARS:]


def train_sizes(ctx: Context, batch_size: Optional[int] = None) -> List:
    scale = ctx.scale
    return [*scale.network, "--image_size", scale.image_size, "--batch_size", batch_size or scale.batch_size,
            "--test_batch_size", scale.test_batch_size, "--accum_iter", 1, "--lr", 1e-4, "--warmup_epochs", 1,
            "--test_period", 1, "--save_period", 1, "--metrics", "pixel-f1,pixel-auc", "--seed", 0,
            "--data_path", ctx.data / "train", "--test_data_path", ctx.data / "test_datasets.json", *scale.device]


def need_data(ctx: Context) -> Path:
    if ctx.data is None:
        raise Skipped("no data: the check 'data' failed")
    return ctx.data


def need_checkpoint(ctx: Context) -> Path:
    if ctx.checkpoint is None:
        raise Skipped("no checkpoint: no `benco train --model ncl` check passed")
    return ctx.checkpoint


def expect(code: int, what: str) -> None:
    if code != 0:
        raise Failed(f"{what} exited with {code}")


def rounded(value, digits: int = 4):
    return round(value, digits) if isinstance(value, float) else value


# ---------------------------------------------------------------- 1. versions, data
def check_versions(ctx: Context, record: Record) -> None:
    versions = {"python": platform.python_version()}
    for label, module, distribution in IMPORTS:
        try:
            imported = importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 -- any import error stops the run with its one line
            first = (str(err).splitlines() or [""])[0]
            named = module if label == module else f"{module} ({label})"
            raise ImportStop(f"cannot import {named}: {type(err).__name__}: {first} "
                             f"(docs/development.md lists the wheels a GPU machine needs)") from None
        versions[label] = _version(imported, distribution)
    import torch

    versions["cuda"] = torch.version.cuda
    versions["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        versions["device"] = properties.name
        versions["device_memory_gib"] = round(properties.total_memory / 2**30, 1)
        versions["devices"] = torch.cuda.device_count()
        ctx.device_name = properties.name
    else:
        versions["device"] = "CPU"
    record.figures.update(versions)
    record.brief = f"{versions['device']}; " + ", ".join(
        f"{k} {versions[k]}" for k in ("python", "torch", "cuda", "IMDL-BenCo", "timm", "numpy", "albumentations"))
    print(f"gpu_check: {versions['device']}; " + "; ".join(f"{k} {v}" for k, v in versions.items() if k != "device"), flush=True)
    if not ctx.rehearse and not torch.cuda.is_available():
        raise ImportStop(f"no CUDA GPU is visible (torch {torch.__version__}, CUDA {torch.version.cuda}); "
                         f"on a CPU run with --rehearse")


def _version(module, distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return str(getattr(module, "__version__", "unknown"))


def check_data(ctx: Context, record: Record) -> None:
    from ncl_plugin.data import synthetic

    size = ctx.scale.image_size
    ctx.data = synthetic.build(str(ctx.work / "data"), n=ctx.scale.data_images, size=size, seed=0, show_progress=False)
    counts = {split: len(list((ctx.data / split / "Tp").iterdir())) for split in ("train", "test")}
    ctx.train_images = counts["train"]
    record.figures.update(images=counts, size=size, folder=str(ctx.data))
    record.brief = f"{counts['train']} training and {counts['test']} test images at {size}x{size}"


# ---------------------------------------------------------------- 2. benco train with AMP and channels-last
VARIANTS = {
    # variant: (expected autocast dtype on a GPU, flags)
    "fp16": ("float16", ["--no_channels_last"]),
    "bf16": ("bfloat16", ["--no_channels_last"]),
    "channels_last": ("float16", ["--channels_last"]),
}


def check_train(ctx: Context, record: Record, model: str, variant: str) -> None:
    dtype, flags = VARIANTS[variant]
    if ctx.rehearse and variant != "channels_last":
        raise Skipped("AMP runs on CUDA only: benco train turns it off on a CPU")
    need_data(ctx)
    out = ctx.work / record.name
    argv = observed_benco("train", "--model", model, *train_sizes(ctx), "--epochs", 1, "--output_dir", out, *flags,
                          autocast="bfloat16" if variant == "bf16" else "")
    code = ctx.run(argv)
    seen = read_observed(ctx.log)
    record.figures.update(training_figures(out, seen))
    record.brief = training_brief(record.figures)
    problems = [f"benco train exited with {code}"] if code else []
    problems += step_problems(seen, ctx.rehearse)
    if not ctx.rehearse and not seen.get("autocast", {}).get(dtype):
        problems.append(f"IMDL-BenCo's loop never entered autocast as {dtype} (seen: {seen.get('autocast')})")
    if variant == "channels_last" and not seen.get("channels_last_weights"):
        problems.append("--channels_last: no 4-D weight was in the channels-last format")
    if not (out / "summary.json").is_file():
        problems.append("no summary.json: the run did not finish")
    if problems:
        raise Failed("; ".join(problems))
    if model == "ncl" and ctx.checkpoint is None:
        ctx.checkpoint = out


def training_figures(out: Path, seen: Dict) -> Dict:
    """What a short run shows: its losses, gradients and step times (observed), its log's last epoch."""
    from ncl_plugin.engine.training_log import read_log

    rows = read_log(str(out))
    figures = {key: seen.get(key) for key in ("steps", "loss_first", "loss_last", "finite_losses", "finite_gradient_steps",
                                              "gradient_norm_median", "step_seconds_median", "autocast",
                                              "channels_last_weights", "sync_batchnorm_layers", "backend")}
    if rows:
        last = rows[-1]
        figures["logged_losses"] = {k[len("train_"):]: rounded(v) for k, v in last.items()
                                    if k.startswith("train_") and k not in ("train_lr", "train_seconds", "train_steps")}
        if last.get("train_steps"):
            figures["epoch_seconds_per_step"] = rounded(last["train_seconds"] / last["train_steps"])
        figures["test"] = {k[len("test_"):]: rounded(v) for k, v in last.items()
                           if k.startswith("test_") and k != "test_metrics"}
    return figures


def training_brief(figures: Dict) -> str:
    if not figures.get("steps"):
        return "no optimiser step observed"
    parts = [f"loss {figures['loss_first']:.3g} -> {figures['loss_last']:.3g}",
             f"finite gradients {figures['finite_gradient_steps']}/{figures['steps']}"]
    if figures.get("step_seconds_median") is not None:
        parts.append(f"{1000 * figures['step_seconds_median']:.0f} ms/step")
    if figures.get("autocast"):
        parts.append("autocast " + ",".join(figures["autocast"]))
    return ", ".join(parts)


def step_problems(seen: Dict, rehearse: bool) -> List[str]:
    """Losses must all be finite; gradients too on a CPU. Under AMP float16 the loss scaler skips the
    steps whose gradients overflowed while it lowers its scale, so there at least one must be finite."""
    steps = seen.get("steps") or 0
    if not steps:
        return ["no optimiser step was observed"]
    problems = []
    if seen["finite_losses"] < steps:
        problems.append(f"{steps - seen['finite_losses']} of {steps} losses were not finite")
    finite = seen["finite_gradient_steps"]
    if finite == 0 or (rehearse and finite < steps):
        problems.append(f"{steps - finite} of {steps} steps had non-finite gradients")
    return problems


# ---------------------------------------------------------------- 3. torchrun with SyncBatchNorm
def check_torchrun(ctx: Context, record: Record) -> None:
    need_data(ctx)
    out = ctx.work / record.name
    argv = torchrun(SCRIPT, "--observe", "train", "--model", "ncl", *train_sizes(ctx), "--epochs", 1, "--output_dir", out)
    code = ctx.run(argv)
    seen = read_observed(ctx.log)
    record.figures.update(training_figures(out, seen))
    backend = "gloo" if ctx.rehearse else "nccl"
    record.brief = f"backend {seen.get('backend')}, SyncBatchNorm layers {seen.get('sync_batchnorm_layers')}; " + training_brief(record.figures)
    problems = [f"torchrun exited with {code}"] if code else []
    problems += step_problems(seen, ctx.rehearse)
    if seen and seen.get("backend") != backend:
        problems.append(f"process group backend {seen.get('backend')}, expected {backend}")
    # IMDL-BenCo's train.py converts under torchrun whatever the device; the plugin does on CUDA only,
    # where SyncBatchNorm runs (it refuses CPU tensors).
    if not ctx.rehearse and not seen.get("sync_batchnorm_layers"):
        problems.append("no BatchNorm layer was converted to SyncBatchNorm")
    if problems:
        raise Failed("; ".join(problems))


# ---------------------------------------------------------------- 4. test, test-robust, predict, complexity
def check_test(ctx: Context, record: Record) -> None:
    from ncl_plugin.engine.training_log import read_log

    checkpoint, data = need_checkpoint(ctx), need_data(ctx)
    stem = ctx.work / record.name / "results"
    expect(ctx.run(benco("test", "--checkpoint", checkpoint, "--test_data_path", data / "test_datasets.json",
                         "--metrics", "pixel-f1,pixel-auc", "--out", stem, *ctx.scale.device)), "benco test")
    rows = json.loads(stem.with_suffix(".json").read_text())
    logged = {row["epoch"]: row["test_metrics"] for row in read_log(str(checkpoint)) if row.get("test_metrics")}
    differences = [abs(row[m] - logged[row["epoch"]][row["test set"]][m]) for row in rows
                   for m in ("pixel-level F1", "pixel-level AUC")]
    difference = max(differences) if differences else None
    record.figures.update(rows=[{k: rounded(v) for k, v in row.items()} for row in rows],
                          largest_difference_from_training_log=difference)
    record.brief = ", ".join(f"{row['checkpoint']} F1 {row['pixel-level F1']:.3f} AUC {row['pixel-level AUC']:.3f}" for row in rows)
    # The same weights on the same images: only AMP and cuDNN's own choices may move the metrics.
    if difference is None or difference > 0.01:
        raise Failed(f"the metrics differ from those the training logged by {difference}")


def check_test_robust(ctx: Context, record: Record) -> None:
    checkpoint, data = need_checkpoint(ctx), need_data(ctx)
    stem = ctx.work / record.name / "robustness"
    expect(ctx.run(benco("test-robust", "--checkpoint", checkpoint, "--test_data_path", data / "test", "--jpeg", 90,
                         "--blur", "", "--noise", "", "--resize", "", "--metrics", "pixel-f1,pixel-auc", "--out", stem,
                         *ctx.scale.device)), "benco test-robust")
    rows = json.loads(stem.with_suffix(".json").read_text())
    record.figures["rows"] = [{k: rounded(v) for k, v in row.items()} for row in rows]
    record.brief = ", ".join(f"{r['perturbation']} {r['parameter']}: F1 {r['pixel-level F1']:.3f} AUC {r['pixel-level AUC']:.3f}" for r in rows)
    if [(r["perturbation"], r["parameter"]) for r in rows] != [("jpeg", 90)]:
        raise Failed(f"expected one row, JPEG quality 90; got {len(rows)}")


def check_predict(ctx: Context, record: Record) -> None:
    checkpoint, data = need_checkpoint(ctx), need_data(ctx)
    images = sorted((data / "test" / "Tp").iterdir())
    out = ctx.work / record.name
    expect(ctx.run(benco("predict", data / "test" / "Tp", "--checkpoint", checkpoint, "--out", out,
                         *ctx.scale.device)), "benco predict")
    predictions = json.loads((out / "predictions.json").read_text())
    masks = len(list(out.glob("*_mask.png")))
    seconds = re.findall(r"([\d.]+)\s+s\s+an\s+image", ctx.log.read_text())
    record.figures.update(images=len(images), predictions=len(predictions), masks=masks,
                          seconds_per_image=float(seconds[-1]) if seconds else None)
    record.brief = f"{masks} masks for {len(images)} images" + (f", {seconds[-1]} s an image" if seconds else "")
    if masks != len(images) or len(predictions) != len(images):
        raise Failed(f"{masks} masks and {len(predictions)} predictions for {len(images)} images")


def check_complexity(ctx: Context, record: Record) -> None:
    size = ctx.scale.complexity_size
    expect(ctx.run(benco("complexity", "--model", "ncl", *ctx.scale.network, "--image_size", size,
                         *ctx.scale.device)), "benco complexity")
    # The terminal's line may wrap anywhere between the words.
    said = re.search(r"([\d.]+)\s+M\s+parameters.*?([\d.]+)\s+GFLOPs\s+per\s+image", ctx.log.read_text(), re.S)
    if not said:
        raise Failed("benco complexity printed no parameter and FLOP count")
    record.figures.update(image_size=size, parameters_m=float(said.group(1)), gflops_per_image=float(said.group(2)))
    record.brief = f"{said.group(1)} M parameters, {said.group(2)} GFLOPs per image at {size}x{size}"


# ---------------------------------------------------------------- 5. SIGTERM, then --resume auto
def check_sigterm_resume(ctx: Context, record: Record) -> None:
    from ncl_plugin.engine.checkpoints import INTERRUPTED_NAME
    from ncl_plugin.engine.training_log import read_log
    from ncl_plugin.weights import load_checkpoint

    need_data(ctx)
    out = ctx.work / record.name
    # Batches of 2: an epoch of many steps, so that the signal lands inside it even on a fast GPU.
    argv = benco("train", "--model", "ncl", *train_sizes(ctx, batch_size=2), "--epochs", 2, "--output_dir", out)
    code = stop_mid_epoch(ctx, [*argv, "--verbose"])  # --verbose: IMDL-BenCo's lines show where the loop is
    record.figures["exit_after_sigterm"] = code
    if code != 128 + signal.SIGTERM:
        raise Failed(f"benco train exited with {code} after SIGTERM, expected {128 + signal.SIGTERM}")
    state = load_checkpoint(str(out / INTERRUPTED_NAME))
    steps = ctx.train_images // 2  # IMDL-BenCo's training loader drops the last incomplete batch
    stopped = {"epoch": state.get("resume_epoch"), "step": state.get("resume_step"), "steps_per_epoch": steps}
    record.figures["stopped_at"] = stopped
    expect(ctx.run([*argv, "--resume", "auto"]), "benco train --resume auto")
    epochs = [row["epoch"] for row in read_log(str(out))]
    record.figures.update(logged_epochs=epochs, interrupted_state_left=(out / INTERRUPTED_NAME).exists())
    record.brief = f"stopped at epoch {stopped['epoch']}, step {stopped['step']} of {steps}; resumed to epochs {epochs}"
    if stopped["epoch"] != 1 or not 0 < (stopped["step"] or 0) < steps:
        raise Failed(f"the signal did not land mid-epoch: {stopped}")
    if epochs != [0, 1] or record.figures["interrupted_state_left"]:
        raise Failed(f"the resumed run logged epochs {epochs} and left its interrupted state: {record.figures['interrupted_state_left']}")


def stop_mid_epoch(ctx: Context, argv: List) -> int:
    """Run ARGV, send SIGTERM once the second epoch's first batch is done; its exit code."""
    process = ctx.start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(max(ctx.left(), 1), stop_group, args=(process,))
    watchdog.start()
    try:
        with open(ctx.log, "a", encoding="utf-8") as log:
            for line in process.stdout:
                log.write(line)
                if "Epoch: [1]" in line:  # IMDL-BenCo's MetricLogger, after the first batch of epoch 1
                    log.write("[gpu_check: SIGTERM]\n")
                    process.send_signal(signal.SIGTERM)
                    break
            for line in process.stdout:
                log.write(line)
        code = process.wait()
    finally:
        watchdog.cancel()
    if code in (-signal.SIGTERM, -signal.SIGKILL) and ctx.left() <= 0:
        raise OutOfTime()
    ctx.write(f"[exit {code}]")
    return code


# ---------------------------------------------------------------- 6. IMDL-BenCo's own train.py
IMPORT_LINE = "import ncl_plugin  # registers NCL and DeepLabV3Plus in IMDL-BenCo's MODELS"


def add_import_line(script: Path) -> None:
    """docs/imdlbenco.md's one line, after the script's last top-level import (its last line, if the
    import spans several)."""
    import ast

    text = script.read_text(encoding="utf-8")
    end = max(n.end_lineno for n in ast.parse(text).body if isinstance(n, (ast.Import, ast.ImportFrom)))
    lines = text.splitlines(keepends=True)
    lines.insert(end, IMPORT_LINE + "\n")
    script.write_text("".join(lines), encoding="utf-8")


def check_imdlbenco_train(ctx: Context, record: Record) -> None:
    from ncl_plugin.engine.training_log import read_log

    data = need_data(ctx)
    folder = ctx.work / record.name
    folder.mkdir(parents=True, exist_ok=True)
    expect(ctx.run(benco("init"), cwd=folder), "benco init")
    add_import_line(folder / "train.py")
    if ctx.rehearse:
        expect(ctx.run([sys.executable, "train.py", "--model", "ncl", "--help"], cwd=folder), "train.py --help")
        record.figures["prepared"] = True
        raise Skipped("IMDL-BenCo's train.py needs CUDA (init_distributed_mode: nccl, torch.cuda.set_device); "
                      "benco init, the import line and the script's imports were checked")
    out = folder / "output_dir"
    scale = ctx.scale
    code = ctx.run(torchrun("train.py", "--model", "ncl", *scale.network, "--data_path", data / "train",
                            "--test_data_path", data / "test_datasets.json", "--image_size", scale.image_size,
                            "--if_resizing", "--batch_size", scale.batch_size, "--test_batch_size", scale.batch_size,
                            "--epochs", 1, "--accum_iter", 1, "--lr", 1e-4, "--num_workers", 2,
                            "--output_dir", out, "--log_dir", out), cwd=folder)
    rows = read_log(str(out))
    record.figures.update(logged=[{k: rounded(v) for k, v in row.items()} for row in rows],
                          checkpoints=sorted(p.name for p in out.glob("checkpoint-*.pth")))
    losses = {k: v for row in rows[-1:] for k, v in row.items() if k.startswith("train_") and k != "train_lr"}
    record.brief = ", ".join(f"{k} {v:.3g}" for k, v in losses.items()) + f"; {record.figures['checkpoints']}"
    expect(code, "torchrun train.py")
    if not rows or not record.figures["checkpoints"]:
        raise Failed("IMDL-BenCo's train.py wrote no log.txt row or no checkpoint")


# ---------------------------------------------------------------- 7. speed at the paper's scale
def check_speed(ctx: Context, record: Record) -> None:
    out = ctx.work / "speed.json"
    expect(ctx.run([sys.executable, SCRIPT.parent / "speed.py", *ctx.scale.speed, "--out", out]), "benchmarks/speed.py")
    report = json.loads(out.read_text())
    record.figures.update(speed_figures(report))
    base = record.figures["models"].get("deeplabv3plus", {})
    ncl = record.figures["models"].get("ncl", {})
    if not base or not ncl:
        raise Failed("ncl or deeplabv3plus was not measured")
    others = [f"{n} {m['train_ratio']:.2f}x" for n, m in record.figures["models"].items() if n not in ("ncl", "deeplabv3plus")]
    record.brief = (f"ncl / deeplabv3plus: train {ratio_text(ncl['train_ratio'])}, inference {ratio_text(ncl['inference_ratio'])}, "
                    f"memory {ratio_text(ncl['memory_ratio'])}; training step against deeplabv3plus: {', '.join(others) or 'none'}")


def ratio_text(value) -> str:
    return "n/a" if value is None else f"{value:.3f}x"


def speed_figures(report: Dict) -> Dict:
    """Per model: step time, images per second, inference and peak memory, and each as a ratio to
    deeplabv3plus, NCL's own network without its contrastive branch."""
    batch = report["args"]["batch"]
    models = {name: m for name, m in report["models"].items() if "train_s" in m}
    base = models.get("deeplabv3plus")
    figures = {"setting": report["setting"], "machine": report["machine"], "models": {},
               "not_run": {name: m["note"] for name, m in report["models"].items() if "note" in m}}
    for name, m in models.items():
        peak = m.get("peak_bytes")
        entry = {"train_ms": 1000 * m["train_s"], "images_per_s": batch / m["train_s"],
                 "inference_ms_per_image": 1000 * m["inference_s_per_image"],
                 "peak_mib": None if peak is None else peak / 2**20, "parameters_m": m["parameters"] / 1e6}
        if base:
            entry.update(train_ratio=m["train_s"] / base["train_s"],
                         inference_ratio=m["inference_s_per_image"] / base["inference_s_per_image"],
                         memory_ratio=peak / base["peak_bytes"] if peak and base.get("peak_bytes") else None)
        figures["models"][name] = {k: rounded(v) for k, v in entry.items()}
    return figures


# ---------------------------------------------------------------- 8. equal steps on a larger set
def check_equal_steps(ctx: Context, record: Record) -> None:
    out = ctx.work / record.name
    expect(ctx.run(benco("bench", "--models", "ncl,ncl:contrast_weight=0,deeplabv3plus", "--seeds", 0,
                         *ctx.scale.bench, "--out", out)), "benco bench")
    rows = bench_rows(out / "bench.csv")
    record.figures["rows"] = rows
    record.brief = "; ".join(bench_brief(row) for row in rows)
    if len(rows) != 3:
        raise Failed(f"benco bench finished {len(rows)} of 3 runs")


def bench_rows(path: Path) -> List[Dict]:
    """benco bench's table, one row per model: its pixel F1s, AUC and seconds per step."""
    import csv

    with open(path, newline="") as handle:
        # The table's last row names each column's best model instead of giving a value.
        rows = [row for row in csv.DictReader(handle) if row.get("runs", "").strip()]
    wanted = [k for k in (rows[0] if rows else {}) if k.endswith(("F1", "(best threshold)", "AUC", "s / step"))]
    return [{"run": row["run"], **{k: float(row[k]) for k in wanted if row[k]}} for row in rows]


def bench_brief(row: Dict) -> str:
    shown = {"pixel-level F1": "F1 {:.3f}", "pixel-level AUC": "AUC {:.3f}", "s / step": "{:.3f} s/step"}
    return f"{row['run']}: " + ", ".join(form.format(v) for k, v in row.items() for end, form in shown.items() if k.endswith(end))


# ---------------------------------------------------------------- the checks, in order of value
@dataclass
class Check:
    name: str
    title: str
    run: Callable[[Context, Record], None]
    limit: str  # its key in Scale.limits
    optional: bool = False  # run only if the budget still holds its whole limit


def train_check(model: str, variant: str) -> Check:
    return Check(f"train-{model}-{variant}", f"benco train --model {model}, {variant}",
                 lambda ctx, record: check_train(ctx, record, model, variant), "train")


CHECKS = [
    Check("versions", "versions and imports", check_versions, "versions"),
    Check("data", "the synthetic set every check trains on", check_data, "data"),
    *[train_check(model, variant) for model in ("ncl", "deeplabv3plus") for variant in VARIANTS],
    Check("torchrun-syncbn", "torchrun --nproc_per_node=1, SyncBatchNorm", check_torchrun, "torchrun-syncbn"),
    Check("test", "benco test on the checkpoint", check_test, "test"),
    Check("test-robust", "benco test-robust, JPEG 90", check_test_robust, "test-robust"),
    Check("predict", "benco predict", check_predict, "predict"),
    Check("complexity", "benco complexity", check_complexity, "complexity"),
    Check("sigterm-resume", "SIGTERM mid-epoch, then --resume auto", check_sigterm_resume, "sigterm-resume"),
    Check("imdlbenco-train-py", "IMDL-BenCo's train.py with the import line", check_imdlbenco_train, "imdlbenco-train-py"),
    Check("speed", "benchmarks/speed.py at the paper's scale", check_speed, "speed"),
    Check("equal-steps", "ncl, ncl:contrast_weight=0, deeplabv3plus at equal steps", check_equal_steps, "equal-steps",
          optional=True),
]
ALWAYS = ("versions", "data")  # every later check needs them


def run_check(ctx: Context, check: Check, record: Record) -> None:
    limit = ctx.scale.limits[check.limit]
    left = ctx.run_deadline - time.monotonic()
    record.limit_s = int(min(limit, max(left, 0)))
    if check.optional and left < limit:
        return finish(record, "skipped", f"{left:.0f} s left of the budget, less than its {limit} s")
    if left < MIN_START_S:
        return finish(record, "skipped", f"out of time: {left:.0f} s left of the budget")
    ctx.log = ctx.logs / f"{check.name}.log"
    ctx.check_deadline = time.monotonic() + record.limit_s
    record.log = str(ctx.log.relative_to(ctx.out))
    ctx.write(f"==== {check.name}: {check.title} (limit {record.limit_s} s)")
    started = time.monotonic()
    try:
        check.run(ctx, record)
        status, note = "passed", ""
    except Skipped as why:
        status, note = "skipped", str(why)
    except Failed as why:
        status, note = "failed", str(why)
    except OutOfTime:
        status, note = "failed", f"ran past its {record.limit_s} s limit and was stopped"
    except ImportStop:
        record.seconds = round(time.monotonic() - started, 1)
        raise
    except Exception as err:  # noqa: BLE001 -- a broken check is reported like a failed one, and the next runs
        ctx.write(traceback.format_exc())
        status, note = "failed", f"{type(err).__name__}: {err}"
    record.seconds = round(time.monotonic() - started, 1)
    finish(record, status, note)
    record.log_tail = log_tail(ctx.log)


def finish(record: Record, status: str, note: str) -> None:
    record.status, record.note = status, note


# ---------------------------------------------------------------- report
def write_results(ctx: Context, records: List[Record], started: float, budget: float, finished: bool) -> None:
    report = {
        "format": FORMAT,
        "script": "benchmarks/gpu_check.py",
        "mode": "rehearsal (CPU)" if ctx.rehearse else "GPU",
        "device": ctx.device_name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "finished": finished,
        "budget_s": budget,
        "seconds": round(time.monotonic() - started, 1),
        "counts": {s: sum(r.status == s for r in records) for s in ("passed", "failed", "skipped", "not run")},
        "checks": [asdict(r) for r in records],
    }
    tmp = ctx.out / (RESULTS + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, ctx.out / RESULTS)


def summary_table(ctx: Context, records: List[Record], seconds: float) -> str:
    counts = {s: sum(r.status == s for r in records) for s in ("passed", "failed", "skipped")}
    head = (f"gpu_check on {ctx.device_name}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped in {seconds:.0f} s")
    width = max(len(r.name) for r in records)
    lines = [head, f"{'check':<{width}}  {'status':<8} {'seconds':>7}  figures, or why"]
    for r in records:
        text = r.note if r.status != "passed" else r.brief
        if r.status == "failed" and r.brief:
            text = f"{r.note} [{r.brief}]"
        lines.append(f"{r.name:<{width}}  {r.status:<8} {r.seconds:>7.1f}  {text[:200]}")
    lines.append(f"Wrote {ctx.out / RESULTS} and {ctx.logs}/")
    return "\n".join(lines)


# ---------------------------------------------------------------- --observe: benco, watched
def observe(argv: List[str]) -> int:
    """`benco ARGV` in this process, with IMDL-BenCo's autocast (made bfloat16 by --observe=bfloat16),
    each optimiser step's loss, gradient norm and start, and SyncBatchNorm conversions watched; the
    summary is printed as one OBSERVED line at the end."""
    import torch
    from IMDLBenCo.training_scripts.utils import misc

    dtype = argv[0].partition("=")[2]
    seen = {"autocast": {}, "losses": [], "norms": [], "starts": [], "sync_batchnorm_layers": 0,
            "channels_last_weights": None, "backend": None}
    watch_autocast(torch, seen, getattr(torch, dtype) if dtype else None)
    watch_scaler(torch, misc, seen)
    watch_sync_batchnorm(torch, seen)

    from ncl_plugin import cli

    code = cli.main(argv[1:])
    if int(os.environ.get("RANK", "0")) == 0:
        # Not print: under torchrun IMDL-BenCo replaces it with one that stamps the time first.
        sys.stdout.write(OBSERVED + json.dumps(observed_summary(seen)) + "\n")
        sys.stdout.flush()
    return code


def watch_autocast(torch, seen: Dict, dtype) -> None:
    # trainer.py enters torch.cuda.amp.autocast(), whose dtype is float16 unless given.
    original = torch.cuda.amp.autocast

    def autocast(*args, **kwargs):
        if dtype is not None:
            kwargs["dtype"] = dtype
        context = original(*args, **kwargs)
        name = str(context.fast_dtype).replace("torch.", "")
        seen["autocast"][name] = seen["autocast"].get(name, 0) + 1
        return context

    torch.cuda.amp.autocast = autocast


def watch_scaler(torch, misc, seen: Dict) -> None:
    # Every optimiser step goes through IMDL-BenCo's loss scaler, which returns the gradients' norm
    # after unscaling: infinite exactly when the GradScaler skips the step.
    original = misc.NativeScalerWithGradNormCount.__call__

    def call(self, loss, optimizer, clip_grad=None, parameters=None, create_graph=False, update_grad=True):
        seen["starts"].append(time.perf_counter())
        parameters = list(parameters) if parameters is not None else None  # a generator can be read once
        if seen["channels_last_weights"] is None and parameters:
            seen["channels_last_weights"] = sum(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
                                                and not p.is_contiguous() for p in parameters)
        if seen["backend"] is None and torch.distributed.is_initialized():
            seen["backend"] = torch.distributed.get_backend()
        norm = original(self, loss, optimizer, clip_grad, parameters, create_graph, update_grad)
        seen["losses"].append(float(loss.detach().float()))
        if norm is not None:
            seen["norms"].append(float(norm))
        return norm

    misc.NativeScalerWithGradNormCount.__call__ = call


def watch_sync_batchnorm(torch, seen: Dict) -> None:
    original = torch.nn.SyncBatchNorm.convert_sync_batchnorm
    depth = [0]  # the conversion calls itself on every child: count once, at the top

    def convert(module, process_group=None):
        depth[0] += 1
        try:
            converted = original(module, process_group)
        finally:
            depth[0] -= 1
        if depth[0] == 0:
            seen["sync_batchnorm_layers"] += sum(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules())
        return converted

    torch.nn.SyncBatchNorm.convert_sync_batchnorm = staticmethod(convert)


def observed_summary(seen: Dict) -> Dict:
    import math

    losses, norms, starts = seen["losses"], seen["norms"], seen["starts"]
    finite_norms = [n for n in norms if math.isfinite(n)]
    intervals = [b - a for a, b in zip(starts, starts[1:])]
    return {
        "steps": len(losses),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "finite_losses": sum(math.isfinite(v) for v in losses),
        "finite_gradient_steps": len(finite_norms),
        "gradient_norm_median": statistics.median(finite_norms) if finite_norms else None,
        # From one step's start to the next: data, forward, backward and optimiser; the first step's
        # warm-up is the median's outlier, not its value.
        "step_seconds_median": statistics.median(intervals) if intervals else None,
        "autocast": seen["autocast"],
        "channels_last_weights": seen["channels_last_weights"],
        "sync_batchnorm_layers": seen["sync_batchnorm_layers"],
        "backend": seen["backend"],
    }


# ---------------------------------------------------------------- main
def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder for gpu_check.json, logs/ and work/")
    p.add_argument("--rehearse", action="store_true", help="every step at tiny sizes on the CPU (gloo for nccl, CUDA-only steps skipped)")
    p.add_argument("--only", default="", help="comma list of checks to run (versions and data always run); the others are reported skipped")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default: 480 on a GPU, 5400 rehearsing)")
    args = p.parse_args(argv)
    names = [c.name for c in CHECKS]
    unknown = [n for n in args.only.split(",") if n and n not in names]
    if unknown:
        raise UsageError(f"--only {args.only}: no check named {', '.join(unknown)}; the checks are {', '.join(names)}")
    if args.budget is not None and args.budget <= 0:
        raise UsageError(f"--budget {args.budget:g}: must be a positive number of seconds")
    if (Path(args.out) / RESULTS).exists():
        raise UsageError(f"{Path(args.out) / RESULTS} exists: give another output folder (one run a folder)")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("--observe"):
        return observe(argv)
    try:
        args = parse_args(argv)
    except UsageError as err:
        print(f"gpu_check: {err}", file=sys.stderr)
        return 2
    # IMDL-BenCo, albumentations and timm warn about their own deprecations when the versions are read.
    warnings.filterwarnings("ignore")
    out = Path(args.out).resolve()
    started = time.monotonic()
    budget = args.budget or (REHEARSAL if args.rehearse else GPU).budget_s
    ctx = Context(out, args.rehearse, budget)
    records = [Record(c.name, c.title) for c in CHECKS]
    selected = {n for n in args.only.split(",") if n} | set(ALWAYS) if args.only else None
    write_results(ctx, records, started, budget, finished=False)
    for check, record in zip(CHECKS, records):
        if selected is not None and check.name not in selected:
            finish(record, "skipped", "not selected (--only)")
            continue
        print(f"gpu_check: {check.name} ...", flush=True)
        try:
            run_check(ctx, check, record)
        except ImportStop as stop:
            finish(record, "failed", str(stop))
            record.log_tail = log_tail(ctx.log)
            write_results(ctx, records, started, budget, finished=False)
            print(f"gpu_check: {stop}", file=sys.stderr)
            return 2
        print(f"gpu_check: {check.name} {record.status} in {record.seconds:.0f} s"
              + (f": {record.note}" if record.note else ""), flush=True)
        write_results(ctx, records, started, budget, finished=False)
    write_results(ctx, records, started, budget, finished=True)
    print(summary_table(ctx, records, time.monotonic() - started), flush=True)
    return 1 if any(r.status == "failed" for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())

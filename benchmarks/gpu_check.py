"""The first GPU's checks: every CUDA path of the plugin, each one able to fail, in one run of eight minutes.

    python benchmarks/gpu_check.py OUT                  # on a GPU machine: every check, within --budget (480 s)
    python benchmarks/gpu_check.py OUT --rehearse       # the same steps at tiny sizes on the CPU
    python benchmarks/gpu_check.py OUT --rehearse --only train-ncl-bf16,test
    python benchmarks/gpu_check.py OUT --rehearse --fault slow-ncl   # a seeded fault: its check must fail

The essential checks run first, in the order of what they are worth, each under its own time limit; their
limits add up to less than the budget, so each one gets its turn. The optional checks follow while the
budget holds their whole limit. Every check ends passed, failed, skipped (it does not apply here: a GPU's
float16 on a CPU) or not run (its turn never came: the budget, --only); the verdict passes only when no
check failed and every essential check asked for ran, and the exit code is 0 only then.

Essential, in order:
  versions                 Python, torch, CUDA, the device, IMDL-BenCo, timm, numpy, albumentations
                           (an import that fails stops the run here, in one line)
  data                     a small synthetic set, every image with its mask, built once for every later check
  train-ncl-<variant>      benco train: fp16 and bf16 check the dtype the training convolutions actually
                           output (a forward hook), channels_last the weights' format; finite losses
  ranks-syncbn             two ranks under torchrun, one without a contour patch: on a GPU SyncBatchNorm's
                           and DDP's collectives (one GPU holds both ranks over gloo), on CPU ranks DDP's;
                           a rank left waiting fails by the process group's timeout
  test, test-robust,       on the checkpoint the first passing ncl check trained: test gives the metrics
  predict, complexity      its training logged, robustness scores are finite, every image gets a mask and
                           a score in [0, 1], the parameter count is the model's own and FLOPs above zero
  sigterm-resume           SIGTERM in the middle of an epoch, then --resume auto
  speed                    benchmarks/speed.py: NCL's training step at most 1.10 of its network's
Optional: deeplabv3plus's three training checks, benco train under torchrun with one rank, IMDL-BenCo's own
train.py from `benco init` with the one import line, the zoo's speed, and equal optimiser steps for ncl,
ncl:contrast_weight=0 and deeplabv3plus through `benco bench`.

--fault NAME seeds a fault its checks must catch (FAULTS); the suite seeds every fault a CPU can and
expects each of its checks to fail and the run to exit non-zero.

--rehearse runs the same steps and command lines on a CPU at tiny sizes: --device cpu, so torchrun takes
gloo where a GPU takes nccl; AMP is the CPU's bfloat16, and IMDL-BenCo's train.py, which needs CUDA, is
reported skipped. OUT receives gpu_check.json (rewritten after every check: status, figures, seconds and
the end of its log, so that a run killed half-way still says what it did), logs/<check>.log, and work/
(the data, the runs, their checkpoints: large, nothing to send back). The summary table comes last.
docs/development.md says how to start it on a GPU machine.

Each `benco train` runs under this script's --observe mode, which is `benco` itself with four things
watched: the dtype every training convolution outputs, every optimiser step's loss and gradient norm, the
SyncBatchNorm conversion, and on a GPU's bf16 check IMDL-BenCo's float16 autocast made bfloat16.
"""
import argparse
import importlib
import json
import math
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
from typing import Callable, Dict, List, Optional, Sequence

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
    speed_limit: float  # the most NCL's training step may take over its network's (deeplabv3plus)
    speed_zoo: List[str]
    bench: List[str]
    collective_timeout_s: int  # a collective that waits longer fails the two-rank check
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
           "--batch", "8", "--amp", "--device", "cuda", "--baselines", "", "--memory_repeats", "1", "--grids", ""],
    speed_limit=1.10,
    speed_zoo=["--baselines", "segformer,IML_ViT,Mesorch", "--no_memory"],
    bench=["--config", "quickstart", "--epochs", "3", "--synthetic_images", "2000", "--device", "cuda"],
    collective_timeout_s=30,
    budget_s=480,
    # The essential checks' limits add up to at most budget_s (a test holds them there): each one runs.
    limits={"versions": 15, "data": 20, "train": 40, "ranks-syncbn": 60, "test": 25, "test-robust": 25,
            "predict": 25, "complexity": 25, "sigterm-resume": 60, "speed": 90,
            "torchrun-benco": 60, "imdlbenco-train-py": 90, "speed-zoo": 150, "equal-steps": 180},
)
REHEARSAL = Scale(
    network=["--backbone", "resnet18", "--output_stride", "16", "--patch_size", "16"],
    device=["--device", "cpu", "--num_workers", "0"],
    image_size=64,
    batch_size=2,
    test_batch_size=4,
    data_images=20,
    complexity_size=64,
    # the casia-cpu network at 128: NCL's sampler and losses weigh on a step as they do at the paper's size
    speed=["--backbone", "resnet10t", "--output_stride", "16", "--decoder_channels", "64", "--patch_size", "16",
           "--image_size", "128", "--batch", "4", "--device", "cpu", "--baselines", "", "--warmup", "1",
           "--repeats", "4", "--no_memory", "--grids", ""],
    # loose: a 2-core CPU shared with other work times a 0.2 s step to within tens of percent
    speed_limit=1.5,
    speed_zoo=["--baselines", "segformer,Mesorch", "--baseline_repeats", "1", "--no_memory"],
    bench=["--config", "quickstart", "--epochs", "1", "--synthetic_images", "20", "--image_size", "64",
           "--batch_size", "4", "--device", "cpu", "--num_workers", "0"],
    collective_timeout_s=30,
    # Loose: on a CPU shared with other work a step of these runs took from 0.7 s to 157 s (2 cores);
    # here the limits only stop a check that hangs.
    budget_s=5400,
    limits={"versions": 300, "data": 300, "train": 900, "ranks-syncbn": 300, "test": 600, "test-robust": 600,
            "predict": 600, "complexity": 600, "sigterm-resume": 1200, "speed": 900,
            "torchrun-benco": 900, "imdlbenco-train-py": 600, "speed-zoo": 1200, "equal-steps": 1200},
)


# ---------------------------------------------------------------- records and outcomes
@dataclass
class Record:
    """One check's line in gpu_check.json."""

    name: str
    title: str
    # passed; failed; skipped: does not apply here (a CUDA-only step in the rehearsal); not run: its turn did
    # not come (the budget ran out, --only left it out, or the run stopped before it)
    status: str = "not run"
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
    """The check does not apply here (a CUDA-only step in the rehearsal)."""


class OutOfTime(Exception):
    pass


class ImportStop(Exception):
    """An import failed, or a GPU run sees no GPU: nothing later can run."""


class UsageError(Exception):
    """A bad flag or output folder, said in one line."""


# ---------------------------------------------------------------- running commands
class Context:
    """The run's folders, sizes, clock, and what earlier checks left for later ones."""

    def __init__(self, out: Path, rehearse: bool, budget: float, faults: Sequence[str] = ()):
        self.out, self.rehearse, self.faults = out, rehearse, set(faults)
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

    def fault(self, name: str) -> bool:
        """Whether --fault seeded ``name`` (FAULTS) into this run."""
        return name in self.faults

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
        raise Failed("cannot run: no data (the check 'data' did not pass)")
    return ctx.data


def need_checkpoint(ctx: Context) -> Path:
    if ctx.checkpoint is None:
        raise Failed("cannot run: no checkpoint (no `benco train --model ncl` check passed)")
    return ctx.checkpoint


def tested_checkpoint(ctx: Context) -> Path:
    """The checkpoint the evaluation checks read: the first ncl run's, or under --fault weights-nan a copy of
    its folder whose weights hold a NaN."""
    checkpoint = need_checkpoint(ctx)
    if not ctx.fault("weights-nan"):
        return checkpoint
    import shutil

    import torch

    faulted = ctx.work / "faulted-checkpoint"
    if not faulted.exists():
        making = ctx.work / "faulted-checkpoint.tmp"
        shutil.rmtree(making, ignore_errors=True)
        shutil.copytree(checkpoint, making, ignore=shutil.ignore_patterns("events.out.tfevents.*"))
        for file in making.glob("checkpoint-*.pth"):
            state = torch.load(file, map_location="cpu", weights_only=True)
            weights = next(v for k, v in state["model"].items() if k.endswith("weight") and v.is_floating_point())
            weights[(0,) * weights.dim()] = float("nan")  # the first convolution's first weight
            torch.save(state, file)
        making.rename(faulted)  # whole, or not at all: a later check never reads a half-made copy
    return faulted


def expect(code: int, what: str) -> None:
    if code != 0:
        raise Failed(f"{what} exited with {code}")


def rounded(value, digits: int = 4):
    return round(value, digits) if isinstance(value, float) else value


# ---------------------------------------------------------------- 1. versions, data
def check_versions(ctx: Context, record: Record) -> None:
    versions = {"python": platform.python_version()}
    hidden = {"albumentations": sys.modules.get("albumentations")} if ctx.fault("import-missing") else {}
    sys.modules.update(dict.fromkeys(hidden))  # an import of it now fails, as if it were not installed
    try:
        for label, module, distribution in IMPORTS:
            try:
                imported = importlib.import_module(module)
            except Exception as err:  # noqa: BLE001 -- any import error stops the run with its one line
                first = (str(err).splitlines() or [""])[0]
                named = module if label == module else f"{module} ({label})"
                raise ImportStop(f"cannot import {named}: {type(err).__name__}: {first} "
                                 f"(docs/development.md lists the wheels a GPU machine needs)") from None
            versions[label] = _version(imported, distribution)
    finally:
        for name, module in hidden.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
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
    if ctx.fault("data-short"):
        next(iter(sorted((ctx.data / "train" / "Tp").iterdir()))).unlink()
    counts = {f"{split}/{folder}": len(list((ctx.data / split / folder).iterdir()))
              for split in ("train", "test") for folder in ("Tp", "Gt", "Au") if (ctx.data / split / folder).is_dir()}
    listed = {split: len(json.loads((ctx.data / name).read_text()))
              for split, name in (("train", "train.json"), ("test", "test_with_authentic.json"))}
    ctx.train_images = counts["train/Tp"]
    record.figures.update(images=counts, listed=listed, size=size, folder=str(ctx.data))
    record.brief = f"{counts['train/Tp']} training and {listed['test']} test images at {size}x{size}"
    problems = [f"{split}: {counts[split + '/Tp']} images and {counts[split + '/Gt']} masks"
                for split in ("train", "test") if counts[split + "/Tp"] != counts[split + "/Gt"]]
    if counts["train/Tp"] != listed["train"] or sum(listed.values()) != ctx.scale.data_images:
        problems.append(f"{counts['train/Tp']} training images on disk, lists of {listed} for {ctx.scale.data_images}")
    if problems:
        ctx.data = None
        raise Failed("the synthetic set is incomplete: " + "; ".join(problems))


# ---------------------------------------------------------------- 2. benco train with AMP and channels-last
VARIANTS = {
    # variant: (the dtype the convolutions must produce on a GPU, flags)
    "fp16": ("float16", ["--no_channels_last"]),
    "bf16": ("bfloat16", ["--no_channels_last"]),
    "channels_last": ("float16", ["--channels_last"]),
}


def expected_dtype(ctx: "Context", variant: str) -> str:
    """What the convolutions of a training step must produce: on a GPU, IMDL-BenCo's float16 autocast (made
    bfloat16 by the observer for bf16); on a CPU, benco train's own AMP, bfloat16 where the CPU has it."""
    from ncl_plugin.engine.amp import precision_for

    if not ctx.rehearse:
        return VARIANTS[variant][0]
    import torch

    return precision_for(torch.device("cpu"), if_not_amp=False)


def check_train(ctx: Context, record: Record, model: str, variant: str) -> None:
    _, flags = VARIANTS[variant]
    dtype = expected_dtype(ctx, variant)
    if ctx.rehearse and variant == "fp16":
        raise Skipped("float16 autocast is a GPU's: AMP on a CPU is bfloat16 (the bf16 check)")
    if ctx.rehearse and variant == "bf16" and dtype != "bfloat16":
        raise Skipped("this CPU has no bfloat16 instructions: benco train keeps float32 here")
    need_data(ctx)
    out = ctx.work / record.name
    fault = ["--if_not_amp"] if ctx.fault("amp-off") and variant != "channels_last" else []
    fault += ["--no_channels_last"] if ctx.fault("channels-last-off") and variant == "channels_last" else []
    # On a GPU the observer makes IMDL-BenCo's float16 request bfloat16; on a CPU bfloat16 is benco's own choice.
    swap = "bfloat16" if variant == "bf16" and not ctx.rehearse else ""
    argv = observed_benco("train", "--model", model, *train_sizes(ctx), "--epochs", 1, "--output_dir", out, *flags,
                          *fault, autocast=swap)
    code = ctx.run(argv)
    seen = read_observed(ctx.log)
    record.figures.update(training_figures(out, seen), expected_convolution_dtype=dtype)
    record.brief = training_brief(record.figures)
    problems = [f"benco train exited with {code}"] if code else []
    problems += step_problems(seen, ctx.rehearse)
    problems += dtype_problems(seen.get("convolution_dtypes") or {}, dtype)
    if variant == "channels_last" and not seen.get("channels_last_weights"):
        problems.append("--channels_last: no 4-D weight was in the channels-last format")
    if not (out / "summary.json").is_file():
        problems.append("no summary.json: the run did not finish")
    if problems:
        raise Failed("; ".join(problems))
    if model == "ncl" and ctx.checkpoint is None:
        ctx.checkpoint = out


def dtype_problems(dtypes: Dict[str, int], expected: str) -> List[str]:
    """Most of a training step's convolutions must output ``expected`` (NCL's contrastive branches keep
    float32 on purpose: they are few)."""
    total = sum(dtypes.values())
    if not total:
        return ["no convolution ran in a training step"]
    share = dtypes.get(expected, 0) / total
    if share < 0.5:
        return [f"{share:.0%} of the training convolutions produced {expected} (seen: {dtypes})"]
    return []


def training_figures(out: Path, seen: Dict) -> Dict:
    """What a short run shows: its losses, gradients and step times (observed), its log's last epoch."""
    from ncl_plugin.engine.training_log import read_log

    rows = read_log(str(out))
    figures = {key: seen.get(key) for key in ("steps", "loss_first", "loss_last", "finite_losses", "finite_gradient_steps",
                                              "gradient_norm_median", "step_seconds_median", "convolution_dtypes",
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
    if figures.get("convolution_dtypes"):
        parts.append("convolutions " + ", ".join(f"{k} {v}" for k, v in figures["convolution_dtypes"].items()))
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


# ---------------------------------------------------------------- 3. two ranks, one without a contour patch
RANK_RESULT = "rank{}.json"
RANK_STEPS = 3


def check_ranks(ctx: Context, record: Record) -> None:
    """Two ranks train NCL (pivot branches with BatchNorm) for a few steps; rank 1's images hold no tampered
    pixel, so it has no contour patch while rank 0 has. On CUDA the model's BatchNorms are SyncBatchNorm and
    their collectives run (one GPU holds both ranks over gloo, as NCCL takes one rank a GPU; two GPUs run
    NCCL); on CPU ranks SyncBatchNorm refuses the tensors, so the collectives checked are DDP's gradient
    all-reduce. A rank that skipped a collective the other entered hangs: the process group's timeout and
    the check's limit fail it."""
    import torch

    out = ctx.work / record.name
    out.mkdir(parents=True, exist_ok=True)
    gpus = 0 if ctx.rehearse else torch.cuda.device_count()
    fault = next((f for f in ("syncbn-skip", "ddp-unused") if ctx.fault(f)), "")
    code = ctx.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", SCRIPT,
                    "--ranks-worker", out, "cpu" if ctx.rehearse else "cuda", ctx.scale.collective_timeout_s, fault])
    ranks = [json.loads((out / RANK_RESULT.format(r)).read_text()) if (out / RANK_RESULT.format(r)).is_file() else {}
             for r in range(2)]
    record.figures.update(gpus=gpus, ranks=ranks, collective_timeout_s=ctx.scale.collective_timeout_s,
                          covers=("CPU ranks over gloo: DDP's gradient all-reduce; SyncBatchNorm runs on CUDA only"
                                  if ctx.rehearse else
                                  f"SyncBatchNorm and DDP over {'nccl, two GPUs' if gpus > 1 else 'gloo, both ranks on one GPU'}"))
    done = [r.get("steps", 0) for r in ranks]
    record.brief = (f"{record.figures['covers']}; steps {done}, SyncBatchNorm layers "
                    f"{[r.get('sync_batchnorm_layers') for r in ranks]}, parameters apart after the steps "
                    f"{ranks[0].get('parameters_apart')}")
    problems = [f"the two ranks exited with {code}"] if code else []
    if done != [RANK_STEPS, RANK_STEPS]:
        problems.append(f"steps done per rank {done}, expected {RANK_STEPS} each")
    if ranks[1] and ranks[1].get("contour_patches") != 0 or ranks[0] and not ranks[0].get("contour_patches"):
        problems.append("rank 0 must have contour patches and rank 1 none: "
                        f"{[r.get('contour_patches') for r in ranks]}")
    if not ctx.rehearse and not all(r.get("sync_batchnorm_layers") for r in ranks):
        problems.append("no BatchNorm was converted to SyncBatchNorm")
    if ranks[0] and not ranks[0].get("parameters_apart", 1.0) <= 1e-6:
        problems.append(f"the ranks' parameters differ by {ranks[0].get('parameters_apart')} after the steps")
    if problems:
        raise Failed("; ".join(problems))


def ranks_worker(argv: List[str]) -> int:
    """One rank of :func:`check_ranks`, under torchrun --nproc_per_node=2."""
    import datetime

    import torch
    import torch.distributed as dist

    from ncl_plugin import NCL
    from ncl_plugin.method.sampler import CONTOUR, classify_patches

    out, kind, timeout_s, fault = Path(argv[0]), argv[1], float(argv[2]), argv[3] if len(argv) > 3 else ""
    rank = int(os.environ["RANK"])
    gpus = torch.cuda.device_count() if kind == "cuda" else 0
    device = torch.device("cuda", rank if gpus > 1 else 0) if kind == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if gpus > 1 else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    torch.manual_seed(0)  # the same initial weights on both ranks
    model = NCL(backbone="resnet18", output_stride=16, patch_size=16, pivot_norm="batch")
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if fault in ("syncbn-skip", "ddp-unused") and rank == 1:
        skip_pivot_branches(model, out_of_graph=fault == "ddp-unused")
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(rank)
    image = torch.randn(2, 3, 64, 64, generator=generator).to(device)
    mask = torch.zeros(2, 1, 64, 64)
    if rank == 0:
        mask[:, :, 8:40, 12:44] = 1  # a tampered square: tampered, authentic and contour patches
    mask = mask.to(device)
    result = {"rank": rank, "backend": backend, "device": str(device), "steps": 0, "losses": [],
              "contour_patches": int((classify_patches(mask, 16) == CONTOUR).sum()),
              "sync_batchnorm_layers": sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())}
    try:
        for _ in range(RANK_STEPS):
            loss = ddp(image=image, mask=mask, label=None)["backward_loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            result["steps"] += 1
            result["losses"].append(float(loss.detach()))
        flat = torch.cat([p.detach().float().flatten() for p in model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(2)]
        dist.all_gather(gathered, flat)
        result["parameters_apart"] = float((gathered[0] - gathered[1]).abs().max())
    finally:
        (out / RANK_RESULT.format(rank)).write_text(json.dumps(result))
    dist.destroy_process_group()
    return 0


def skip_pivot_branches(model, out_of_graph: bool) -> None:
    """Seeded faults of a rank without a usable pivot. syncbn-skip: it does not enter the pivot branches
    (what NCL did before its branches ran on an empty batch), so a SyncBatchNorm collective waits for it.
    ddp-unused: the branches' parameters also leave its graph, so DDP's gradient all-reduce waits for it."""
    import types

    from ncl_plugin.method.losses.ncl_contrastive import Term

    loss = model.contrastive_loss
    original = loss._pivot_terms

    def pivot_terms(self, sample, features, tampered, authentic):
        if bool(sample.has_contour.any()):
            return original(sample, features, tampered, authentic)
        zero = features.new_zeros(())
        return {"ncl_se_pos": Term.undefined(zero), "ncl_se_neg": Term.undefined(zero)}, zero

    loss._pivot_terms = types.MethodType(pivot_terms, loss)
    if out_of_graph:
        kept = [p for name, p in loss.named_parameters() if not name.startswith("branch_")]
        loss.parameters = lambda *args, **kwargs: iter(kept)  # what its loss anchors in the graph


# ---------------------------------------------------------------- benco train under torchrun, one rank
def check_torchrun(ctx: Context, record: Record) -> None:
    """benco train's own torchrun path with one rank: the backend it picks and the SyncBatchNorm conversion
    (no collective has a partner with one rank: the two-rank check covers those)."""
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

    checkpoint, data = tested_checkpoint(ctx), need_data(ctx)
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
    if difference is None or not difference <= 0.01:  # NaN fails too
        raise Failed(f"the metrics differ from those the training logged by {difference}")


def check_test_robust(ctx: Context, record: Record) -> None:
    checkpoint, data = tested_checkpoint(ctx), need_data(ctx)
    stem = ctx.work / record.name / "robustness"
    expect(ctx.run(benco("test-robust", "--checkpoint", checkpoint, "--test_data_path", data / "test", "--jpeg", 90,
                         "--blur", "", "--noise", "", "--resize", "", "--metrics", "pixel-f1,pixel-auc", "--out", stem,
                         *ctx.scale.device)), "benco test-robust")
    rows = json.loads(stem.with_suffix(".json").read_text())
    record.figures["rows"] = [{k: rounded(v) for k, v in row.items()} for row in rows]
    record.brief = ", ".join(f"{r['perturbation']} {r['parameter']}: F1 {r['pixel-level F1']:.3f} AUC {r['pixel-level AUC']:.3f}" for r in rows)
    if [(r["perturbation"], r["parameter"]) for r in rows] != [("jpeg", 90)]:
        raise Failed(f"expected one row, JPEG quality 90; got {len(rows)}")
    scores = {k: v for r in rows for k, v in r.items() if k.startswith("pixel-level")}
    if len(scores) != 2 or not all(isinstance(v, float) and math.isfinite(v) for v in scores.values()):
        raise Failed(f"the robustness scores are not two finite numbers: {scores}")


def check_predict(ctx: Context, record: Record) -> None:
    checkpoint, data = tested_checkpoint(ctx), need_data(ctx)
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
    scores = [p["score"] for p in predictions.values()]
    if not all(isinstance(v, float) and math.isfinite(v) and 0 <= v <= 1 for v in scores):
        raise Failed(f"image scores outside [0, 1] or not finite: {scores[:4]}")


def check_complexity(ctx: Context, record: Record) -> None:
    """benco complexity's parameter count must be the model's own, its FLOPs above zero."""
    size = ctx.scale.complexity_size
    counted = ["--backbone", "resnet34"] if ctx.fault("complexity-other-model") else []
    expect(ctx.run(benco("complexity", "--model", "ncl", *ctx.scale.network, *counted, "--image_size", size,
                         *ctx.scale.device)), "benco complexity")
    # The terminal's line may wrap anywhere between the words.
    said = re.search(r"([\d.]+)\s+M\s+parameters.*?([\d.]+)\s+GFLOPs\s+per\s+image", ctx.log.read_text(), re.S)
    if not said:
        raise Failed("benco complexity printed no parameter and FLOP count")
    own = own_parameters(ctx.scale.network)
    digits = len(said.group(1).partition(".")[2])  # compared as printed
    record.figures.update(image_size=size, parameters_m=float(said.group(1)), gflops_per_image=float(said.group(2)),
                          model_parameters=own)
    record.brief = (f"{said.group(1)} M parameters (the model's own: {own / 1e6:.{digits}f} M), {said.group(2)} GFLOPs "
                    f"per image at {size}x{size}")
    problems = []
    if float(said.group(1)) != round(own / 1e6, digits):
        problems.append(f"it counted {said.group(1)} M parameters; the model has {own / 1e6:.{digits}f} M")
    if not float(said.group(2)) > 0:
        problems.append(f"{said.group(2)} GFLOPs per image")
    if problems:
        raise Failed("; ".join(problems))


def own_parameters(network: List[str]) -> int:
    """The parameters of NCL built with ``network``'s flags, as a user's script builds it."""
    from ncl_plugin import NCL

    flags = dict(zip(network[::2], network[1::2]))
    kwargs = {k.lstrip("-"): (int(v) if v.isdigit() else v) for k, v in flags.items()}
    return sum(p.numel() for p in NCL(**kwargs).parameters())


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
    """NCL's training step over its network's (deeplabv3plus), both timed interleaved by speed.py."""
    out = ctx.work / "speed.json"
    slow = ["--slow_ncl", "2"] if ctx.fault("slow-ncl") else []
    expect(ctx.run([sys.executable, SCRIPT.parent / "speed.py", *ctx.scale.speed, *slow, "--out", out]),
           "benchmarks/speed.py")
    report = json.loads(out.read_text())
    record.figures.update(speed_figures(report), limit=ctx.scale.speed_limit)
    base = record.figures["models"].get("deeplabv3plus", {})
    ncl = record.figures["models"].get("ncl", {})
    if not base or not ncl:
        raise Failed("ncl or deeplabv3plus was not measured")
    record.brief = (f"ncl / deeplabv3plus: train {ratio_text(ncl['train_ratio'])} (limit {ctx.scale.speed_limit}), "
                    f"inference {ratio_text(ncl['inference_ratio'])}, memory {ratio_text(ncl['memory_ratio'])}")
    if not ncl["train_ratio"] <= ctx.scale.speed_limit:
        raise Failed(f"NCL's training step takes {ncl['train_ratio']:.3f}x its network's, over {ctx.scale.speed_limit}")


def check_speed_zoo(ctx: Context, record: Record) -> None:
    """IMDL-BenCo's zoo beside NCL at the paper's scale: figures, nothing asserted but that each ran or said why."""
    out = ctx.work / "speed-zoo.json"
    argv = [a for a in ctx.scale.speed if a not in ("--baselines", "")] + ctx.scale.speed_zoo
    expect(ctx.run([sys.executable, SCRIPT.parent / "speed.py", *argv, "--out", out]), "benchmarks/speed.py")
    record.figures.update(speed_figures(json.loads(out.read_text())))
    others = [f"{n} {m['train_ratio']:.2f}x" for n, m in record.figures["models"].items() if n not in ("ncl", "deeplabv3plus")]
    record.brief = f"training step against deeplabv3plus: {', '.join(others) or 'none'}"
    if not others and not record.figures["not_run"]:
        raise Failed("no zoo model was timed or said why not")


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
    from ncl_plugin.engine.training_log import read_log

    out = ctx.work / record.name
    baseline = "deeplabv3plus:epochs=2" if ctx.fault("unequal-steps") else "deeplabv3plus"
    expect(ctx.run(benco("bench", "--models", f"ncl,ncl:contrast_weight=0,{baseline}", "--seeds", 0,
                         *ctx.scale.bench, "--out", out)), "benco bench")
    rows = bench_rows(out / "bench.csv")
    steps = {folder.name: sum(row.get("train_steps", 0) for row in read_log(str(folder)))
             for folder in sorted(out.glob("*-seed0"))}
    record.figures.update(rows=rows, optimiser_steps=steps)
    record.brief = "; ".join(bench_brief(row) for row in rows) + f"; steps {sorted(set(steps.values()))}"
    if len(rows) != 3:
        raise Failed(f"benco bench finished {len(rows)} of 3 runs")
    if len(steps) != 3 or len(set(steps.values())) != 1 or not min(steps.values()) > 0:
        raise Failed(f"the runs took unequal numbers of optimiser steps: {steps}")


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
    title: str  # what it proves, no more
    run: Callable[[Context, Record], None]
    limit: str  # its key in Scale.limits
    essential: bool = True  # essential checks run first, in order, and fit the budget; the others only if time is left


def train_check(model: str, variant: str, essential: bool) -> Check:
    proves = {"fp16": "convolutions in float16 under IMDL-BenCo's autocast, finite losses",
              "bf16": "convolutions in bfloat16 (a GPU: IMDL-BenCo's autocast made bfloat16; a CPU: benco's AMP), finite losses",
              "channels_last": "weights in channels-last, convolutions in the AMP dtype, finite losses"}[variant]
    return Check(f"train-{model}-{variant}", f"benco train --model {model}: {proves}",
                 lambda ctx, record: check_train(ctx, record, model, variant), "train", essential)


CHECKS = [
    Check("versions", "versions and imports", check_versions, "versions"),
    Check("data", "the synthetic set every check trains on, every image with its mask", check_data, "data"),
    *[train_check("ncl", variant, True) for variant in VARIANTS],
    Check("ranks-syncbn", "two ranks, one without contour patches, train in step: no collective left waiting",
          check_ranks, "ranks-syncbn"),
    Check("test", "benco test on the checkpoint gives the metrics its training logged", check_test, "test"),
    Check("test-robust", "benco test-robust, JPEG 90: finite scores", check_test_robust, "test-robust"),
    Check("predict", "benco predict: a mask and a score in [0, 1] for every image", check_predict, "predict"),
    Check("complexity", "benco complexity: the model's own parameter count, FLOPs above zero", check_complexity,
          "complexity"),
    Check("sigterm-resume", "SIGTERM mid-epoch, then --resume auto finishes the run", check_sigterm_resume,
          "sigterm-resume"),
    Check("speed", "NCL's training step within the limit of its network's (deeplabv3plus)", check_speed, "speed"),
    *[train_check("deeplabv3plus", variant, False) for variant in VARIANTS],
    Check("torchrun-benco", "benco train under torchrun, one rank: the backend and the SyncBatchNorm conversion",
          check_torchrun, "torchrun-benco", False),
    Check("imdlbenco-train-py", "IMDL-BenCo's train.py with the import line trains and saves", check_imdlbenco_train,
          "imdlbenco-train-py", False),
    Check("speed-zoo", "IMDL-BenCo's zoo timed beside NCL at the paper's scale", check_speed_zoo, "speed-zoo", False),
    Check("equal-steps", "ncl, ncl:contrast_weight=0, deeplabv3plus through benco bench: equal optimiser steps",
          check_equal_steps, "equal-steps", False),
]
ALWAYS = ("versions", "data")  # every later check needs them

# --fault NAME seeds a fault that the named checks must catch: name -> (those checks, what it does, a CPU can seed it)
FAULTS = {
    "import-missing": (("versions",), "albumentations cannot be imported", True),
    "data-short": (("data",), "one training image of the synthetic set is deleted", True),
    "amp-off": (("train-ncl-fp16", "train-ncl-bf16"), "the AMP training runs get --if_not_amp", True),
    "channels-last-off": (("train-ncl-channels_last",), "the channels-last run gets --no_channels_last", True),
    "syncbn-skip": (("ranks-syncbn",), "the rank without contour patches skips NCL's pivot branches (their "
                    "SyncBatchNorm: CUDA only)", False),
    "ddp-unused": (("ranks-syncbn",), "the rank without contour patches leaves the pivot branches out of its graph",
                   True),
    "weights-nan": (("test", "test-robust", "predict"), "the checkpoint they read holds a NaN weight", True),
    "complexity-other-model": (("complexity",), "benco complexity counts a resnet34 network", True),
    "slow-ncl": (("speed",), "speed.py makes NCL's training step twice as long", True),
    "unequal-steps": (("equal-steps",), "deeplabv3plus trains one epoch more than the others", True),
}


def run_check(ctx: Context, check: Check, record: Record) -> None:
    limit = ctx.scale.limits[check.limit]
    left = ctx.run_deadline - time.monotonic()
    record.limit_s = int(min(limit, max(left, 0)))
    if not check.essential and left < limit:
        return finish(record, "not run", f"optional: {left:.0f} s left of the budget, less than its {limit} s")
    if left < MIN_START_S:
        return finish(record, "not run", f"out of time: {left:.0f} s left of the budget")
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
STATUSES = ("passed", "failed", "skipped", "not run")


def verdict(records: List[Record], selected: Optional[set]) -> str:
    """passed only when no check failed and every essential check that was asked for ran (passed, or does
    not apply here: skipped)."""
    essential = {c.name for c in CHECKS if c.essential}
    failed = [r.name for r in records if r.status == "failed"]
    missing = [r.name for r in records if r.status == "not run" and r.name in essential
               and (selected is None or r.name in selected)]
    if failed or missing:
        return "failed: " + "; ".join(filter(None, [failed and f"failed {', '.join(failed)}",
                                                    missing and f"essential checks not run: {', '.join(missing)}"]))
    return "passed" if selected is None else "passed (the checks --only selected)"


def write_results(ctx: Context, records: List[Record], started: float, budget: float, finished: bool,
                  selected: Optional[set] = None) -> None:
    report = {
        "format": FORMAT,
        "script": "benchmarks/gpu_check.py",
        "mode": "rehearsal (CPU)" if ctx.rehearse else "GPU",
        "device": ctx.device_name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "finished": finished,
        "verdict": verdict(records, selected) if finished else "unfinished",
        "faults": sorted(ctx.faults),
        "budget_s": budget,
        "seconds": round(time.monotonic() - started, 1),
        "counts": {s: sum(r.status == s for r in records) for s in STATUSES},
        "checks": [asdict(r) for r in records],
    }
    tmp = ctx.out / (RESULTS + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, ctx.out / RESULTS)


def summary_table(ctx: Context, records: List[Record], seconds: float, selected: Optional[set] = None) -> str:
    counts = {s: sum(r.status == s for r in records) for s in STATUSES}
    head = (f"gpu_check on {ctx.device_name}: " + ", ".join(f"{n} {s}" for s, n in counts.items())
            + f" in {seconds:.0f} s" + (f"; faults seeded: {', '.join(sorted(ctx.faults))}" if ctx.faults else ""))
    width = max(len(r.name) for r in records)
    lines = [head, f"{'check':<{width}}  {'status':<8} {'seconds':>7}  figures, or why"]
    for r in records:
        text = r.note if r.status != "passed" else r.brief
        if r.status == "failed" and r.brief:
            text = f"{r.note} [{r.brief}]"
        lines.append(f"{r.name:<{width}}  {r.status:<8} {r.seconds:>7.1f}  {text[:200]}")
    lines.append(f"Verdict: {verdict(records, selected)}")
    lines.append(f"Wrote {ctx.out / RESULTS} and {ctx.logs}/")
    return "\n".join(lines)


# ---------------------------------------------------------------- --observe: benco, watched
def observe(argv: List[str]) -> int:
    """`benco ARGV` in this process, with the dtypes its training convolutions output (IMDL-BenCo's float16
    autocast made bfloat16 by --observe=bfloat16),
    each optimiser step's loss, gradient norm and start, and SyncBatchNorm conversions watched; the
    summary is printed as one OBSERVED line at the end."""
    import torch
    from IMDLBenCo.training_scripts.utils import misc

    dtype = argv[0].partition("=")[2]
    seen = {"convolution_dtypes": {}, "losses": [], "norms": [], "starts": [], "sync_batchnorm_layers": 0,
            "channels_last_weights": None, "backend": None}
    if dtype:
        swap_autocast(torch, getattr(torch, dtype))
    watch_convolutions(torch, seen)
    watch_scaler(torch, misc, seen)
    watch_sync_batchnorm(torch, seen)

    from ncl_plugin import cli

    code = cli.main(argv[1:])
    if int(os.environ.get("RANK", "0")) == 0:
        # Not print: under torchrun IMDL-BenCo replaces it with one that stamps the time first.
        sys.stdout.write(OBSERVED + json.dumps(observed_summary(seen)) + "\n")
        sys.stdout.flush()
    return code


def swap_autocast(torch, dtype) -> None:
    """Make IMDL-BenCo's ``torch.cuda.amp.autocast()`` (float16 unless told) use ``dtype``: how a GPU runs
    the bfloat16 check. Whether it took is what the convolutions produce (:func:`watch_convolutions`)."""
    original = torch.cuda.amp.autocast

    def autocast(*args, **kwargs):
        kwargs["dtype"] = dtype
        return original(*args, **kwargs)

    torch.cuda.amp.autocast = autocast


def watch_convolutions(torch, seen: Dict) -> None:
    """Count the dtypes that convolutions output in training mode: what autocast actually did, whatever
    any context claims (a disabled autocast still reports a fast_dtype)."""

    def hook(module, inputs, output):
        if module.training and isinstance(module, torch.nn.modules.conv._ConvNd) and isinstance(output, torch.Tensor):
            name = str(output.dtype).replace("torch.", "")
            seen["convolution_dtypes"][name] = seen["convolution_dtypes"].get(name, 0) + 1

    torch.nn.modules.module.register_module_forward_hook(hook)


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
        "convolution_dtypes": seen["convolution_dtypes"],
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
    p.add_argument("--fault", default="", help="comma list of faults to seed, each of which its checks must catch: "
                   + "; ".join(f"{n} ({', '.join(c)}): {what}" for n, (c, what, _) in FAULTS.items()))
    args = p.parse_args(argv)
    wrong = [f for f in args.fault.split(",") if f and f not in FAULTS]
    if wrong:
        raise UsageError(f"--fault {args.fault}: no fault named {', '.join(wrong)}; the faults are {', '.join(FAULTS)}")
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
    if argv and argv[0] == "--ranks-worker":
        return ranks_worker(argv[1:])
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
    ctx = Context(out, args.rehearse, budget, [f for f in args.fault.split(",") if f])
    records = [Record(c.name, c.title) for c in CHECKS]
    selected = {n for n in args.only.split(",") if n} | set(ALWAYS) if args.only else None
    write_results(ctx, records, started, budget, finished=False)
    for check, record in zip(CHECKS, records):
        if selected is not None and check.name not in selected:
            finish(record, "not run", "not selected (--only)")
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
    write_results(ctx, records, started, budget, finished=True, selected=selected)
    print(summary_table(ctx, records, time.monotonic() - started, selected), flush=True)
    return 0 if verdict(records, selected).startswith("passed") else 1


if __name__ == "__main__":
    sys.exit(main())

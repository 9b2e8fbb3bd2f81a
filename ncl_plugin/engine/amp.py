"""Automatic mixed precision (AMP): which dtype a command runs its model in, and the context that does it.

IMDL-BenCo trains under ``torch.cuda.amp.autocast()`` (float16, with a GradScaler) unless
``--if_not_amp``. The same switch here covers every command that runs a model (train, test,
calibrate, predict, test-robust, bench) on every device:

  CUDA                            float16, as IMDL-BenCo's trainer (and a GradScaler in training)
  a CPU with bfloat16 instructions bfloat16 (AVX-512 BF16 or AMX on x86, BF16 on Arm): no scaler needed,
                                  bfloat16 has float32's range
  any other CPU                   float32, said once: emulated bfloat16 is slower than float32
  --if_not_amp                    float32

The model's outputs come back in float32 whatever ran inside (:func:`running`), so that IMDL-BenCo's
evaluators, TensorBoard and the thresholds never see a reduced-precision tensor; NCL's sampler and
losses turn autocast off themselves (``ncl_plugin.method.precision``).
"""

import contextlib
import functools
import platform
import re
import subprocess
from pathlib import Path
from typing import Iterator, Optional

import torch

from ncl_plugin.terminal import say

FLOAT32, BFLOAT16, FLOAT16 = "float32", "bfloat16", "float16"
DTYPES = {BFLOAT16: torch.bfloat16, FLOAT16: torch.float16}
FLAG_HELP = (
    "no automatic mixed precision: float32 throughout (by default float16 autocast on a GPU, as IMDL-BenCo's "
    "trainer; bfloat16 on a CPU with bfloat16 instructions; float32 on other CPUs)"
)
# x86 flags of /proc/cpuinfo that mean bfloat16 arithmetic in hardware; Arm's is "bf16" among its Features.
X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (without it, oneDNN emulates it, slower than float32)."""
    machine = platform.machine().lower()
    if platform.system() == "Darwin" and machine == "arm64":
        try:
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True)
            return out.stdout.strip() == "1"
        except OSError:
            return False
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return bfloat16_in_cpuinfo(cpuinfo, machine)


def bfloat16_in_cpuinfo(cpuinfo: str, machine: str) -> bool:
    """Whether /proc/cpuinfo's flags (x86) or Features (Arm) name bfloat16 arithmetic."""
    flags = set(re.findall(r"[\w.]+", " ".join(re.findall(r"^(?:flags|Features)\s*:(.*)$", cpuinfo, re.MULTILINE))))
    return any(flag in flags for flag in X86_BF16_FLAGS) or ("bf16" in flags and machine in ("aarch64", "arm64"))


def precision_for(device: torch.device, if_not_amp: bool) -> str:
    """The dtype a run on ``device`` computes in: float16 on CUDA, bfloat16 on a CPU that has it, else float32."""
    if if_not_amp:
        return FLOAT32
    if device.type == "cuda":
        return FLOAT16
    if device.type == "cpu" and cpu_has_bfloat16():
        return BFLOAT16
    return FLOAT32


_said = set()


def choose(args, device: torch.device) -> str:
    """Set ``args.precision`` (recorded in every log, summary and checkpoint) and ``args.if_not_amp``
    (what IMDL-BenCo's trainer reads) for a command about to run on ``device``; say once per process
    when a CPU without bfloat16 instructions keeps float32."""
    wanted_off = bool(getattr(args, "if_not_amp", False))
    args.precision = precision_for(device, wanted_off)
    args.if_not_amp = args.precision == FLOAT32
    if not wanted_off and args.precision == FLOAT32 and "no-bf16" not in _said:
        _said.add("no-bf16")
        say(
            f"AMP: this {device.type.upper()} has no bfloat16 instructions, so it runs in float32 "
            "(emulated bfloat16 would be slower); --if_not_amp silences this"
        )
    return args.precision


def autocast(device: torch.device, precision: str):
    """``torch.autocast`` on ``device`` in ``precision``; a context that changes nothing for float32."""
    if precision == FLOAT32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def _outputs_in_float32(module, inputs, output):
    """A forward hook: a reduced-precision tensor among the model's outputs (its dict, nested) comes back float32."""

    def cast(value):
        if isinstance(value, torch.Tensor) and value.dtype in (torch.float16, torch.bfloat16):
            return value.float()
        if isinstance(value, dict):
            return {k: cast(v) for k, v in value.items()}
        return value

    return cast(output)


@contextlib.contextmanager
def outputs_in_float32(model: torch.nn.Module) -> Iterator[None]:
    """While inside, ``model``'s outputs are float32 (a zoo model's mask would otherwise be bfloat16, which
    numpy, TensorBoard and IMDL-BenCo's AUC cannot take, or rank with only 8 bits of mantissa)."""
    handle = model.register_forward_hook(_outputs_in_float32)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def running(model: torch.nn.Module, device: torch.device, precision: Optional[str]) -> Iterator[None]:
    """Inference in ``precision`` (autocast on ``device``), the outputs back in float32."""
    with autocast(device, precision or FLOAT32), outputs_in_float32(model):
        yield


def trainer_autocast(device: torch.device, precision: str):
    """What replaces ``torch.cuda.amp.autocast`` while IMDL-BenCo's ``train_one_epoch`` runs on a CPU: its
    trainer asks for CUDA's float16 autocast, which on a CPU is a no-op with a warning."""
    return lambda *args, **kwargs: autocast(device, precision)


def recorded(settings: dict) -> str:
    """The precision a run recorded; a run saved before the record existed ran float32 where it said
    ``if_not_amp`` (always, on a CPU) and float16 otherwise."""
    if settings.get("precision"):
        return str(settings["precision"])
    return FLOAT32 if settings.get("if_not_amp", True) else FLOAT16


def described(precision: str) -> str:
    """How the run's first line names its precision."""
    return "AMP off (float32)" if precision == FLOAT32 else f"AMP {precision}"

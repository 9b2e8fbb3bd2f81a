"""The one place that adapts IMDL-BenCo 0.1.45's CUDA-only lines to CPUs and the gloo backend.

IMDL-BenCo's loop (``train_one_epoch``, ``test_one_epoch``) and evaluators are
used as they are; :func:`adapted` swaps, for the duration of a run, only the
lines listed in :data:`ADAPTED_LINES`, and puts them back afterwards.
``tests/test_compat.py`` checks that each of those lines is still in the
installed IMDL-BenCo, so that an upgrade says which adaptation to drop.
"""

import contextlib
import os
import types
import warnings
from typing import Iterator, Tuple

import torch
import torch.distributed as dist
from IMDLBenCo.training_scripts.utils import misc

from ncl_plugin.errors import UsageError

# (file under IMDLBenCo/, the line as IMDL-BenCo writes it, what replaces it here)
ADAPTED_LINES: Tuple[Tuple[str, str, str], ...] = (
    (
        "training_scripts/utils/misc.py",
        "t = torch.tensor([self.count, self.total], dtype=torch.float64, device='cuda')",
        "_synchronize_between_processes",
    ),
    ("training_scripts/utils/misc.py", "x_reduce = torch.tensor(x).cuda()", "_all_reduce_mean, _all_reduce_sum"),
    ("evaluation/F1.py", "dist.all_gather(gather_predict_list, predict)", "_single_process_distributed"),
    ("evaluation/AUC.py", "dist.all_gather(gather_predict_list, predict)", "_single_process_distributed"),
    ("evaluation/Accuracy.py", "dist.all_gather(gather_predict_list, predict)", "_single_process_distributed"),
    ("training_scripts/trainer/trainer.py", "torch.cuda.synchronize()", "adapted: a no-op without CUDA"),
    (
        "training_scripts/trainer/trainer.py",
        "amp_placeholder = torch.cuda.amp.autocast()",
        "adapted: the CPU's autocast",
    ),
    ("training_scripts/utils/misc.py", "self._scaler = torch.cuda.amp.GradScaler()", "amp_scaler"),
    ("training_scripts/utils/misc.py", "args.dist_backend = 'nccl'", "init_distributed"),
    ("training_scripts/utils/misc.py", "torch.backends.cudnn.enabled = False", "seed_everything"),
)


def collective_device() -> torch.device:
    """Where tensors must live for a collective: CUDA under nccl, CPU under gloo."""
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# misc.py SmoothedValue.synchronize_between_processes builds its tensor with device='cuda'.
def _synchronize_between_processes(self):
    if not misc.is_dist_avail_and_initialized():
        return
    t = torch.tensor([self.count, self.total], dtype=torch.float64, device=collective_device())
    dist.barrier()
    dist.all_reduce(t)
    t = t.tolist()
    self.count = int(t[0] + 0.5)
    self.total = t[1]


# misc.py all_reduce_mean / all_reduce move the value with .cuda().
def _all_reduce(x, mean: bool):
    world_size = misc.get_world_size()
    if world_size == 1:
        return x
    t = torch.tensor(x, device=collective_device())
    dist.all_reduce(t)
    if mean:
        t /= world_size
    return t.item()


def _all_reduce_mean(x):
    return _all_reduce(x, mean=True)


def _all_reduce_sum(x):
    return _all_reduce(x, mean=False)


def _single_process_distributed() -> types.SimpleNamespace:
    """torch.distributed as the image-level evaluators see it.

    evaluation/F1.py, AUC.py and Accuracy.py call ``dist.all_gather``
    even when no process group exists (one GPU, or a CPU); with a single process
    gathering is copying.
    """

    def all_gather(tensor_list, tensor, *args, **kwargs):
        if dist.is_initialized():
            return dist.all_gather(tensor_list, tensor, *args, **kwargs)
        tensor_list[0].copy_(tensor)
        return None

    def barrier(*args, **kwargs):
        return dist.barrier(*args, **kwargs) if dist.is_initialized() else None

    shim = types.SimpleNamespace(**{k: getattr(dist, k) for k in dir(dist) if not k.startswith("__")})
    shim.all_gather = all_gather
    shim.barrier = barrier
    return shim


@contextlib.contextmanager
def patched(target, name: str, value) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)


@contextlib.contextmanager
def adapted(device: torch.device, precision: str = "float32") -> Iterator[None]:
    """Run IMDL-BenCo's loop and evaluators on ``device`` (CPU or CUDA), alone or under DDP, its trainer's
    autocast in ``precision`` (:mod:`ncl_plugin.engine.amp`)."""
    from IMDLBenCo.evaluation import AUC, F1, Accuracy

    from ncl_plugin.engine import amp

    with contextlib.ExitStack() as stack:
        enter = stack.enter_context
        enter(patched(misc.SmoothedValue, "synchronize_between_processes", _synchronize_between_processes))
        enter(patched(misc, "all_reduce_mean", _all_reduce_mean))
        enter(patched(misc, "all_reduce", _all_reduce_sum))
        shim = _single_process_distributed()
        for module in (F1, AUC, Accuracy):
            enter(patched(module, "dist", shim))
        if device.type != "cuda":
            # trainer.py calls torch.cuda.synchronize() on every step,
            # which raises on a machine without a CUDA driver.
            enter(patched(torch.cuda, "synchronize", lambda *a, **k: None))
            # trainer.py asks for torch.cuda.amp.autocast(), CUDA's float16, a no-op (with a warning) on a CPU.
            enter(patched(torch.cuda.amp, "autocast", amp.trainer_autocast(device, precision)))
        yield


def amp_scaler(device: torch.device, enabled: bool) -> misc.NativeScalerWithGradNormCount:
    """IMDL-BenCo's loss scaler, with a GradScaler for the actual device.

    misc.py NativeScalerWithGradNormCount builds torch.cuda.amp.GradScaler(),
    deprecated and CUDA-only; on a CPU it only warns and disables itself.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scaler = misc.NativeScalerWithGradNormCount()
    scaler._scaler = torch.amp.GradScaler(device.type, enabled=enabled and device.type == "cuda")
    return scaler


def init_distributed(args) -> None:
    """Replace misc.init_distributed_mode, which always picks nccl and
    calls torch.cuda.set_device: nccl on GPUs, gloo on CPUs.

    Sets args.distributed, args.rank, args.world_size, args.gpu and args.device.
    """
    args.distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    args.rank, args.world_size, args.gpu = 0, 1, 0
    if not args.distributed:
        return
    args.rank = int(os.environ["RANK"])
    args.world_size = int(os.environ["WORLD_SIZE"])
    args.gpu = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", args.world_size))
    if args.device.startswith("cuda"):
        gpus = torch.cuda.device_count()
        if local_world > gpus:
            raise UsageError(
                f"--nproc_per_node {local_world} is larger than the {gpus} GPU(s) on this machine; "
                f"use --nproc_per_node {max(gpus, 1)} or --device cpu"
            )
        torch.cuda.set_device(args.gpu)
        args.device = f"cuda:{args.gpu}"
        backend = "nccl"
    else:
        backend = "gloo"
    init_method = getattr(args, "dist_url", None) or "env://"
    dist.init_process_group(backend=backend, init_method=init_method, world_size=args.world_size, rank=args.rank)
    dist.barrier()
    # Same as misc.setup_for_distributed, which replaces print on every non-zero rank.
    misc.setup_for_distributed(args.rank == 0)


def seed_everything(seed: int) -> None:
    """misc.seed_torch also sets torch.backends.cudnn.enabled = False, which makes every
    convolution on a GPU several times slower; seed without turning cuDNN off."""
    import random

    import numpy as np

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)

"""The one place that adapts IMDL-BenCo 0.1.45's CUDA-only lines to CPUs and the gloo backend.

IMDL-BenCo's loop (``train_one_epoch``, ``test_one_epoch``) and evaluators are
used as they are; :func:`adapted` swaps, for the duration of a run, only the
lines listed below, and puts them back afterwards. Each adaptation names the
IMDL-BenCo line it works around.
"""
import contextlib
import os
import types
import warnings
from typing import Callable, Iterator, Optional

import torch
import torch.distributed as dist
from IMDLBenCo.training_scripts.utils import misc

from .errors import UsageError


def collective_device() -> torch.device:
    """Where tensors must live for a collective: CUDA under nccl, CPU under gloo."""
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# misc.py:59 -- SmoothedValue.synchronize_between_processes builds its tensor with device='cuda'.
def _synchronize_between_processes(self):
    if not misc.is_dist_avail_and_initialized():
        return
    t = torch.tensor([self.count, self.total], dtype=torch.float64, device=collective_device())
    dist.barrier()
    dist.all_reduce(t)
    t = t.tolist()
    self.count = int(t[0] + 0.5)
    self.total = t[1]


# misc.py:353 and misc.py:363 -- all_reduce_mean / all_reduce move the value with .cuda().
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

    evaluation/F1.py:119, AUC.py:119 and Accuracy.py:71 call ``dist.all_gather``
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
def _patched(target, name: str, value) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)


@contextlib.contextmanager
def adapted(device: torch.device, schedule_position: Optional[Callable[[], float]] = None) -> Iterator[None]:
    """Run IMDL-BenCo's loop and evaluators on ``device`` (CPU or CUDA), alone or under DDP.

    ``schedule_position``: where the learning-rate schedule is, in epochs (see below).
    """
    from IMDLBenCo.evaluation import AUC, F1, Accuracy
    from IMDLBenCo.training_scripts.trainer import trainer

    with contextlib.ExitStack() as stack:
        enter = stack.enter_context
        enter(_patched(misc.SmoothedValue, "synchronize_between_processes", _synchronize_between_processes))
        enter(_patched(misc, "all_reduce_mean", _all_reduce_mean))
        enter(_patched(misc, "all_reduce", _all_reduce_sum))
        shim = _single_process_distributed()
        for module in (F1, AUC, Accuracy):
            enter(_patched(module, "dist", shim))
        if device.type != "cuda":
            # trainer.py:81 and trainer.py:107 call torch.cuda.synchronize() on every step,
            # which raises on a machine without a CUDA driver.
            enter(_patched(torch.cuda, "synchronize", lambda *a, **k: None))
        if schedule_position is not None:
            # trainer.py:79 sets the lr from `data_iter_step / len(data_loader) + epoch`, counting steps
            # from the first batch it iterates; an epoch resumed mid-way iterates only its remaining
            # batches, so the position comes from the loader, which counts the skipped ones too.
            original = trainer.adjust_learning_rate
            enter(_patched(trainer, "adjust_learning_rate", lambda opt, _, args: original(opt, schedule_position(), args)))
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
    """Replace misc.init_distributed_mode (misc.py:234-266), which always picks nccl and
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

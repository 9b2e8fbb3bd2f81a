"""What every command that runs a model sets up first: device, processes, seeds, the model itself."""

import os
from typing import Optional

import torch
import torch.distributed as dist

from ncl_plugin.config import model_kwargs, model_parameters
from ncl_plugin.data import loaders
from ncl_plugin.engine import amp, compat
from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import say
from ncl_plugin.zoo import adapt, recipe


def resolve_device(name: Optional[str]) -> torch.device:
    """``--device``: CUDA when present, else CPU; asking for CUDA without a GPU is an error."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is visible on this machine; use --device cpu")
    return device


def is_main() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def setup(args) -> torch.device:
    """Device, process group, precision (AMP) and seeds, in that order."""
    args.device = str(resolve_device(args.device))
    compat.init_distributed(args)
    device = torch.device(args.device)
    amp.choose(args, device)  # args.precision, and args.if_not_amp as IMDL-BenCo's trainer reads it
    compat.seed_everything(args.seed + args.rank)
    if args.num_workers is None:
        args.num_workers = loaders.default_num_workers(int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    args.pin_mem = bool(args.pin_mem) and device.type == "cuda"
    loaders.choose_resizing(args)
    if args.image_size % 32:
        raise UsageError(f"--image_size {args.image_size}: must be a multiple of 32")
    return device


def single_process(args, command: str) -> None:
    if args.distributed:
        raise UsageError(f"benco {command} runs in one process; start it without torchrun")


def _check_weight_files(name: str, model_class, kwargs) -> None:
    """A flag the constructor cannot do without (no default), or a weight-file flag the model's recipe
    knows it needs, left unset: one line naming it, instead of the traceback of its torch.load(None)."""
    import inspect

    entry = recipe(name)
    needed = [k for k, p in model_parameters(model_class).items() if p.default is inspect.Parameter.empty]
    needed += [k for k in entry.weights] + [k for k, _ in entry.flags if k.endswith("path")]
    unset = [k for k in dict.fromkeys(needed) if k in kwargs and kwargs[k] is None]
    if unset:
        fixed = dict(entry.flags)
        scratch = " ".join(f"--{k} {fixed[k]!r}" if k in fixed else f"--{k} EMPTY_FILE" for k in unset)
        raise UsageError(
            f"--model {name} needs {', '.join('--' + k for k in unset)}: its constructor loads pre-trained weights "
            f"from it; to train from random initialisation give {scratch}, as `benco bench` does (`benco bench --list`)"
        )


def build_model(model_class, args, model_args, device: torch.device):
    """Instantiate, move to ``device`` and wrap in DDP when distributed. Returns (model, unwrapped)."""
    kwargs = model_kwargs(model_class, args, model_args)
    _check_weight_files(args.model, model_class, kwargs)
    try:
        model = model_class(**kwargs)
    except (ValueError, TypeError) as err:
        raise UsageError(f"--model {args.model}: {err}") from None
    except (OSError, KeyError, RuntimeError) as err:
        # IMDL-BenCo's models load pre-trained weights in their constructors: a missing
        # or mismatched weight file surfaces here.
        raise UsageError(
            f"--model {args.model} could not be built: {type(err).__name__}: {err} "
            "(check its weight-path flags; `benco train --model "
            f"{args.model} --help` lists them)"
        ) from None
    if getattr(model, "pretrained_note", ""):
        say(model.pretrained_note)
    adapt(args.model, model, args)
    if args.distributed and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if getattr(args, "channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    unwrapped = model
    if args.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(getattr(args, "find_unused_parameters", False)),
        )
    return model, unwrapped

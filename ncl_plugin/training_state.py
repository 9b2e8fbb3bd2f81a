"""Checkpoints of a training run: saving them safely, finding them, resuming from them.

``checkpoint-<epoch>.pth`` follows IMDL-BenCo's layout (``model``, ``optimizer``,
``epoch``, ``scaler``, ``args``) so that IMDL-BenCo's own test.py reads it.
A run stopped by a signal writes ``checkpoint-interrupted.state`` instead: the
same layout plus the position in the epoch and the random states. Its suffix
keeps it out of IMDL-BenCo's test.py, which parses every ``*.pth`` name as
``checkpoint-<int>.pth``.
"""
import errno
import os
import re
from typing import Dict, List, Optional, Tuple

import torch

from .checkpoint import CheckpointError, load_checkpoint, model_state_dict, plain, save_atomically
from .errors import RunError, UsageError
from .progress import console

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)\.pth$")
INTERRUPTED_NAME = "checkpoint-interrupted.state"


def list_checkpoints(folder: str) -> List[Tuple[int, str]]:
    """(epoch, path) of every ``checkpoint-<epoch>.pth`` in ``folder``, oldest first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), os.path.join(folder, n)) for n in os.listdir(folder) if (m := CHECKPOINT_NAME.match(n))]
    return sorted(found)


def _check_finite(model: torch.nn.Module, what: str) -> None:
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise RunError(
                f"{what}: the weights are not finite ({name}); not saved, the previous checkpoint is kept; "
                f"lower --lr or --blr and resume"
            )


def _save(state: Dict, path: str, unwrapped) -> Optional[str]:
    _check_finite(unwrapped, os.path.basename(path))
    try:
        save_atomically(state, path)
    except OSError as err:
        reason = "the disk is full" if err.errno == errno.ENOSPC else str(err)
        console.print(f"[red]could not write {path}: {reason}; the previous checkpoint is kept, training goes on[/red]")
        return None
    return path


def training_state(args, model_args, epoch: int, unwrapped, optimizer, scaler) -> Dict:
    return {
        "model": unwrapped.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "scaler": scaler.state_dict(),
        "args": plain(args),
        "model_args": plain(model_args),
    }


def save_checkpoint(args, model_args, epoch: int, unwrapped, optimizer, scaler) -> Optional[str]:
    """``checkpoint-<epoch>.pth`` after a completed epoch; None when the disk refused it."""
    path = os.path.join(args.output_dir, f"checkpoint-{epoch}.pth")
    return _save(training_state(args, model_args, epoch, unwrapped, optimizer, scaler), path, unwrapped)


def save_interrupted(args, model_args, epoch: int, step: int, rng: Dict, unwrapped, optimizer, scaler) -> Optional[str]:
    """The state of a run stopped before batch ``step`` of ``epoch``."""
    state = training_state(args, model_args, epoch - 1, unwrapped, optimizer, scaler)
    state.update(resume_epoch=epoch, resume_step=step, rng=rng)
    return _save(state, os.path.join(args.output_dir, INTERRUPTED_NAME), unwrapped)


def _position(checkpoint: Dict) -> Tuple[int, int]:
    """(epoch, step) at which a run resumed from ``checkpoint`` goes on."""
    if "resume_epoch" in checkpoint:
        return int(checkpoint["resume_epoch"]), int(checkpoint["resume_step"])
    return int(checkpoint.get("epoch", -1)) + 1, 0


def _candidates(args) -> List[str]:
    if args.resume != "auto":
        return [args.resume]
    paths = [p for _, p in reversed(list_checkpoints(args.output_dir))]
    interrupted = os.path.join(args.output_dir, INTERRUPTED_NAME)
    return ([interrupted] if os.path.isfile(interrupted) else []) + paths


def resume(args, unwrapped, optimizer, scaler) -> Tuple[int, Optional[Dict]]:
    """``--resume PATH`` or ``--resume auto``: the newest loadable state in --output_dir.

    Restores model, optimizer and scaler, sets ``args.start_epoch``, and returns
    (batches of that epoch already done, random states to restore after them).
    A corrupt checkpoint met by ``auto`` is skipped with a warning.
    """
    if not args.resume:
        return 0, None
    trusted = getattr(args, "trust_checkpoint", False)
    best = None
    for path in _candidates(args):
        try:
            checkpoint = load_checkpoint(path, "--resume", trusted=trusted)
            state = model_state_dict(checkpoint, path, "--resume")
        except CheckpointError as err:
            if args.resume != "auto":
                raise
            console.print(f"[yellow]--resume auto: skipping {err}[/yellow]")
            continue
        if best is None or _position(checkpoint) > _position(best[1]):
            best = (path, checkpoint, state)
        if args.resume == "auto" and path.endswith(".pth"):
            break  # numbered checkpoints come newest first: the first loadable one is the newest
    if best is None:
        if args.resume == "auto":
            print(f"--resume auto: no checkpoint in {args.output_dir}; starting from scratch")
            return 0, None
        raise UsageError(f"--resume {args.resume}: nothing to resume from")
    path, checkpoint, state = best
    try:
        unwrapped.load_state_dict(state)
    except RuntimeError as err:
        raise UsageError(f"--resume {path}: does not fit this model ({str(err).splitlines()[0]})") from None
    if "optimizer" not in checkpoint:  # a bare state dict: weights only
        print(f"Loaded weights from {path}; starting at epoch {args.start_epoch}")
        return 0, None
    optimizer.load_state_dict(checkpoint["optimizer"])
    if checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    args.start_epoch, step = _position(checkpoint)
    print(f"Resumed from {path}: epoch {args.start_epoch}" + (f", batch {step}" if step else ""))
    return step, checkpoint.get("rng") if step else None


def forget_interrupted(output_dir: str) -> None:
    path = os.path.join(output_dir, INTERRUPTED_NAME)
    if os.path.isfile(path):
        os.unlink(path)

"""Checkpoints: saving them safely, loading them safely, finding them, resuming from them.

``checkpoint-<epoch>.pth`` follows IMDL-BenCo's layout (``model``, ``optimizer``,
``epoch``, ``scaler``, ``args``) so that IMDL-BenCo's own test.py reads it.
A run stopped by a signal writes ``checkpoint-interrupted.state`` instead: the
same layout plus the position in the epoch and the random states. Its suffix
keeps it out of IMDL-BenCo's test.py, which parses every ``*.pth`` name as
``checkpoint-<int>.pth``. Files are read by :mod:`ncl_plugin.weights` (``weights_only=True``).
"""

import argparse
import errno
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from ncl_plugin.errors import RunError, UsageError
from ncl_plugin.terminal import say, warn
from ncl_plugin.weights import CheckpointError, load_checkpoint, misfit, model_state_dict

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)\.pth$")
INTERRUPTED_NAME = "checkpoint-interrupted.state"
# IMDL-BenCo's train.py also keeps the best epoch's weights, but only past this epoch.
KEEP_BEST_AFTER_EPOCH = 20
# Training flags a test inherits from the checkpoint, so that it runs at the trained resolution.
INHERITED_TRAIN_FLAGS = ("image_size", "if_padding", "if_resizing", "edge_mask_width")
# A buffer only the pivot branches' BatchNorm has (--pivot_norm batch, the only kind before the option).
BATCHNORM_BRANCH = "contrastive_loss.branch_tampered.block.1.running_mean"


SYNTHETIC_WARNING = "generated images only: not meant for real photographs (it has never seen a real manipulation)"


def trained_on(checkpoint: Any) -> str:
    """What a checkpoint's model was trained on, in words: the embedded synthetic set (said to be generated
    images), or the --data_path it names."""
    args = checkpoint.get("args") if isinstance(checkpoint, dict) and isinstance(checkpoint.get("args"), dict) else {}
    described = args.get("training_data")
    data = args.get("data_path")
    if described is None and data:  # a checkpoint saved before training_data was recorded
        synthetic = Path(str(data)).parent.name.startswith("synthetic-")
        described = f"synthetic:the embedded synthetic set ({data})" if synthetic else str(data)
    if not described:
        return "unknown training data (the checkpoint does not say)"
    if described.startswith("synthetic:"):
        return f"{described[len('synthetic:') :]}: {SYNTHETIC_WARNING}"
    return described


def load_weights(model: torch.nn.Module, path: str, trusted: bool = False) -> None:
    """``--checkpoint``: every weight must fit the model. Says, in one line, what the model was trained on."""
    checkpoint = load_checkpoint(path, trusted=trusted)
    say(f"{path}: trained on {trained_on(checkpoint)}")
    state = model_state_dict(checkpoint, path)
    differs = misfit(model.state_dict(), state)
    if differs:
        args = checkpoint.get("args") if isinstance(checkpoint, dict) else None
        model_name = args.get("model") if isinstance(args, dict) else None
        was = f"; it was trained as --model {model_name}" if model_name else ""
        raise CheckpointError(
            f"--checkpoint {path}: does not fit this model: {differs}{was}; pass the --model and model flags it was "
            f"trained with"
        )
    model.load_state_dict(state)


# ---------------------------------------------------------------- finding
def list_checkpoints(folder: str) -> List[Tuple[int, str]]:
    """(epoch, path) of every ``checkpoint-<epoch>.pth`` in ``folder``, oldest first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), os.path.join(folder, n)) for n in os.listdir(folder) if (m := CHECKPOINT_NAME.match(n))]
    return sorted(found)


def checkpoint_files(path: str) -> List[Tuple[int, str]]:
    """(epoch, file) for a checkpoint file, or for every checkpoint-<epoch>.pth of a folder."""
    if os.path.isdir(path):
        found = list_checkpoints(path)
        if not found:
            raise UsageError(f"--checkpoint {path}: no checkpoint-<epoch>.pth in this folder")
        return found
    if not os.path.isfile(path):
        raise UsageError(f"--checkpoint {path}: no such file or folder")
    match = CHECKPOINT_NAME.match(Path(path).name)
    return [(int(match.group(1)) if match else -1, path)]


def best_checkpoint(path: str) -> str:
    """A file as is; for a training folder, the best epoch's checkpoint (summary.json) if it was kept, else the newest."""
    if not os.path.isdir(path):
        return checkpoint_files(path)[0][1]
    found = dict(checkpoint_files(path))
    summary = Path(path) / "summary.json"
    if summary.is_file():
        best = json.loads(summary.read_text()).get("best_epoch")
        if best in found:
            return found[best]
    return found[max(found)]


def checkpoint_defaults(path: str, trusted: bool = False) -> Tuple[Optional[str], Dict]:
    """The model name and flags a checkpoint of this plugin was trained with (it stores them)."""
    file = best_checkpoint(path)  # a missing file is the error to report, before any about --model
    checkpoint = load_checkpoint(file, trusted=trusted)
    if not isinstance(checkpoint, dict):
        return None, {}
    args = checkpoint.get("args") if isinstance(checkpoint.get("args"), dict) else {}
    defaults = dict(checkpoint.get("model_args") or {})
    defaults.update({k: args[k] for k in INHERITED_TRAIN_FLAGS if k in args})
    state = checkpoint.get("model")
    if "pivot_norm" not in defaults and isinstance(state, dict) and BATCHNORM_BRANCH in state:
        defaults["pivot_norm"] = "batch"  # saved before --pivot_norm existed, when the branches used BatchNorm
    return args.get("model"), defaults


# ---------------------------------------------------------------- saving
def plain(value: Any) -> Any:
    """``value`` reduced to what ``weights_only=True`` and JSON both accept."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, argparse.Namespace):
        return plain(vars(value))
    return str(value)


def save_atomically(obj: Any, path: str) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash or a kill at any moment leaves either the previous file or the new one, never half of one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


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
        say(f"could not write {path}: {reason}; the previous checkpoint is kept, training goes on", style="red")
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


def forget_interrupted(output_dir: str) -> None:
    path = os.path.join(output_dir, INTERRUPTED_NAME)
    if os.path.isfile(path):
        os.unlink(path)


# ---------------------------------------------------------------- resuming
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
            warn(f"--resume auto: skipping {err}")
            continue
        if best is None or _position(checkpoint) > _position(best[1]):
            best = (path, checkpoint, state)
        if args.resume == "auto" and path.endswith(".pth"):
            break  # numbered checkpoints come newest first: the first loadable one is the newest
    if best is None:
        if args.resume == "auto":
            say(f"--resume auto: no checkpoint in {args.output_dir}; starting from scratch")
            return 0, None
        raise UsageError(f"--resume {args.resume}: nothing to resume from")
    path, checkpoint, state = best
    try:
        unwrapped.load_state_dict(state)
    except RuntimeError as err:
        raise UsageError(f"--resume {path}: does not fit this model ({str(err).splitlines()[0]})") from None
    if "optimizer" not in checkpoint:  # a bare state dict: weights only
        say(f"Loaded weights from {path}; starting at epoch {args.start_epoch}")
        return 0, None
    optimizer.load_state_dict(checkpoint["optimizer"])
    if checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    args.start_epoch, step = _position(checkpoint)
    say(f"Resumed from {path}: epoch {args.start_epoch}" + (f", batch {step}" if step else ""))
    return step, checkpoint.get("rng") if step else None

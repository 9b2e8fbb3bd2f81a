"""Loading weights safely on every torch this plugin supports.

torch >= 2.6 loads with ``weights_only=True`` by default, and IMDL-BenCo's own
checkpoints then fail because they pickle an ``argparse.Namespace`` under
``args``. A Namespace of plain values is harmless, so it is allow-listed here
instead of falling back to a full unpickle.
"""
import argparse
import os
import pickle
from typing import Any, Dict

import torch

from .errors import UsageError


class CheckpointError(UsageError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


def _safe_load(path: str) -> Any:
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch < 2.5 has no allow-list context; weights_only still applies
        return torch.load(path, map_location="cpu", weights_only=True)
    with safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_checkpoint(path: str, flag: str = "--checkpoint", trusted: bool = False) -> Any:
    """Load ``path`` with ``weights_only=True``; errors name the file and the flag it came from.

    This plugin's checkpoints and IMDL-BenCo's load that way. Any other pickle
    (whole model objects, say) is refused unless ``trusted``
    (``--trust_checkpoint``): unpickling runs code chosen by whoever wrote the file.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"{flag} {path}: no such file")
    try:
        return _safe_load(path)
    except pickle.UnpicklingError as err:
        if trusted:
            return torch.load(path, map_location="cpu", weights_only=False)
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{flag} {path}: holds Python objects besides tensors and plain values ({first_line[:120]}); "
            f"loading it runs code from the file: pass --trust_checkpoint only if you trust its source"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{flag} {path}: unreadable or truncated checkpoint ({reason})") from None


def model_state_dict(checkpoint: Any, path: str, flag: str = "--checkpoint") -> Dict[str, torch.Tensor]:
    """The model weights of a bare state dict or of an IMDL-BenCo checkpoint (``{'model': ...}``)."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{flag} {path}: holds no model state dict")
    # Checkpoints saved from a DDP-wrapped model prefix every key with 'module.'.
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def load_pretrained(model: torch.nn.Module, path: str) -> None:
    """Load ``--pretrained_path`` into ``model``; keys absent from the file keep their random init."""
    state = model_state_dict(load_checkpoint(path, "--pretrained_path"), path, "--pretrained_path")
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise CheckpointError(
            f"--pretrained_path {path}: no weight matches this model; was it saved from another architecture?"
        )
    model.load_state_dict(matched, strict=False)
    skipped = len(state) - len(matched)
    if skipped:
        print(f"--pretrained_path {path}: loaded {len(matched)} tensors, skipped {skipped} that do not fit")


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

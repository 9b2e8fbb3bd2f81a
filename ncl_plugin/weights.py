"""Reading weight files safely: a checkpoint, its model state dict, how it differs from a model.

Below the method and the training engine alike, and silent: it says nothing on the terminal,
its errors name the file and the flag it came from.

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

from ncl_plugin.errors import UsageError


class CheckpointError(UsageError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


# ---------------------------------------------------------------- loading
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
    with open(path, "rb") as handle:
        start = handle.read(4)
    if start and not start.startswith(_CHECKPOINT_STARTS):
        raise _not_a_checkpoint(path, flag)
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
    except (KeyError, ValueError, UnicodeDecodeError):  # pickle meeting bytes that are no pickle
        raise _not_a_checkpoint(path, flag) from None


def _not_a_checkpoint(path: str, flag: str) -> CheckpointError:
    return CheckpointError(
        f"{flag} {path}: not a PyTorch checkpoint; give a checkpoint-<epoch>.pth or the run folder that holds it"
    )


# torch.save writes a zip archive, or (before torch 1.6, or _use_new_zipfile_serialization=False) a pickle
# stream, which starts with the PROTO opcode; anything else (a text file, an image) is no checkpoint.
_CHECKPOINT_STARTS = (b"PK\x03\x04", b"\x80")


def model_state_dict(checkpoint: Any, path: str, flag: str = "--checkpoint") -> Dict[str, torch.Tensor]:
    """The model weights of a bare state dict or of an IMDL-BenCo checkpoint (``{'model': ...}``)."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{flag} {path}: holds no model state dict")
    # Checkpoints saved from a DDP-wrapped model prefix every key with 'module.'.
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def misfit(own: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor]) -> str:
    """How a state dict differs from a model's, with an example of each kind of difference; '' if it fits."""

    def shape(t) -> str:
        return "x".join(map(str, t.shape)) or "scalar"

    extra = [k for k in state if k not in own]
    absent = [k for k in own if k not in state]
    reshaped = [k for k in state if k in own and own[k].shape != state[k].shape]
    parts = []
    if extra:
        parts.append(f"{len(extra)} weight(s) in the file are not the model's (e.g. {extra[0]})")
    if absent:
        parts.append(f"{len(absent)} of the model's are not in the file (e.g. {absent[0]})")
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} differ in shape (e.g. {k}: {shape(state[k])} in the file, {shape(own[k])} here)")
    return ", ".join(parts)


def load_pretrained(model: torch.nn.Module, path: str) -> str:
    """``--pretrained_path``: weights that fit are loaded; keys absent from the file keep their random init.
    Returns what was left out, in one line ('' when everything fit), for the caller to say."""
    state = model_state_dict(load_checkpoint(path, "--pretrained_path"), path, "--pretrained_path")
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise CheckpointError(
            f"--pretrained_path {path}: no weight matches this model; was it saved from another architecture?"
        )
    model.load_state_dict(matched, strict=False)
    skipped = len(state) - len(matched)
    return (
        f"--pretrained_path {path}: loaded {len(matched)} tensors, skipped {skipped} that do not fit" if skipped else ""
    )

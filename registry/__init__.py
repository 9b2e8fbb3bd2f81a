"""Binds the plugin's components to names; installed as ``ncl_plugin.registry``.

Importing it registers, with IMDL-BenCo's own ``Registry`` class:
  - in IMDL-BenCo's ``MODELS``: ``NCL`` / ``ncl`` and ``DeepLabV3Plus`` / ``deeplabv3plus``;
  - in the plugin's ``SAMPLERS``: ``TriClassPatchSampler``;
  - in the plugin's ``LOSSES``: ``NCLContrastiveLoss`` and ``PivotConsistentLoss``.

A variant registered in ``SAMPLERS`` or ``LOSSES`` is selected with the model's
``--sampler``, ``--contrastive_loss`` or ``--segmentation_loss`` flag.
"""

import warnings

from ncl_plugin.method.losses import NCLContrastiveLoss, PivotConsistentLoss
from ncl_plugin.method.model import NCL, DeepLabV3Plus
from ncl_plugin.method.registries import LOSSES, MODELS, SAMPLERS, Registry
from ncl_plugin.method.sampler import TriClassPatchSampler


def _same_object(a, b) -> bool:
    # importlib.reload or a second copy of the package creates new class objects with the same identity.
    return a is b or (getattr(a, "__module__", None), getattr(a, "__qualname__", None)) == (
        getattr(b, "__module__", None),
        getattr(b, "__qualname__", None),
    )


def register(registry: Registry, obj, *names: str) -> None:
    """Register ``obj`` under ``names``; re-registering our own object is a no-op, never an error."""
    for name in names:
        if registry.has(name):
            existing = registry.get(name)
            if existing is obj:
                continue
            if not _same_object(existing, obj):
                warnings.warn(
                    f"{registry.name}: {name!r} was registered by {existing.__module__}; "
                    f"ncl_plugin replaces it with {obj.__module__}.{obj.__qualname__}",
                    stacklevel=2,
                )
        registry.register_module(name=name, module=obj, force=True)


register(SAMPLERS, TriClassPatchSampler, "TriClassPatchSampler")
register(LOSSES, NCLContrastiveLoss, "NCLContrastiveLoss")
register(LOSSES, PivotConsistentLoss, "PivotConsistentLoss")
register(MODELS, NCL, "NCL", "ncl")
register(MODELS, DeepLabV3Plus, "DeepLabV3Plus", "deeplabv3plus")

__all__ = ["MODELS", "SAMPLERS", "LOSSES", "register"]

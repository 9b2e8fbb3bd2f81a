"""NCL (ICCV 2023) for IMDL-BenCo: importing this package registers NCL, its
DeepLabV3+ baseline, the tri-class patch sampler and the dual losses in
IMDL-BenCo's registries, so that IMDL-BenCo's scripts train them by name."""

from ncl_plugin.method.deeplab import DeepLabV3PlusNet
from ncl_plugin.method.losses import NCLContrastiveLoss, PivotConsistentLoss
from ncl_plugin.method.model import NCL, DeepLabV3Plus
from ncl_plugin.method.sampler import TriClassPatchSampler, classify_patches
from ncl_plugin.registry import LOSSES, SAMPLERS

__version__ = "0.1.0"

__all__ = [
    "NCL",
    "DeepLabV3Plus",
    "DeepLabV3PlusNet",
    "TriClassPatchSampler",
    "NCLContrastiveLoss",
    "PivotConsistentLoss",
    "SAMPLERS",
    "LOSSES",
    "classify_patches",
    "__version__",
]

# ForensicHub keeps registries of its own: where it is already imported, NCL joins them too
# (otherwise ncl_plugin.forensichub.register() does it; ForensicHub takes seconds to import).
if "ForensicHub.registry" in __import__("sys").modules:
    from ncl_plugin.forensichub import register as _register_in_forensichub  # noqa: E402

    _register_in_forensichub()

"""NCL (ICCV 2023) for IMDL-BenCo: importing this package registers NCL, its
DeepLabV3+ baseline, the tri-class patch sampler and the dual losses in
IMDL-BenCo's registries, so that IMDL-BenCo's scripts train them by name."""

from .deeplab import DeepLabV3PlusNet
from .losses import NCLContrastiveLoss, PivotConsistentLoss
from .model import NCL, DeepLabV3Plus
from .registry import LOSSES, SAMPLERS
from .sampler import TriClassPatchSampler, classify_patches

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

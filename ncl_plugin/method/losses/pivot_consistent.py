"""L_PC, the pivot-consistent segmentation loss: deep-supervised BCE in which the contour pixels (the
pixels of contour patches) weigh ``contour_weight`` of each stage's loss.

It runs in float32 even under autocast.
"""

from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ncl_plugin.method.losses.reductions import masked_mean
from ncl_plugin.method.precision import full_precision
from ncl_plugin.method.sampler import check_patch_size, classify_patches, contour_pixels


class PivotConsistentLoss(nn.Module):
    """L_PC over every decoder stage.

    At stage s, per image: mu * mean BCE over contour pixels + (1 - mu) * mean
    BCE over all pixels, with the ground truth area-resized to the stage; an
    image without contour pixels gets the plain BCE. Contour pixels are the
    pixels of contour patches. L_PC is the mean over images, then stages.
    mu = contour_weight; mu = 0 is plain deep-supervised BCE.
    """

    def __init__(self, contour_weight: float = 0.7, patch_size: int = 32):
        super().__init__()
        if not 0.0 <= contour_weight <= 1.0:
            raise ValueError(f"--contour_weight must be in [0, 1], got {contour_weight}")
        check_patch_size(patch_size)
        self.contour_weight = contour_weight
        self.patch_size = patch_size

    def forward(
        self, logits: List[torch.Tensor], mask: torch.Tensor, classes: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        """logits: (B, 1, h_s, w_s) per stage; mask: (B, 1, H, W); classes: (B, H//p, W//p) if known."""
        with full_precision(mask):
            target = (mask > 0.5).float()
            contour = None
            if self.contour_weight > 0:
                if classes is None:
                    classes = classify_patches(target, self.patch_size)
                contour = contour_pixels(classes, self.patch_size, target.shape[-2:])
            stages = [self._stage(stage_logits.float(), target, contour) for stage_logits in logits]
            return {"loss": torch.stack(stages).mean()}

    def _stage(self, logits, target, contour):
        size = logits.shape[-2:]
        if target.shape[-2:] != size:
            target = F.interpolate(target, size=size, mode="area")
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        everywhere = bce.mean(dim=(1, 2, 3))
        if contour is None:
            return everywhere.mean()
        if contour.shape[-2:] != size:
            contour = (F.interpolate(contour, size=size, mode="area") > 0).float()
        has = contour.sum(dim=(1, 2, 3)) > 0
        on_contour = masked_mean(bce, contour > 0, dims=(1, 2, 3))
        mu = self.contour_weight
        per_image = torch.where(has, mu * on_contour + (1 - mu) * everywhere, everywhere)
        return per_image.mean()

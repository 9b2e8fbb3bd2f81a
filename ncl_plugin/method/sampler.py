"""Tri-class patch sampler: masks and block-1 features in, patch classes and features out.

A patch is *tampered* when all its pixels are tampered, *authentic* when none
is, and *contour* otherwise. Everything is computed for the whole batch with
pooling and reshapes: there is no Python loop over images or patches.
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ncl_plugin.method.precision import full_precision

AUTHENTIC, TAMPERED, CONTOUR = 0, 1, 2


def check_patch_size(patch_size: int, feature_stride: int = 4) -> None:
    if patch_size <= 0 or patch_size % feature_stride != 0:
        raise ValueError(
            f"--patch_size must be a positive multiple of {feature_stride} "
            f"(block-1 features have stride {feature_stride}), got {patch_size}"
        )


def classify_patches(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, 1, H, W) mask -> (B, H // p, W // p) int64 classes.

    The tampered ratio of every patch comes from one ``avg_pool2d``; a border
    that does not fill a whole patch is ignored. The mask is binarised at 0.5
    first so that a soft mask cannot turn a tampered patch into a contour one.
    """
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (B, 1, H, W), got {tuple(mask.shape)}")
    if patch_size > min(mask.shape[-2:]):
        raise ValueError(
            f"--patch_size {patch_size} is larger than the image ({mask.shape[-2]}x{mask.shape[-1]}); "
            f"use a smaller --patch_size or a larger --image_size"
        )
    ratio = F.avg_pool2d((mask > 0.5).float(), patch_size, stride=patch_size)[:, 0]
    classes = torch.full_like(ratio, CONTOUR, dtype=torch.long)
    classes[ratio == 0] = AUTHENTIC
    classes[ratio == 1] = TAMPERED
    return classes


def contour_pixels(classes: torch.Tensor, patch_size: int, size) -> torch.Tensor:
    """(B, Gh, Gw) patch classes -> (B, 1, H, W) float map, 1 on the pixels of contour patches."""
    contour = (classes == CONTOUR).float().unsqueeze(1)
    contour = contour.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)
    pad_h, pad_w = size[0] - contour.shape[-2], size[1] - contour.shape[-1]
    return F.pad(contour, (0, pad_w, 0, pad_h))


# How a patch becomes the vector the similarities compare (--patch_space):
#   pooled  average-pooled over its p/4 x p/4 cells to a C-vector;
#   cube    the whole C x p/4 x p/4 cube, flattened: the paper compares patches "uniformly in R^(C x W x H)".
PATCH_SPACES = ("pooled", "cube")
# What the pivot branches take (--pivot_input):
#   mean  the mean of an image's k contour patches, one C x p/4 x p/4 map;
#   each  all k of them (the paper's k x C x W x H concatenation), each through the branch's 1x1
#         convolution, then summed to one C x p/4 x p/4 pivot: a 1x1 convolution that "handles any k".
PIVOT_INPUTS = ("mean", "each")


def check_choice(value: str, choices, flag: str) -> None:
    if value not in choices:
        raise ValueError(f"{flag} {value!r}: use {' or '.join(choices)}")


@dataclass
class PatchSample:
    """What the sampler hands to the contrastive loss, for a batch of B images and G patches each.

    classes:     (B, G) int64, AUTHENTIC / TAMPERED / CONTOUR
    features:    (B, G, D) float32, L2-normalised patch features f(x): D = C (pooled) or
                 C * (p/4)^2 (cube, flattened channel-major)
    pivots:      (B, C, p/4, p/4) float32, mean block-1 map of each image's contour patches
                 (zeros for an image without contour patches)
    has_contour: (B,) bool
    contour_patches: (N, C, p/4, p/4) float32, every contour patch of the batch (pivot_input "each")
    contour_owner:   (N,) int64, the image each of them belongs to
    """

    classes: torch.Tensor
    features: torch.Tensor
    pivots: torch.Tensor
    has_contour: torch.Tensor
    contour_patches: Optional[torch.Tensor] = None
    contour_owner: Optional[torch.Tensor] = None

    @property
    def tampered(self) -> torch.Tensor:
        return self.classes == TAMPERED

    @property
    def authentic(self) -> torch.Tensor:
        return self.classes == AUTHENTIC


class TriClassPatchSampler(nn.Module):
    """Cuts masks and block-1 features into ``patch_size`` x ``patch_size`` image-pixel patches.

    forward(features (B, C, H/s, W/s), mask (B, 1, H, W)) -> PatchSample, with s the
    feature stride (4 for block 1). Runs in float32 whatever the autocast state.
    """

    def __init__(
        self, patch_size: int = 32, feature_stride: int = 4, patch_space: str = "pooled", pivot_input: str = "mean"
    ):
        super().__init__()
        check_patch_size(patch_size, feature_stride)
        check_choice(patch_space, PATCH_SPACES, "--patch_space")
        check_choice(pivot_input, PIVOT_INPUTS, "--pivot_input")
        self.patch_size = patch_size
        self.feature_stride = feature_stride
        self.patch_space = patch_space
        self.pivot_input = pivot_input

    def forward(self, features: torch.Tensor, mask: torch.Tensor, classes=None) -> PatchSample:
        """classes: the (B, H // p, W // p) result of ``classify_patches`` when the caller has it."""
        with full_precision(features):
            if classes is None:
                classes = classify_patches(mask, self.patch_size)
            return self._sample(features.float(), mask, classes)

    def _sample(self, features: torch.Tensor, mask: torch.Tensor, classes: torch.Tensor) -> PatchSample:
        batch, grid_h, grid_w = classes.shape
        cells = self.patch_size // self.feature_stride
        feats = features[:, :, : grid_h * cells, : grid_w * cells]
        if feats.shape[-2] != grid_h * cells or feats.shape[-1] != grid_w * cells:
            raise ValueError(
                f"features {tuple(features.shape)} do not cover the mask {tuple(mask.shape)} "
                f"at stride {self.feature_stride}"
            )
        channels = feats.shape[1]
        grid = feats.reshape(batch, channels, grid_h, cells, grid_w, cells)
        # (B, G, C, p/4, p/4): patch g = (row, column) in raster order, as classes.flatten(1)
        patches = grid.permute(0, 2, 4, 1, 3, 5).reshape(batch, grid_h * grid_w, channels, cells, cells)
        vectors = patches.mean(dim=(3, 4)) if self.patch_space == "pooled" else patches.flatten(2)
        patch_features = F.normalize(vectors, dim=-1)

        contour = (classes == CONTOUR).float()  # (B, Gh, Gw)
        count = contour.sum(dim=(1, 2))
        pivots = torch.einsum("bchpwq,bhw->bcpq", grid, contour) / count.clamp(min=1).view(-1, 1, 1, 1)
        sample = PatchSample(
            classes=classes.flatten(1),
            features=patch_features,
            pivots=pivots,
            has_contour=count > 0,
        )
        if self.pivot_input == "each":
            chosen = contour.flatten(1) > 0  # (B, G)
            sample.contour_patches = patches[chosen]
            sample.contour_owner = torch.arange(batch, device=feats.device).unsqueeze(1).expand_as(chosen)[chosen]
        return sample

"""NCL and its DeepLabV3+ baseline, with IMDL-BenCo's forward contract.

The constructor arguments become command-line flags through IMDL-BenCo's
``misc.create_argparser``, so they are annotated int / float / str only.
The sampler and the losses are looked up by name in the plugin's registries,
so a registered variant is selected with a flag (``--sampler MySampler``).
"""

from typing import Dict, Optional

import torch
import torch.nn as nn

from ncl_plugin.method.deeplab import DeepLabV3PlusNet
from ncl_plugin.method.image_score import check_image_score, image_score
from ncl_plugin.method.losses.ncl_contrastive import TERMS
from ncl_plugin.method.registries import LOSSES, SAMPLERS
from ncl_plugin.method.sampler import check_patch_size, classify_patches
from ncl_plugin.weights import load_pretrained

TERM_KEYS = tuple(f"ncl_{t}" for t in TERMS)
# Each term beside its chance value and the share of images it is defined on (see NCLContrastiveLoss).
VISUAL_LOSS_KEYS = (
    ("total", "pc", "ncl")
    + TERM_KEYS
    + tuple(f"{t}_chance" for t in TERM_KEYS)
    + tuple(f"{t}_defined" for t in TERM_KEYS)
)


DEFAULTS = {"patch_space": "pooled", "pivot_input": "mean", "pivot_norm": "group"}
SAMPLER_READINGS = ("patch_space", "pivot_input")
PROJECTION_HEADS = ("none", "mlp")


def _build(registry, name: str, flag: str, **kwargs):
    # Registry.get prints the whole table before raising; has() does not.
    if not registry.has(name):
        known = ", ".join(sorted(registry.module_dict))
        raise ValueError(f"{flag} {name!r} is not registered in {registry.name} (known: {known})")
    return registry.get(name)(**kwargs)


class NCL(nn.Module):
    """Non-mutually exclusive contrastive learning (Zhou et al., ICCV 2023) on DeepLabV3+.

    forward(image (B, 3, H, W), mask (B, 1, H, W) or None, label (B,) or None) -> dict:
      pred_mask (B, 1, H, W) probabilities; pred_label (B,) = the image score of pred_mask (--image_score,
      default its maximum, IMDL-BenCo's convention);
      visual_image {'pred_mask': ...}; and, when a mask is given, backward_loss (scalar)
      and visual_loss (total, pc, ncl, ncl_pn, ncl_se_pos, ncl_se_neg).
    The sampler and the two branches run only in training mode: at inference NCL
    costs exactly what DeepLabV3+ costs.
    """

    def __init__(
        self,
        backbone: str = "resnet101",
        output_stride: int = 8,
        decoder_channels: int = 256,
        head_prior: float = 0.1,
        patch_size: int = 32,
        temperature: float = 0.1,
        contrast_weight: float = 0.5,
        contour_weight: float = 0.7,
        max_anchors: int = 256,
        ncl_terms: str = "pn,se_pos,se_neg",
        patch_space: str = "pooled",
        pivot_input: str = "mean",
        pivot_norm: str = "group",
        contrast_block: int = 1,
        projection_head: str = "none",
        contrast_rampup: int = 0,
        sampler: str = "TriClassPatchSampler",
        contrastive_loss: str = "NCLContrastiveLoss",
        segmentation_loss: str = "PivotConsistentLoss",
        image_score: str = "max",
        pretrained_path: str = "",
    ):
        super().__init__()
        check_patch_size(patch_size)
        check_image_score(image_score)
        self.image_score = image_score
        if contrast_weight < 0:
            raise ValueError(f"--contrast_weight must be >= 0, got {contrast_weight}")
        if projection_head not in PROJECTION_HEADS:
            raise ValueError(f"--projection_head {projection_head!r}: use {' or '.join(PROJECTION_HEADS)}")
        if contrast_rampup < 0:
            raise ValueError(f"--contrast_rampup must be >= 0 training batches, got {contrast_rampup}")
        self.patch_size = patch_size
        self.contrast_weight = contrast_weight
        self.contrast_rampup = contrast_rampup
        self.net = DeepLabV3PlusNet(backbone, output_stride, decoder_channels, head_prior, contrast_block)
        stride = self.net.contrast_stride
        if patch_size % stride:
            raise ValueError(
                f"--patch_size {patch_size} must be a multiple of {stride}, the stride of encoder block {contrast_block}"
            )
        self.segmentation_loss = _build(
            LOSSES, segmentation_loss, "--segmentation_loss", contour_weight=contour_weight, patch_size=patch_size
        )
        self.sampler: Optional[nn.Module] = None
        self.contrastive_loss: Optional[nn.Module] = None
        self.projection: Optional[nn.Module] = None
        if contrast_weight > 0:
            # The paper's readings (section 8 of the method notes) are options; a registered variant
            # that predates them is handed only what it is asked to change.
            chosen = {"patch_space": patch_space, "pivot_input": pivot_input, "pivot_norm": pivot_norm}
            readings = {k: v for k, v in chosen.items() if v != DEFAULTS[k]}
            sampler_readings = {k: v for k, v in readings.items() if k in SAMPLER_READINGS}
            stride_option = {"feature_stride": stride} if stride != 4 else {}
            self.sampler = _build(
                SAMPLERS, sampler, "--sampler", patch_size=patch_size, **stride_option, **sampler_readings
            )
            channels = self.net.contrast_channels
            # A projection head, used in training only, is the usual remedy when an auxiliary
            # contrastive loss competes with the main task; the paper draws none.
            if projection_head == "mlp":
                self.projection = nn.Sequential(
                    nn.Conv2d(channels, channels, 1, bias=False),
                    nn.BatchNorm2d(channels),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(channels, channels, 1),
                )
            if contrast_rampup:
                # Training batches seen, for the ramp-up of omega; saved and resumed with the weights.
                self.register_buffer("contrast_batches", torch.zeros((), dtype=torch.long))
            self.contrastive_loss = _build(
                LOSSES,
                contrastive_loss,
                "--contrastive_loss",
                channels=channels,
                temperature=temperature,
                max_anchors=max_anchors,
                terms=ncl_terms,
                **readings,
            )
        # What --pretrained_path left out, for `benco train` to say: the method itself prints nothing.
        self.pretrained_note = load_pretrained(self, pretrained_path) if pretrained_path else ""

    def forward(self, image: torch.Tensor, mask: Optional[torch.Tensor] = None, label=None, *args, **kwargs):
        logits, contrasted = self.net(image)
        pred_mask = torch.sigmoid(logits[-1].float())
        out = {
            "pred_mask": pred_mask,
            "pred_label": image_score(pred_mask, self.image_score),
            "visual_image": {"pred_mask": pred_mask},
        }
        if mask is None:
            return out
        losses = self._losses(logits, contrasted, mask)
        out["backward_loss"] = losses["total"]
        out["visual_loss"] = {k: v.detach() for k, v in losses.items()}
        return out

    def _losses(self, logits, contrasted, mask) -> Dict[str, torch.Tensor]:
        contrast = self.training and self.contrastive_loss is not None
        classes = classify_patches(mask, self.patch_size) if contrast else None
        pc = self.segmentation_loss(logits, mask, classes)["loss"]
        losses = dict.fromkeys(VISUAL_LOSS_KEYS[2:], pc.new_zeros(()))
        weight = self.contrast_weight
        if contrast:
            features = contrasted if self.projection is None else self.projection(contrasted)
            losses.update(self.contrastive_loss(self.sampler(features, mask, classes)))
            losses["ncl"] = losses.pop("loss")
            if self.contrast_rampup:
                self.contrast_batches += 1
                weight = weight * min(1.0, self.contrast_batches.item() / self.contrast_rampup)
        losses["pc"] = pc
        losses["total"] = pc + weight * losses["ncl"]
        return {k: losses[k] for k in VISUAL_LOSS_KEYS}


class DeepLabV3Plus(NCL):
    """The paper's baseline: the same network trained from scratch without NCL.

    No sampler, no branches, no contrastive loss. The segmentation loss is plain
    deep-supervised BCE by default (contour_weight = 0); pass --contour_weight
    to train the baseline with the pivot-consistent weighting alone.
    """

    def __init__(
        self,
        backbone: str = "resnet101",
        output_stride: int = 8,
        decoder_channels: int = 256,
        head_prior: float = 0.1,
        patch_size: int = 32,
        contour_weight: float = 0.0,
        segmentation_loss: str = "PivotConsistentLoss",
        image_score: str = "max",
        pretrained_path: str = "",
    ):
        super().__init__(
            backbone=backbone,
            output_stride=output_stride,
            decoder_channels=decoder_channels,
            head_prior=head_prior,
            patch_size=patch_size,
            contrast_weight=0.0,
            contour_weight=contour_weight,
            segmentation_loss=segmentation_loss,
            image_score=image_score,
            pretrained_path=pretrained_path,
        )

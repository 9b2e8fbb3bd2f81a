"""L_NCL, the dual-branch contrastive loss: tampered against authentic patches, and the two pivot
branches that take the contour patches as tampered (se+) and as authentic (se-).

It runs in float32 even under autocast. Shapes: B images, G patches per image, C feature channels.
"""

from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ncl_plugin.method.losses.reductions import masked_logsumexp, masked_mean, mean_over_defined
from ncl_plugin.method.precision import full_precision
from ncl_plugin.method.sampler import PATCH_SPACES, PIVOT_INPUTS, PatchSample, check_choice

# The three terms of L_NCL: tampered vs authentic, and the pivot as tampered (se+) / authentic (se-).
TERMS = ("pn", "se_pos", "se_neg")


class PivotBranch(nn.Module):
    """One of the two symmetric branches: (B, C, h, w) pivot -> (B, D) unit vector.

    Conv1x1 -> BN -> ReLU, then the patch space's vector (average-pooled, D = C; or the
    flattened cube, D = C h w) and L2 normalisation. With ``owner`` (pivot_input "each") the
    input is every contour patch, (N, C, h, w), and each image's pivot is the sum of its
    patches' outputs (the sum and the mean have the same direction, so normalised they agree).
    """

    def __init__(self, channels: int, patch_space: str = "pooled"):
        super().__init__()
        check_choice(patch_space, PATCH_SPACES, "--patch_space")
        self.patch_space = patch_space
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, pivots: torch.Tensor, owner: Optional[torch.Tensor] = None, images: int = 0) -> torch.Tensor:
        out = self.block(pivots)
        if owner is not None:
            out = out.new_zeros(images, *out.shape[1:]).index_add(0, owner, out)
        vector = out.mean(dim=(2, 3)) if self.patch_space == "pooled" else out.flatten(1)
        return F.normalize(vector, dim=1)


class NCLContrastiveLoss(nn.Module):
    """L_NCL: tampered-vs-authentic InfoNCE plus the two pivot branches (se+ and se-).

    forward(PatchSample) -> dict with ``loss`` (L_NCL) and the three terms
    ``ncl_pn``, ``ncl_se_pos``, ``ncl_se_neg``. A term is averaged over the
    images where it is defined; L_NCL is the mean of the terms defined
    somewhere in the batch, and a zero that still reaches every parameter when
    none is (so DDP sees the same graph on every rank).

    terms selects which of the three terms L_NCL averages (for ablations:
    "pn" drops the contour patches altogether, "pn,se_pos" keeps one branch).

    max_anchors caps the anchor patches of the tampered-vs-authentic term per
    image (a random subset above the cap; <= 0 means no cap): that term is
    pairwise, and the cap bounds its time and memory on fine patch grids.
    """

    def __init__(
        self,
        channels: int,
        temperature: float = 0.1,
        max_anchors: int = 256,
        terms: str = "pn,se_pos,se_neg",
        patch_space: str = "pooled",
        pivot_input: str = "mean",
    ):
        super().__init__()
        check_choice(pivot_input, PIVOT_INPUTS, "--pivot_input")
        self.pivot_input = pivot_input
        if temperature <= 0:
            raise ValueError(f"--temperature must be positive, got {temperature}")
        self.terms = {t.strip() for t in terms.split(",") if t.strip()}
        if not self.terms or not self.terms <= set(TERMS):
            raise ValueError(f"--ncl_terms {terms!r}: a comma list of {', '.join(TERMS)}")
        self.temperature = temperature
        self.max_anchors = max_anchors
        self.branch_tampered = PivotBranch(channels, patch_space)  # se+: the contour pivot plays a tampered patch
        self.branch_authentic = PivotBranch(channels, patch_space)  # se-: the contour pivot plays an authentic patch

    def forward(self, sample: PatchSample) -> Dict[str, torch.Tensor]:
        with full_precision(sample.features):
            return self._loss(sample)

    def _loss(self, sample: PatchSample) -> Dict[str, torch.Tensor]:
        features = sample.features.float()
        tampered, authentic = sample.tampered, sample.authentic
        off = (features.new_zeros(()), torch.zeros((), dtype=torch.bool, device=features.device))
        terms = {f"ncl_{t}": off for t in TERMS}
        if "pn" in self.terms:
            terms["ncl_pn"] = self._tampered_vs_authentic(features, tampered, authentic)
        if self.terms & {"se_pos", "se_neg"}:
            pivot_terms = self._pivot_terms(sample, features, tampered, authentic)
            terms.update({k: v for k, v in pivot_terms.items() if k[len("ncl_") :] in self.terms})

        values = torch.stack([value for value, _ in terms.values()])
        defined = torch.stack([flag for _, flag in terms.values()])
        loss = mean_over_defined(values, defined)
        # Keep every branch parameter and the features in the graph even when a
        # term is skipped, so that a rank without contour patches runs the same
        # backward (and DDP the same all-reduce) as the others.
        anchor = features.sum() + sum(p.sum() for p in self.parameters())
        out = {"loss": loss + 0.0 * anchor}
        out.update({name: value for name, (value, _) in terms.items()})
        return out

    def _tampered_vs_authentic(self, features, tampered, authentic):
        """Term 1: -log e(p_m, p_j) / (e(p_m, p_j) + sum_i e(p_m, n_i)), over anchors m, positives j != m."""
        batch, grid = tampered.shape
        k = grid if self.max_anchors <= 0 else min(self.max_anchors, grid)
        # A random score per tampered patch (-1 elsewhere): top-k keeps every
        # tampered patch while there are at most k, and a random k otherwise.
        score = torch.where(tampered, torch.rand(batch, grid, device=features.device), -1.0)
        score, anchor_idx = score.topk(k, dim=1)
        anchor_ok = score >= 0  # (B, K)
        anchors = features.gather(1, anchor_idx.unsqueeze(-1).expand(-1, -1, features.shape[-1]))
        sim = anchors @ features.transpose(1, 2) / self.temperature  # (B, K, G)
        negatives = masked_logsumexp(sim, authentic.unsqueeze(1), dim=2)  # (B, K)
        pair_loss = torch.logaddexp(sim, negatives.unsqueeze(-1)) - sim
        not_self = anchor_idx.unsqueeze(-1) != torch.arange(grid, device=features.device)
        valid = anchor_ok.unsqueeze(-1) & tampered.unsqueeze(1) & not_self
        valid = valid & authentic.any(dim=1).view(-1, 1, 1)
        defined = valid.flatten(1).any(dim=1)
        per_image = masked_mean(pair_loss, valid, dims=(1, 2))
        return mean_over_defined(per_image, defined), defined.any()

    def _pivot_terms(self, sample: PatchSample, features, tampered, authentic):
        """Terms 2 and 3: the pivot as a tampered patch (se+) and as an authentic one (se-)."""
        zero = features.new_zeros(())
        undefined = {"ncl_se_pos": (zero, torch.zeros((), dtype=torch.bool, device=features.device))}
        undefined["ncl_se_neg"] = undefined["ncl_se_pos"]
        has = sample.has_contour
        each = self.pivot_input == "each"
        if each and sample.contour_patches is None:
            raise ValueError("--pivot_input each needs a sampler that hands over every contour patch")
        pivots = sample.contour_patches if each else sample.pivots[has]
        # BatchNorm cannot train on a single value per channel (one 4x4 contour patch in the batch).
        if pivots.shape[0] * pivots.shape[2] * pivots.shape[3] < 2:
            return undefined
        batch = features.shape[0]
        features, tampered, authentic = features[has], tampered[has], authentic[has]
        defined = tampered.any(dim=1) & authentic.any(dim=1)

        def pivot_vectors(branch):
            if each:
                return branch(pivots, sample.contour_owner, batch)[has]
            return branch(pivots)

        def term(branch, positives, negatives):
            sim = torch.einsum("bc,bgc->bg", pivot_vectors(branch), features) / self.temperature
            others = masked_logsumexp(sim, negatives, dim=1)  # (Bc,)
            per_patch = torch.logaddexp(sim, others.unsqueeze(1)) - sim
            per_image = masked_mean(per_patch, positives, dims=1)
            return mean_over_defined(per_image, defined), defined.any()

        return {
            "ncl_se_pos": term(self.branch_tampered, tampered, authentic),
            "ncl_se_neg": term(self.branch_authentic, authentic, tampered),
        }

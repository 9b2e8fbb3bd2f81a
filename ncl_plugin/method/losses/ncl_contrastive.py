"""L_NCL, the dual-branch contrastive loss: tampered against authentic patches, and the two pivot
branches that take the contour patches as tampered (se+) and as authentic (se-).

It runs in float32 even under autocast. Shapes: B images, G patches per image, C feature channels.
"""

from typing import Dict, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ncl_plugin.method.losses.reductions import masked_logsumexp, masked_mean, mean_over_defined
from ncl_plugin.method.precision import full_precision
from ncl_plugin.method.sampler import PATCH_SPACES, PIVOT_INPUTS, PatchSample, check_choice

# The three terms of L_NCL: tampered vs authentic, and the pivot as tampered (se+) / authentic (se-).
TERMS = ("pn", "se_pos", "se_neg")

# The normalisation inside each pivot branch (--pivot_norm):
#   group  GroupNorm with one group: each pivot normalised by its own statistics over channels and
#          positions, so the per-channel content that the pooling keeps survives at any batch size,
#          one image's pivot does not depend on the others in its batch, and no rank waits on another;
#   batch  BatchNorm with batch statistics, the paper's literal layer: it subtracts each channel's
#          mean over the batch's pivots and their positions, which is what the pooled vector holds
#          (one pivot in the batch comes out the same whatever it holds: docs/method.md).
PIVOT_NORMS = ("group", "batch")


def pivot_normalisation(kind: str, channels: int) -> nn.Module:
    check_choice(kind, PIVOT_NORMS, "--pivot_norm")
    return nn.GroupNorm(1, channels) if kind == "group" else nn.BatchNorm2d(channels)


class PivotBranch(nn.Module):
    """One of the two symmetric branches: (B, C, h, w) pivot -> (B, D) unit vector.

    Conv1x1 -> norm -> ReLU, then the patch space's vector (average-pooled, D = C; or the
    flattened cube, D = C h w) and L2 normalisation. With ``owner`` (pivot_input "each") the
    input is every contour patch, (N, C, h, w), and each image's pivot is the sum of its
    patches' outputs (the sum and the mean have the same direction, so normalised they agree).
    An empty input (0, C, h, w) gives an empty output: the branch still runs, so a normalisation
    with a collective (SyncBatchNorm under DDP) is entered on every rank.
    """

    def __init__(self, channels: int, patch_space: str = "pooled", norm: str = "group"):
        super().__init__()
        check_choice(patch_space, PATCH_SPACES, "--patch_space")
        self.patch_space = patch_space
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False),
            pivot_normalisation(norm, channels),
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

    Beside each term ``<term>_chance`` is its value when every similarity is
    equal, for the batch's own patch counts (log(1 + number of negatives),
    averaged as the term is), and ``<term>_defined`` the share of the batch's
    images it is defined on: a term near its chance value has learned nothing.

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
        pivot_norm: str = "group",
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
        # se+: the contour pivot plays a tampered patch; se-: it plays an authentic one
        self.branch_tampered = PivotBranch(channels, patch_space, pivot_norm)
        self.branch_authentic = PivotBranch(channels, patch_space, pivot_norm)

    def forward(self, sample: PatchSample) -> Dict[str, torch.Tensor]:
        with full_precision(sample.features):
            return self._loss(sample)

    def _loss(self, sample: PatchSample) -> Dict[str, torch.Tensor]:
        features = sample.features.float()
        tampered, authentic = sample.tampered, sample.authentic
        zero = features.new_zeros(())
        terms = {f"ncl_{t}": Term.undefined(zero) for t in TERMS}
        if "pn" in self.terms:
            terms["ncl_pn"] = self._tampered_vs_authentic(features, tampered, authentic)
        pivot_anchor = zero
        if self.terms & {"se_pos", "se_neg"}:
            pivot_terms, pivot_anchor = self._pivot_terms(sample, features, tampered, authentic)
            terms.update({k: v for k, v in pivot_terms.items() if k[len("ncl_") :] in self.terms})

        values = torch.stack([term.value for term in terms.values()])
        defined = torch.stack([term.defined.any() for term in terms.values()])
        loss = mean_over_defined(values, defined)
        # Keep every branch parameter and the features in the graph even when a
        # term is skipped, so that a rank without contour patches runs the same
        # backward (and DDP the same all-reduce) as the others.
        anchor = features.sum() + sum(p.sum() for p in self.parameters()) + pivot_anchor
        out = {"loss": loss + 0.0 * anchor}
        for name, term in terms.items():
            out[name] = term.value
            out[f"{name}_chance"] = term.chance.detach()
            out[f"{name}_defined"] = term.defined.float().mean() if term.defined.numel() else zero
        return out

    def _tampered_vs_authentic(self, features, tampered, authentic) -> "Term":
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
        return Term.of(per_image, defined, negatives=authentic)

    def _pivot_terms(self, sample: PatchSample, features, tampered, authentic):
        """Terms 2 and 3: the pivot as a tampered patch (se+) and as an authentic one (se-).

        Returns the two terms and a zero that holds both branches' outputs: the branches run on
        every call, on an empty batch where no pivot is usable, so that a normalisation with a
        collective (SyncBatchNorm) is entered, forward and backward, on every rank alike.
        """
        has = sample.has_contour
        each = self.pivot_input == "each"
        if each and sample.contour_patches is None:
            raise ValueError("--pivot_input each needs a sampler that hands over every contour patch")
        pivots = sample.contour_patches if each else sample.pivots[has]
        usable = pivots.shape[0] > 0
        # BatchNorm cannot train on a single value per channel (one 4x4 contour patch in the batch).
        if isinstance(self.branch_tampered.block[1], nn.modules.batchnorm._BatchNorm):
            usable = usable and pivots.shape[0] * pivots.shape[2] * pivots.shape[3] >= 2
        if not usable:
            pivots = pivots[:0]
        batch = features.shape[0]
        owner = sample.contour_owner[: pivots.shape[0]] if each else None
        features, tampered, authentic = features[has], tampered[has], authentic[has]
        defined = tampered.any(dim=1) & authentic.any(dim=1) & usable

        def pivot_vectors(branch):
            if each:
                return branch(pivots, owner, batch)[has]
            return branch(pivots)

        vectors = {
            "ncl_se_pos": pivot_vectors(self.branch_tampered),
            "ncl_se_neg": pivot_vectors(self.branch_authentic),
        }
        anchor = sum(v.sum() for v in vectors.values()) * 0.0
        if not usable:
            zero = features.new_zeros(())
            return {name: Term.undefined(zero) for name in vectors}, anchor

        def term(vector, positives, negatives):
            sim = torch.einsum("bc,bgc->bg", vector, features) / self.temperature
            others = masked_logsumexp(sim, negatives, dim=1)  # (Bc,)
            per_patch = torch.logaddexp(sim, others.unsqueeze(1)) - sim
            per_image = masked_mean(per_patch, positives, dims=1)
            return Term.of(per_image, defined, negatives, images=batch)

        return {
            "ncl_se_pos": term(vectors["ncl_se_pos"], tampered, authentic),
            "ncl_se_neg": term(vectors["ncl_se_neg"], authentic, tampered),
        }, anchor


class Term(NamedTuple):
    """One term of L_NCL for a batch: its value (mean over the images it is defined on), its chance
    value (every similarity equal: -log 1 / (1 + |negatives|), averaged the same way) and, per image
    of the batch, whether it is defined."""

    value: torch.Tensor
    chance: torch.Tensor
    defined: torch.Tensor

    @staticmethod
    def undefined(zero: torch.Tensor) -> "Term":
        return Term(zero, zero, torch.zeros(0, dtype=torch.bool, device=zero.device))

    @staticmethod
    def of(per_image: torch.Tensor, defined: torch.Tensor, negatives: torch.Tensor, images: int = 0) -> "Term":
        """``negatives``: (b, G) bool, the patches each image's term contrasts against; ``images``: the
        batch's size where ``per_image`` covers only some of its images (those with contour patches)."""
        chance = torch.log1p(negatives.sum(dim=1).float())
        share = defined
        if images > defined.shape[0]:
            share = torch.cat([defined, defined.new_zeros(images - defined.shape[0])])
        return Term(mean_over_defined(per_image, defined), mean_over_defined(chance, defined), share)

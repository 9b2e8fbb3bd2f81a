"""Masked reductions the losses share: over the patches, pixels or images a term is defined on,
never looping in Python."""

import torch

# Fill value for similarities that a log-sum-exp must ignore. Finite, unlike
# -inf, so that no gradient of an empty set can become NaN.
IGNORED = torch.finfo(torch.float32).min


def masked_logsumexp(logits: torch.Tensor, keep: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.logsumexp(logits.masked_fill(~keep, IGNORED), dim=dim)


def masked_mean(values: torch.Tensor, keep: torch.Tensor, dims) -> torch.Tensor:
    total = torch.where(keep, values, torch.zeros_like(values)).sum(dim=dims)
    return total / keep.sum(dim=dims).clamp(min=1)


def mean_over_defined(per_image: torch.Tensor, defined: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_image`` over images where the term is defined; 0 where none is."""
    return masked_mean(per_image, defined, dims=0)

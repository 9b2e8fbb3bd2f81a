"""How an image's tampering score comes from its predicted mask (``--image_score``).

IMDL-BenCo's image-level metrics read ``pred_label``, one probability per image. A segmentation model
without a classification head derives it from its mask; the choice decides what a stray bright pixel
costs:

  max   the highest pixel probability (IMDL-BenCo's convention for such models): one confident pixel
        anywhere flags the image;
  top1  the mean of the image's top 1 % of pixel probabilities: a region must be confident, not a pixel;
  area  the share of pixels above 0.5: how much of the image the mask marks;
  mean  the mean pixel probability: the expected share of tampered pixels, the area without a threshold
        (a model whose probabilities sit under 0.5 marks no area at 0.5, yet still ranks images).

``benco calibrate`` reports each score's image-level AUC on its validation list, so the choice can be
made there (docs/results.md has CASIA v1.0's).
"""

import torch

IMAGE_SCORES = ("max", "top1", "area", "mean")
TOP_SHARE = 0.01


def check_image_score(kind: str) -> None:
    if kind not in IMAGE_SCORES:
        raise ValueError(f"--image_score {kind!r}: use {', '.join(IMAGE_SCORES)}")


def image_score(pred_mask: torch.Tensor, kind: str = "max") -> torch.Tensor:
    """(B, 1, H, W) probabilities -> (B,) image scores in [0, 1]."""
    flat = pred_mask.flatten(1)
    if kind == "max":
        return flat.amax(dim=1)
    if kind == "top1":
        k = max(1, round(flat.shape[1] * TOP_SHARE))
        return flat.topk(k, dim=1).values.mean(dim=1)
    if kind == "area":
        return (flat > 0.5).float().mean(dim=1)
    if kind == "mean":
        return flat.mean(dim=1)
    raise ValueError(f"--image_score {kind!r}: use {', '.join(IMAGE_SCORES)}")

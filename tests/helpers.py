"""Small builders shared by the tests."""
import torch


def rect_mask(height, width, *boxes):
    """A (1, 1, H, W) binary mask with 1 inside each (top, left, bottom, right) box."""
    mask = torch.zeros(height, width)
    for top, left, bottom, right in boxes:
        mask[top:bottom, left:right] = 1
    return mask[None, None]

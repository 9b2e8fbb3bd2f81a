"""Reading a dataset's mask file as a boolean array of tampered pixels, whatever its convention."""

from pathlib import Path

import numpy as np
from PIL import Image

from ..dataset_checks import to_rgb
from .layout import BLACK, GREEN, RED, WHITE

# A colour-coded region pixel: its own channel bright, the other dark. Saved as
# JPEG, colour masks blur at region borders; those pixels count as neither.
_BRIGHT, _DARK = 128, 128


def read_tampered(path: Path, rule: str) -> np.ndarray:
    """(H, W) bool: True where ``rule`` says the mask marks a tampered pixel."""
    with Image.open(path) as image:
        image.load()
        rgb = np.asarray(to_rgb(image), dtype=np.float32)
    if rule == WHITE:  # exactly IMDL-BenCo's reading of a mask file
        return rgb.mean(axis=2) > 127.5
    if rule == BLACK:
        return rgb.mean(axis=2) <= 127.5
    red, green = rgb[..., 0], rgb[..., 1]
    if rule == GREEN:
        return (green >= _BRIGHT) & (red < _DARK)
    if rule == RED:
        return (red >= _BRIGHT) & (green < _DARK)
    raise ValueError(f"unknown mask rule {rule!r}")


def as_white(tampered: np.ndarray) -> Image.Image:
    """A binary mask image in IMDL-BenCo's convention: 255 tampered, 0 not."""
    return Image.fromarray(np.where(tampered, 255, 0).astype(np.uint8), mode="L")


def resized(tampered: np.ndarray, size) -> np.ndarray:
    """``tampered`` scaled to ``size`` (width, height) by nearest neighbour: it stays binary."""
    image = Image.fromarray(tampered.astype(np.uint8) * 255, mode="L").resize(size, Image.NEAREST)
    return np.asarray(image) > 127

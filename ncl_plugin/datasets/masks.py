"""Reading a dataset's mask file as a boolean array of tampered pixels, whatever its convention."""

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from ncl_plugin.data.checks import to_rgb
from ncl_plugin.datasets.layout import BLACK, GREEN, RED, WHITE

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


# A pixel of a tampered image "changed" from its source photograph when their grey levels differ by more
# than this: above JPEG's noise at CASIA's qualities, far below what a pasted region changes.
_CHANGED = 20
# A turn is taken when the turned mask overlaps the changed pixels at least this well (IoU), and the
# other turn at most a quarter as well: on CASIA 1.0's one such image, 0.72 against 0.00.
_FITS, _MARGIN = 0.5, 4.0


def _grey(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(to_rgb(image).convert("L"), dtype=np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def turned_to_fit(tampered: np.ndarray, image: Path, sources) -> Optional[Tuple[np.ndarray, str]]:
    """A mask stored a quarter turn against its image, turned back: (the mask, why this way), or None.

    Which way cannot be told from the mask alone; it can from the photograph the image was made from:
    the tampered pixels are where the image differs from it. Each source of the image's size is
    tried; a turn is taken only when it fits clearly better than the other.
    """
    pixels = _grey(image)
    for source in sources:
        background = _grey(source)
        if background.shape != pixels.shape:
            continue
        changed = np.abs(pixels - background) > _CHANGED
        fits = {turns: _iou(np.rot90(tampered, turns), changed) for turns in (1, 3)}
        best = max(fits, key=fits.get)
        other = fits[4 - best]
        if fits[best] >= _FITS and fits[best] >= _MARGIN * other:
            way = "anticlockwise" if best == 1 else "clockwise"
            return np.rot90(tampered, best).copy(), (
                f"mask turned a quarter {way}: turned so, it covers where the image differs from {source.name} "
                f"(IoU {fits[best]:.2f}; {other:.2f} turned the other way)"
            )
    return None

"""Post-processing for the embedded set: what a forger does to pasted content, and what publishing does to the image.

A real dataset's images were resized, re-saved as JPEG and passed through
other hands after they were edited, so the traces of the edit are no longer
pristine. ``--post jpeg:60-95,resize:0.5-0.9,noise:2`` does the same to
every synthetic image, authentic ones included, in a fixed order: resampled
(down by a factor drawn from the range, and back to its size, so that the
mask stays exact), mild Gaussian noise (sigma drawn up to the value), then
JPEG at a quality drawn from the range, last, as publishing does.

Three more steps touch only the changed region of a manipulated image, before
the others, as real splices differ from the generator's: ``pasted_jpeg:50-90``
(the pasted content carries an earlier JPEG whose 8x8 grid is shifted from the
image's, as a photograph cut from another JPEG and pasted anywhere does: with
a final ``jpeg`` step, a non-aligned double compression), ``pasted_colour:0.15``
(its colour channels scaled by gains drawn within 1 +/- the value: another
camera, another light) and ``pasted_edge:1.5`` (its boundary blurred with a
sigma drawn up to the value: a feathered paste). Each image draws its own
values from its own generator, for the steps that are on only.
"""

import dataclasses
import re
from typing import Optional, Tuple

import cv2
import numpy as np

from ncl_plugin.errors import UsageError

STEPS = ("resize", "noise", "jpeg")  # whole-image steps, in the order they are applied in
PASTED = ("pasted_jpeg", "pasted_colour", "pasted_edge")  # changed-region steps, applied before them
# the steps that take one value: its name in the usage line, its largest, and what the error says it takes
SINGLE = {
    "noise": ("SIGMA", 50, "one sigma, above 0 and at most 50 grey levels"),
    "pasted_colour": ("GAIN", 0.5, "one gain change, above 0 and at most 0.5"),
    "pasted_edge": ("SIGMA", 5, "one sigma, above 0 and at most 5 pixels"),
}
_RANGE = re.compile(r"^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?$")


@dataclasses.dataclass(frozen=True)
class PostProcess:
    """The ranges each step draws from; None: the step is off."""

    resize: Optional[Tuple[float, float]] = None  # scale factor, in (0, 1]
    noise: Optional[float] = None  # the largest Gaussian sigma, in grey levels
    jpeg: Optional[Tuple[int, int]] = None  # JPEG quality, 1 to 100
    pasted_jpeg: Optional[Tuple[int, int]] = None  # quality of the pasted content's earlier JPEG
    pasted_colour: Optional[float] = None  # the largest gain change of the pasted content's channels
    pasted_edge: Optional[float] = None  # the largest blur sigma of the pasted content's boundary, in pixels

    def __bool__(self) -> bool:
        return any(getattr(self, step) is not None for step in STEPS + PASTED)

    def spec(self) -> str:
        """The canonical ``--post`` text, as the manifest records it ("" when off)."""
        parts = []
        for step in STEPS + PASTED:
            value = getattr(self, step)
            if value is not None:
                text = f"{value:g}" if step in SINGLE else f"{value[0]:g}-{value[1]:g}"
                parts.append(f"{step}:{text}")
        return ",".join(parts)

    def slug(self) -> str:
        """The spec as a folder-name part: ``jpeg60-95_noise2``."""
        return self.spec().replace(":", "").replace(",", "_")

    def apply(self, image: np.ndarray, rng: np.random.Generator, mask: Optional[np.ndarray] = None) -> np.ndarray:
        """``image`` (H x W x 3 uint8, RGB) post-processed; its size is kept. ``mask`` (H x W bool): the
        changed region, which the pasted_* steps rework (nothing for an authentic image)."""
        if mask is not None and mask.any():
            image = self._rework_pasted(image, mask, rng)
        if self.resize is not None:
            height, width = image.shape[:2]
            scale = rng.uniform(*self.resize)
            small = (max(8, round(width * scale)), max(8, round(height * scale)))
            image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        if self.noise is not None:
            noisy = image.astype(np.float32) + rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(
                0, self.noise
            )
            image = np.clip(noisy, 0, 255).round().astype(np.uint8)
        if self.jpeg is not None:
            image = _jpeg(image, int(rng.integers(self.jpeg[0], self.jpeg[1] + 1)))
        return image

    def _rework_pasted(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.pasted_jpeg is not None:
            quality = int(rng.integers(self.pasted_jpeg[0], self.pasted_jpeg[1] + 1))
            top, left = (int(v) for v in rng.integers(1, 8, 2))  # never on the image's own 8x8 grid
            earlier = image.copy()
            earlier[top:, left:] = _jpeg(np.ascontiguousarray(image[top:, left:]), quality)
            image = np.where(mask[..., None], earlier, image)
        if self.pasted_colour is not None:
            gains = rng.uniform(1 - self.pasted_colour, 1 + self.pasted_colour, 3).astype(np.float32)
            image = image.copy()
            image[mask] = np.clip(image[mask] * gains, 0, 255).round().astype(np.uint8)
        if self.pasted_edge is not None:
            sigma = rng.uniform(0, self.pasted_edge)
            if sigma >= 0.3:  # a smaller sigma changes no pixel
                width = int(np.ceil(sigma))
                kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
                region = mask.astype(np.uint8)
                band = (cv2.dilate(region, kernel) - cv2.erode(region, kernel)).astype(bool)
                image = np.where(band[..., None], cv2.GaussianBlur(image, (0, 0), sigma), image)
        return image


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (RGB) through a JPEG at ``quality``."""
    # OpenCV's encoder takes BGR: its colour transform and chroma subsampling must see the right channels
    _, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


NONE = PostProcess()  # images kept as the manipulation left them


def parse(text: Optional[str], flag: str = "--post") -> PostProcess:
    """``"jpeg:60-95,resize:0.5-0.9,noise:2,pasted_jpeg:50-90"`` -> PostProcess; "" or None -> none."""
    if not text or text.strip().lower() == "none":
        return NONE
    values = {}
    for item in str(text).split(","):
        step, _, value = item.strip().partition(":")
        match = _RANGE.match(value.strip())
        if step not in STEPS + PASTED or match is None or step in values:
            listing = ", ".join(f"{s}:{SINGLE[s][0] if s in SINGLE else 'LOW-HIGH'}" for s in STEPS + PASTED)
            raise UsageError(
                f"{flag} {text}: expected a comma list of {listing}, each once, e.g. jpeg:60-95,resize:0.5-0.9,noise:2"
            )
        low, high = float(match.group(1)), float(match.group(2) or match.group(1))
        values[step] = _checked(f"{flag} {text}", step, low, high)
    return PostProcess(**values)


def _checked(given: str, step: str, low: float, high: float):
    if step in SINGLE:
        _, largest, what = SINGLE[step]
        if high != low or not 0 < low <= largest:
            raise UsageError(f"{given}: {step} takes {what}")
        return low
    if low > high:
        raise UsageError(f"{given}: {step}:{low:g}-{high:g} runs backwards; give LOW-HIGH")
    if step == "resize" and not 0.1 <= low <= high <= 1:
        raise UsageError(f"{given}: resize factors lie between 0.1 and 1 (1: no resampling)")
    if step in ("jpeg", "pasted_jpeg"):
        if not (1 <= low <= high <= 100 and low.is_integer() and high.is_integer()):
            raise UsageError(f"{given}: JPEG qualities are whole numbers from 1 to 100")
        return int(low), int(high)
    return low, high

"""Whole-image post-processing for the embedded set: what published datasets do to an image after its manipulation.

A real dataset's images were resized, re-saved as JPEG and passed through
other hands after they were edited, so the traces of the edit are no longer
pristine. ``--post jpeg:60-95,resize:0.5-0.9,noise:2`` does the same to
every synthetic image, authentic ones included, in a fixed order: resampled
(down by a factor drawn from the range, and back to its size, so that the
mask stays exact), mild Gaussian noise (sigma drawn up to the value), then
JPEG at a quality drawn from the range, last, as publishing does. Each
image draws its own values from its own generator.
"""

import dataclasses
import re
from typing import Optional, Tuple

import cv2
import numpy as np

from ncl_plugin.errors import UsageError

STEPS = ("resize", "noise", "jpeg")  # the order they are applied in
_RANGE = re.compile(r"^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?$")


@dataclasses.dataclass(frozen=True)
class PostProcess:
    """The ranges each step draws from; None: the step is off."""

    resize: Optional[Tuple[float, float]] = None  # scale factor, in (0, 1]
    noise: Optional[float] = None  # the largest Gaussian sigma, in grey levels
    jpeg: Optional[Tuple[int, int]] = None  # JPEG quality, 1 to 100

    def __bool__(self) -> bool:
        return any(getattr(self, step) is not None for step in STEPS)

    def spec(self) -> str:
        """The canonical ``--post`` text, as the manifest records it ("" when off)."""
        parts = []
        for step in STEPS:
            value = getattr(self, step)
            if value is not None:
                text = f"{value:g}" if step == "noise" else f"{value[0]:g}-{value[1]:g}"
                parts.append(f"{step}:{text}")
        return ",".join(parts)

    def slug(self) -> str:
        """The spec as a folder-name part: ``jpeg60-95_noise2``."""
        return self.spec().replace(":", "").replace(",", "_")

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``image`` (H x W x 3 uint8, RGB) post-processed; its size is kept."""
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
            quality = int(rng.integers(self.jpeg[0], self.jpeg[1] + 1))
            # OpenCV's encoder takes BGR: its colour transform and chroma subsampling must see the right channels
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            _, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
            image = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return image


NONE = PostProcess()  # images kept as the manipulation left them


def parse(text: Optional[str], flag: str = "--post") -> PostProcess:
    """``"jpeg:60-95,resize:0.5-0.9,noise:2"`` -> PostProcess; "" or None -> no post-processing."""
    if not text or text.strip().lower() == "none":
        return NONE
    values = {}
    for item in str(text).split(","):
        step, _, value = item.strip().partition(":")
        match = _RANGE.match(value.strip())
        if step not in STEPS or match is None or step in values:
            raise UsageError(
                f"{flag} {text}: expected a comma list of {', '.join(f'{s}:LOW-HIGH' for s in STEPS)} "
                f"(noise:SIGMA), each once, e.g. jpeg:60-95,resize:0.5-0.9,noise:2"
            )
        low, high = float(match.group(1)), float(match.group(2) or match.group(1))
        values[step] = _checked(f"{flag} {text}", step, low, high)
    return PostProcess(**values)


def _checked(given: str, step: str, low: float, high: float):
    if step == "noise":
        if high != low or not 0 < low <= 50:
            raise UsageError(f"{given}: noise takes one sigma, above 0 and at most 50 grey levels")
        return low
    if low > high:
        raise UsageError(f"{given}: {step}:{low:g}-{high:g} runs backwards; give LOW-HIGH")
    if step == "resize" and not 0.1 <= low <= high <= 1:
        raise UsageError(f"{given}: resize factors lie between 0.1 and 1 (1: no resampling)")
    if step == "jpeg":
        if not (1 <= low <= high <= 100 and low.is_integer() and high.is_integer()):
            raise UsageError(f"{given}: JPEG qualities are whole numbers from 1 to 100")
        return int(low), int(high)
    return low, high

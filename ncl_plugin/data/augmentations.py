"""Training augmentations and robustness perturbations, in the installed albumentations' own terms.

IMDL-BenCo 0.1.45 pins albumentations 1.3; its numpy-2 line (imdlbenco13)
takes albumentations 2, which renamed or dropped the parameters IMDL-BenCo's
lists are written in, and ignores an unknown one with at most a warning:

- ``RandomCopyMove(p=0.1)`` and ``RandomInpainting(p=0.1)`` (IMDL-BenCo's own)
  hand ``(always_apply, p)`` to albumentations positionally, which in 2.x
  takes ``p`` alone: they end with p = 0, off, without a word;
- ``ImageCompression(quality_lower=70)`` becomes quality 99 to 100;
- ``GaussianBlur`` draws its sigma from (0.5, 3) instead of the kernel's size,
  and ``GaussNoise`` on an 8-bit image rounds the noise (less variance);
- ``GaussNoise(var_limit=v)`` and ``Downscale(scale_min=f)`` keep 2.x's
  defaults whatever ``v`` and ``f`` are; ``JpegCompression`` is gone.

Albumentations 2 also draws from random generators of its own, seeded by the
operating system unless given a seed: ``--seed`` would not reproduce a run,
nor a resumed run the one it continues. :func:`compose` seeds them at every
call from Python's global ``random``, which albumentations 1.3 draws from and
``benco`` seeds, saves and restores with a run.

Here every transform is built with the parameters of the albumentations that
is installed, so that ``--augment imdlbenco`` and ``benco test-robust`` do on
either line what IMDL-BenCo 0.1.45 does. ``tests/test_augmentations.py``
checks the effect, not the arguments.
"""

import math
import random
from typing import Callable, Dict, List, Optional

import albumentations as albu
import cv2
import numpy as np
from IMDLBenCo.transforms import RandomCopyMove, RandomInpainting

from ncl_plugin.errors import UsageError

ALBUMENTATIONS_2 = int(albu.__version__.split(".")[0]) >= 2


class GloballySeededCompose(albu.Compose):
    """An albumentations 2 Compose whose generators are seeded, at every call, from Python's global random."""

    def __call__(self, *args, force_apply: bool = False, **data):
        self.set_random_seed(random.getrandbits(32))
        return super().__call__(*args, force_apply=force_apply, **data)


def compose(transforms: List) -> albu.Compose:
    """albu.Compose, drawing from the random state a run seeds and saves (under albumentations 2 too)."""
    return GloballySeededCompose(transforms) if ALBUMENTATIONS_2 else albu.Compose(transforms)


def with_probability(transform, p: float):
    """The probability a transform was asked for, whatever its constructor did with it (IMDL-BenCo's
    RandomCopyMove and RandomInpainting under albumentations 2 end with 0)."""
    transform.p = p
    return transform


def jpeg(lowest: int, highest: int, p: float):
    if ALBUMENTATIONS_2:
        return albu.ImageCompression(quality_range=(lowest, highest), p=p)
    return albu.ImageCompression(quality_lower=lowest, quality_upper=highest, p=p)


def kernel_sigma(kernel: int) -> float:
    """The sigma OpenCV derives from a Gaussian kernel's size, what albumentations 1.3 blurs with."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def gaussian_blur(smallest: int, largest: int, p: float):
    """Kernel sizes in [smallest, largest], sigma from the kernel's size (albumentations 1.3's default).
    Albumentations 2 draws the sigma apart from the kernel: from the range the two kernels give."""
    if ALBUMENTATIONS_2:
        return albu.GaussianBlur(
            blur_limit=(smallest, largest), sigma_limit=(kernel_sigma(smallest), kernel_sigma(largest)), p=p
        )
    return albu.GaussianBlur(blur_limit=(smallest, largest), sigma_limit=0, p=p)


class EightBitGaussianNoise(albu.ImageOnlyTransform):
    """Gaussian noise of a variance in 8-bit units, added as albumentations 1.3 adds it (in float, then
    clipped and cut to 8 bits). Albumentations 2's GaussNoise rounds the noise itself on an 8-bit image,
    which takes a third of a variance of 3 away."""

    def __init__(self, variance: float, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.variance = variance

    def apply(self, img, **params):
        noise = self.random_generator.normal(0.0, math.sqrt(self.variance), img.shape)
        if img.dtype == np.uint8:
            return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        return (img + noise / 255.0).astype(img.dtype)

    def get_transform_init_args_names(self):
        return ("variance",)


def gaussian_noise(variance: float, p: float):
    """Noise of this variance in 8-bit pixel units."""
    if ALBUMENTATIONS_2:
        return EightBitGaussianNoise(variance, p=p)
    return albu.GaussNoise(var_limit=(variance, variance), p=p)


def downscale(factor: float, p: float):
    """Down by ``factor`` and back up, nearest neighbour both ways."""
    if ALBUMENTATIONS_2:
        nearest = {"downscale": cv2.INTER_NEAREST, "upscale": cv2.INTER_NEAREST}
        return albu.Downscale(scale_range=(factor, factor), interpolation_pair=nearest, p=p)
    return albu.Downscale(scale_min=factor, scale_max=factor, interpolation=cv2.INTER_NEAREST, p=p)


def pad_to_multiple(divisor: int):
    """Black padding at the bottom and right up to a multiple of ``divisor`` (albumentations 2 renamed value
    to fill)."""
    black = {"fill": 0} if ALBUMENTATIONS_2 else {"value": 0}
    return albu.PadIfNeeded(
        min_height=None,
        min_width=None,
        pad_height_divisor=divisor,
        pad_width_divisor=divisor,
        border_mode=cv2.BORDER_CONSTANT,
        position="top_left",
        **black,
    )


def _imdlbenco_augmentations() -> albu.Compose:
    """IMDL-BenCo train.py's augmentations, unchanged, so that every model sees the same data."""
    return compose(
        [
            albu.RandomScale(scale_limit=0.2, p=1),
            with_probability(RandomCopyMove(p=0.1), 0.1),
            with_probability(RandomInpainting(p=0.1), 0.1),
            albu.HorizontalFlip(p=0.5),
            albu.VerticalFlip(p=0.5),
            albu.RandomBrightnessContrast(brightness_limit=(-0.1, 0.1), contrast_limit=0.1, p=1),
            jpeg(70, 100, p=0.2),
            albu.RandomRotate90(p=0.5),
            gaussian_blur(3, 7, p=0.2),
        ]
    )


def _lossless_augmentations() -> albu.Compose:
    """Flips and quarter turns only: they move pixels without resampling, re-compressing or
    blurring them, so the traces a test image carries are the traces training images carry."""
    return compose([albu.HorizontalFlip(p=0.5), albu.VerticalFlip(p=0.5), albu.RandomRotate90(p=0.5)])


AUGMENTATIONS: Dict[str, Callable[[], albu.Compose]] = {
    "imdlbenco": _imdlbenco_augmentations,
    "lossless": _lossless_augmentations,
    "none": lambda: compose([]),
}


def train_transform(name: str = "imdlbenco") -> albu.Compose:
    """``--augment``: imdlbenco (IMDL-BenCo train.py's list), lossless or none."""
    if name not in AUGMENTATIONS:
        raise UsageError(f"--augment {name}: use one of {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]()


# ---------------------------------------------------------------- robustness
# IMDL-BenCo's robustness grid (transforms/robustness_wrapper.py): a parameter of 0 is the clean image.
PERTURBATIONS: Dict[str, Callable[[float], object]] = {
    "jpeg": lambda quality: jpeg(int(quality) - 1, int(quality), p=1.0),
    "blur": lambda kernel: gaussian_blur(int(kernel), int(kernel), p=1.0),
    "noise": lambda variance: gaussian_noise(float(variance), p=1.0),
}


def perturbation(name: str, parameter: float) -> Optional[albu.Compose]:
    """IMDL-BenCo's JPEG, blur or noise at ``parameter`` (None at 0: no perturbation)."""
    return None if parameter == 0 else compose([PERTURBATIONS[name](parameter)])

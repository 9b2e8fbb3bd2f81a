"""Augmentations and robustness perturbations do what they are asked under albumentations 1.3 and 2.x alike.

Under albumentations 2 (IMDL-BenCo's numpy-2 line), IMDL-BenCo's own lists keep
running with some transforms off or at other levels, with no error: these
tests measure each transform's effect on an image, not its arguments.
"""

import numpy as np
import pytest

from ncl_plugin.data import augmentations


def photo(size=64, seed=0):
    rng = np.random.default_rng(seed)
    # smooth content with texture, away from 0 and 255 so that noise is not clipped
    ramp = np.linspace(60, 190, size, dtype=np.float32)
    image = ramp[None, :, None] + rng.normal(0, 12, (size, size, 1))  # grey: JPEG's colour subsampling aside
    return np.clip(image.repeat(3, axis=2), 0, 255).astype(np.uint8)


def applied(transform, image):
    return transform(image=image, mask=np.zeros(image.shape[:2], dtype=np.uint8))["image"]


def test_imdlbenco_list_keeps_every_probability_it_asks_for():
    """RandomCopyMove and RandomInpainting at 0.1 (albumentations 2 left IMDL-BenCo's at 0: never applied)."""
    compose = augmentations.train_transform("imdlbenco")
    probabilities = {type(t).__name__: t.p for t in compose.transforms}
    assert probabilities == {
        "RandomScale": 1, "RandomCopyMove": 0.1, "RandomInpainting": 0.1, "HorizontalFlip": 0.5, "VerticalFlip": 0.5,
        "RandomBrightnessContrast": 1, "ImageCompression": 0.2, "RandomRotate90": 0.5, "GaussianBlur": 0.2,
    }  # fmt: skip
    for transform in compose.transforms[1:3]:  # at p = 1 they do change the mask
        forced = augmentations.with_probability(type(transform)(), 1.0)
        out = forced(image=photo(), mask=np.zeros((64, 64), dtype=np.uint8))
        assert out["mask"].any()


def error(a, b):
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_jpeg_quality_is_the_quality_asked_for():
    """Quality 70 loses more than quality 100 (albumentations 2 read IMDL-BenCo's quality_lower=70 as 99)."""
    image = photo()
    assert error(applied(augmentations.jpeg(70, 70, p=1), image), image) > 2 * error(
        applied(augmentations.jpeg(100, 100, p=1), image), image
    )
    assert error(applied(augmentations.perturbation("jpeg", 50), image), image) > error(
        applied(augmentations.perturbation("jpeg", 90), image), image
    )


@pytest.mark.parametrize("variance", [3, 23])
def test_gaussian_noise_has_the_variance_asked_for(variance):
    image = np.full((128, 128, 3), 128, dtype=np.uint8)
    noise = applied(augmentations.perturbation("noise", variance), image).astype(np.float32) - 128
    assert noise.var() == pytest.approx(variance, rel=0.2)


def test_blur_grows_with_the_kernel_and_a_zero_is_the_clean_image():
    image = photo()
    small, large = (error(applied(augmentations.perturbation("blur", k), image), image) for k in (3, 23))
    assert 0 < small < large
    assert augmentations.perturbation("blur", 0) is None


def test_downscale_by_a_quarter_leaves_blocks_of_four():
    image = photo()
    out = applied(augmentations.downscale(0.25, p=1), image)
    assert out.shape == image.shape
    blocks = out.reshape(16, 4, 16, 4, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # nearest neighbour both ways: every 4x4 block one colour
    assert not (out == image).all()


@pytest.mark.parametrize("name", ["imdlbenco", "lossless"])
def test_the_global_random_state_reproduces_every_augmentation(name):
    """benco seeds, saves and restores Python's random with a run; albumentations 2 drew from generators of its
    own, seeded by the operating system: the same seed gave other images, and a resumed run another epoch."""
    import random

    compose = augmentations.train_transform(name)
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:30, 20:40] = 255

    def epoch(seed):
        random.seed(seed)
        np.random.seed(seed)
        return [compose(image=photo(seed=i), mask=mask) for i in range(12)]

    first, again, other = epoch(0), epoch(0), epoch(1)
    for a, b in zip(first, again):
        assert a["image"].shape == b["image"].shape and (a["image"] == b["image"]).all() and (a["mask"] == b["mask"]).all()
    assert any(a["image"].shape != c["image"].shape or (a["image"] != c["image"]).any() for a, c in zip(first, other))
    noisy = augmentations.perturbation("noise", 23)
    random.seed(3)
    one = noisy(image=photo())["image"]
    random.seed(3)
    assert (noisy(image=photo())["image"] == one).all()

"""An embedded manipulation dataset, built from real photographs that ship inside installed packages.

No download: the photographs come with scikit-image, scikit-learn and
matplotlib. Each image is a random crop of one photograph, manipulated by
splicing (a region from another photograph), copy-move (a region of the same
photograph, moved) or removal (a region inpainted away); the mask is exactly
the changed region. A fraction of the images stays authentic (empty mask).
Train and test images come from disjoint photographs. ``post`` (``benco synth
--post``, ``benco train --synthetic_post``) re-compresses, resamples or adds
noise to every whole image afterwards, as published datasets are
(:mod:`.postprocess`), so that the traces are not pristine. With
``holdout="validation"`` the test photographs are not used at all: a few
training photographs are held out instead, so that settings can be chosen on
unseen photographs without ever looking at the test set.

Layout (IMDL-BenCo's ManiDataset, plus JsonDataset lists)::

    OUT/train/Tp/*.png  OUT/train/Gt/*.png   OUT/train.json   (authentic images have an empty mask)
    OUT/test/Tp/*.png   OUT/test/Gt/*.png    OUT/test.json    (manipulated images only)
    OUT/test/Au/*.png                        OUT/test_with_authentic.json  (for image-level metrics)
    OUT/test_datasets.json   {"synthetic": "OUT/test"}
    (holdout="validation": val instead of test, and {"synthetic-val": "OUT/val"})
    OUT/manifest.json        written last: a folder without it is incomplete
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from ncl_plugin.data.postprocess import NONE, PostProcess
from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import track

FORMAT_VERSION = 4
KINDS = ("splice", "copymove", "removal")

# (package, file): real photographs. Stereo pairs and near-duplicates stay in one split.
_TEST_PHOTOS = {"coffee.png", "grace_hopper.jpg", "flower.jpg", "gravel.png", "text.png"}
# Held out of the training photographs for choosing settings: one of each kind the
# test photographs have (an animal, a landscape, a texture, a document).
_VALIDATION_PHOTOS = {"chelsea.png", "china.jpg", "brick.png", "page.png"}
HOLDOUTS = ("test", "validation")
_PHOTOS = [
    ("skimage", "astronaut.png"),
    ("skimage", "chelsea.png"),
    ("skimage", "coffee.png"),
    ("skimage", "rocket.jpg"),
    ("skimage", "motorcycle_left.png"),
    ("skimage", "motorcycle_right.png"),
    ("skimage", "hubble_deep_field.jpg"),
    ("skimage", "ihc.png"),
    ("skimage", "retina.jpg"),
    ("skimage", "camera.png"),
    ("skimage", "brick.png"),
    ("skimage", "grass.png"),
    ("skimage", "gravel.png"),
    ("skimage", "moon.png"),
    ("skimage", "page.png"),
    ("skimage", "text.png"),
    ("skimage", "coins.png"),
    ("skimage", "clock_motion.png"),
    ("sklearn", "china.jpg"),
    ("sklearn", "flower.jpg"),
    ("matplotlib", "grace_hopper.jpg"),
]
_MAX_SIDE = 640  # photographs are downscaled once on load: crops never need more


def _package_folder(package: str) -> Optional[Path]:
    try:
        if package == "skimage":
            import skimage.data

            return Path(skimage.data.__file__).parent
        if package == "sklearn":
            import sklearn.datasets

            return Path(sklearn.datasets.__file__).parent / "images"
        if package == "matplotlib":
            import matplotlib

            return Path(matplotlib.get_data_path()) / "sample_data"
    except ImportError:
        return None
    return None


def held_split(holdout: str) -> str:
    """The folder (and file prefix) of the held-out split: 'test', or 'val' for holdout='validation'."""
    if holdout not in HOLDOUTS:
        raise UsageError(f"--holdout {holdout}: use one of {', '.join(HOLDOUTS)}")
    return "test" if holdout == "test" else "val"


def load_photographs(holdout: str = "test") -> Dict[str, List[Tuple[str, np.ndarray]]]:
    """{'train': [(name, HxWx3 uint8)], 'test': [...]} from the packages that are installed.

    holdout="validation": {'train': ..., 'val': ...}, both from the training photographs.
    """
    splits = {"train": [], held_split(holdout): []}
    for package, name in _PHOTOS:
        folder = _package_folder(package)
        path = folder / name if folder else None
        if path is None or not path.is_file():
            continue
        with Image.open(path) as image:
            image = image.convert("RGB")
            scale = _MAX_SIDE / max(image.size)
            if scale < 1:
                image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8).copy()
        if name in _TEST_PHOTOS:
            if holdout == "test":
                splits["test"].append((name, pixels))
        elif holdout == "validation" and name in _VALIDATION_PHOTOS:
            splits["val"].append((name, pixels))
        else:
            splits["train"].append((name, pixels))
    for split, photos in splits.items():
        if len(photos) < 2:
            raise UsageError(
                f"synthetic dataset: only {len(photos)} {split} photograph(s) found in scikit-image, "
                f"scikit-learn and matplotlib; reinstall them (pip install scikit-image scikit-learn matplotlib)"
            )
    return splits


def _crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    height, width = photo.shape[:2]
    side = int(rng.uniform(0.35, 1.0) * min(height, width))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    crop = cv2.resize(photo[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
    return crop[:, ::-1].copy() if rng.random() < 0.5 else crop


def _region(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ellipse or star-shaped polygon covering about 2% to 25% of the image."""
    mask = np.zeros((size, size), np.uint8)
    radius = size * np.sqrt(rng.uniform(0.02, 0.25) / np.pi)
    centre = rng.uniform(radius, size - radius, 2)
    if rng.random() < 0.4:
        axes = (int(radius * rng.uniform(0.6, 1.4)), int(radius * rng.uniform(0.6, 1.4)))
        cv2.ellipse(mask, tuple(int(c) for c in centre), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    else:
        vertices = rng.integers(5, 12)
        angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
        radii = radius * rng.uniform(0.5, 1.4, vertices)
        points = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.clip(points, 0, size - 1).astype(np.int32)], 1)
    if mask.sum() == 0:
        mask[int(centre[1]), int(centre[0])] = 1
    return mask.astype(bool)


def _sensor_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = rng.standard_normal(image.shape, dtype=np.float32)
    noisy *= sigma
    noisy += image
    return np.clip(noisy, 0, 255, out=noisy).round(out=noisy).astype(np.uint8)


def _reprocess(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A different processing history for pasted content: JPEG, blur or resampling."""
    choice = rng.integers(3)
    if choice == 0:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 86))])
        return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    if choice == 1:
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.4))
    size = image.shape[0]
    small = max(8, int(size * rng.uniform(0.4, 0.75)))
    return cv2.resize(
        cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA), (size, size), interpolation=cv2.INTER_LINEAR
    )


def _manipulate(kind: str, host: np.ndarray, donor: np.ndarray, region: np.ndarray, rng) -> np.ndarray:
    """Change ``region`` of ``host``. Like real forgeries, the changed pixels carry another
    processing history than the rest: the host has sensor-like noise, spliced content was
    reprocessed, moved content resampled, inpainted content is noise-free."""
    size = host.shape[0]
    if kind == "splice":
        source = _reprocess(_sensor_noise(donor, rng.uniform(0.5, 3.0), rng), rng)
    elif kind == "copymove":
        ys, xs = np.nonzero(region)
        extent = max(ys.max() - ys.min(), xs.max() - xs.min(), 8)
        shift = rng.uniform(0.6, 1.5, 2) * extent * rng.choice([-1, 1], 2)
        centre = (float(xs.mean()), float(ys.mean()))
        matrix = cv2.getRotationMatrix2D(centre, rng.uniform(-25, 25), rng.uniform(0.8, 1.25))
        matrix[:, 2] += shift
        source = cv2.warpAffine(host, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    else:  # removal
        return cv2.inpaint(host, region.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    out = host.copy()
    out[region] = source[region]
    return out


@dataclass
class Sample:
    image: np.ndarray  # H x W x 3 uint8
    mask: np.ndarray  # H x W bool
    kind: str  # splice | copymove | removal | authentic


def make_sample(
    photos: List[Tuple[str, np.ndarray]],
    size: int,
    rng: np.random.Generator,
    authentic_fraction: float,
    kinds: Sequence[str] = KINDS,
) -> Sample:
    host_index = rng.integers(len(photos))
    host = _sensor_noise(_crop(photos[host_index][1], size, rng), rng.uniform(3.0, 8.0), rng)
    if rng.random() < authentic_fraction:
        return Sample(host, np.zeros((size, size), bool), "authentic")
    kind = kinds[rng.integers(len(kinds))]
    donor_index = (host_index + rng.integers(1, len(photos))) % len(photos)
    donor = _crop(photos[donor_index][1], size, rng) if kind == "splice" else None
    region = _region(size, rng)
    return Sample(_manipulate(kind, host, donor, region, rng), region, kind)


def fixed_batch(size: int, count: int) -> Tuple[np.ndarray, np.ndarray]:
    """``count`` manipulated training-photograph images, 5 to 50% tampered, always the same ones.

    Returns (images (N, 3, size, size), masks (N, 1, size, size)) as float32, the images normalised
    as IMDL-BenCo's transforms hand them to a model: the batch a model must be able to memorise
    (``tests/test_learning.py``, ``benchmarks/probes/memorise.py``).
    """
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD  # here: timm is slow to import

    mean, std = np.array(IMAGENET_DEFAULT_MEAN), np.array(IMAGENET_DEFAULT_STD)
    photos, samples, index = load_photographs()["train"], [], 0
    while len(samples) < count:
        sample = make_sample(photos, size, np.random.default_rng([7, index]), authentic_fraction=0.0)
        index += 1
        if 0.05 < sample.mask.mean() < 0.5:  # neither a speck nor most of the image
            samples.append(sample)
    images = np.stack([(s.image / 255.0 - mean) / std for s in samples]).transpose(0, 3, 1, 2)
    masks = np.stack([s.mask for s in samples])[:, None]
    return images.astype(np.float32), masks.astype(np.float32)


def parse_kinds(text: str) -> Tuple[str, ...]:
    """``--kinds splice,removal`` -> ('splice', 'removal'); each is drawn with equal probability."""
    kinds = tuple(k.strip() for k in str(text).split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise UsageError(f"--kinds {text}: a comma list of {', '.join(KINDS)}")
    return kinds


def _write(folder: Path, name: str, sample: Sample) -> Tuple[str, str]:
    """Manipulated images go to Tp/ with their mask in Gt/; authentic ones go to Au/ when the
    folder is a held-out set (see build) and to Tp/ with an empty mask otherwise."""
    held_out_authentic = sample.kind == "authentic" and (folder / "Au").is_dir()
    tp = folder / ("Au" if held_out_authentic else "Tp") / name
    cv2.imwrite(str(tp), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if held_out_authentic:
        return str(tp.resolve()), "Negative"
    gt = folder / "Gt" / name
    cv2.imwrite(str(gt), sample.mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return str(tp.resolve()), (str(gt.resolve()) if sample.kind != "authentic" else "Negative")


def build(
    out: str,
    n: int = 500,
    size: int = 256,
    seed: int = 0,
    test_fraction: float = 0.2,
    authentic_fraction: float = 0.1,
    show_progress: bool = True,
    holdout: str = "test",
    kinds: Sequence[str] = KINDS,
    post: PostProcess = NONE,
) -> Path:
    """Write a synthetic dataset of ``n`` images to ``out`` and return its folder.

    The held-out split (``test``, or ``val`` with holdout="validation") follows IMDL-BenCo's
    pixel-level protocol: its ManiDataset folder and ``<split>.json`` hold only manipulated
    images, because IMDL-BenCo's pixel F1 and AUC score an authentic image 0 whatever the
    prediction. Its authentic images go to ``<split>/Au`` and, with the manipulated ones, to
    ``<split>_with_authentic.json``, the list for image-level metrics.

    ``post`` post-processes every whole image after its manipulation (JPEG, resampling, noise:
    see :mod:`.postprocess`), with a generator of its own per image, so that the manipulations
    drawn are those of the set without it.
    """
    if n < 4:
        raise UsageError(f"--n {n}: need at least 4 images (train and test take at least 2 each)")
    if size < 32 or size % 32:
        raise UsageError(f"--size {size}: must be a multiple of 32, at least 32")
    if not 0 < test_fraction < 1:
        raise UsageError(f"--test_fraction {test_fraction}: must be between 0 and 1")
    if not 0 <= authentic_fraction < 1:
        raise UsageError(f"--authentic_fraction {authentic_fraction}: must be in [0, 1)")
    kinds = parse_kinds(",".join(kinds))
    photos = load_photographs(holdout)
    held = held_split(holdout)
    root = Path(out)
    for split in ("train", "test", "val"):
        shutil.rmtree(root / split, ignore_errors=True)
    (root / "manifest.json").unlink(missing_ok=True)
    n_held = min(max(2, round(n * test_fraction)), n - 2)
    lists: Dict[str, list] = {"train": [], held: []}
    counts: Dict[str, Dict[str, int]] = {"train": {}, held: {}}
    for split in lists:
        for sub in ("Tp", "Gt") + (("Au",) if split == held else ()):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
    for index in track(range(n), "synthesising", total=n, unit="img", enabled=show_progress):
        split = held if index < n_held else "train"
        sample = make_sample(photos[split], size, np.random.default_rng([seed, index]), authentic_fraction, kinds)
        if post:
            sample.image = post.apply(sample.image, np.random.default_rng([seed, index, 1]), sample.mask)
        lists[split].append(list(_write(root / split, f"{index:05d}_{sample.kind}.png", sample)))
        counts[split][sample.kind] = counts[split].get(sample.kind, 0) + 1
    manipulated = [e for e in lists[held] if e[1] != "Negative"]
    if not manipulated:
        raise UsageError(f"--n {n}: the {held} split drew no manipulated image; use a larger --n")
    (root / "train.json").write_text(json.dumps(lists["train"], indent=1))
    (root / f"{held}.json").write_text(json.dumps(manipulated, indent=1))
    (root / f"{held}_with_authentic.json").write_text(json.dumps(lists[held], indent=1))
    name = "synthetic" if held == "test" else "synthetic-val"
    (root / f"{held}_datasets.json").write_text(json.dumps({name: str((root / held).resolve())}, indent=1))
    with_authentic = {name: str((root / f"{held}_with_authentic.json").resolve())}
    (root / f"{held}_datasets_with_authentic.json").write_text(json.dumps(with_authentic, indent=1))
    manifest = {
        "format": FORMAT_VERSION,
        "n": n,
        "size": size,
        "seed": seed,
        "holdout": holdout,
        "kinds": list(kinds),
        "test_fraction": test_fraction,
        "authentic_fraction": authentic_fraction,
        "post": post.spec(),
        "photographs": {split: [name for name, _ in photos[split]] for split in photos},
        "counts": counts,
    }
    tmp = root / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / "manifest.json")
    return root


def cache_root() -> Path:
    """``$NCL_CACHE_DIR``, else ``$XDG_CACHE_HOME/ncl_plugin``, else ``~/.cache/ncl_plugin``."""
    if os.environ.get("NCL_CACHE_DIR"):
        return Path(os.environ["NCL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ncl_plugin"


def cached(n: int, size: int, seed: int = 0, show_progress: bool = True, post: PostProcess = NONE) -> Tuple[Path, bool]:
    """The cached dataset for these settings, built on first use. Returns (folder, built_now)."""
    name = f"synthetic-v{FORMAT_VERSION}-n{n}-s{size}-seed{seed}" + (f"-post-{post.slug()}" if post else "")
    folder = cache_root() / name
    manifest = folder / "manifest.json"
    if manifest.is_file():
        try:
            written = json.loads(manifest.read_text())
            if written.get("n") == n and written.get("post", "") == post.spec():
                return folder, False
        except (OSError, ValueError):
            pass
    folder.mkdir(parents=True, exist_ok=True)
    return build(str(folder), n=n, size=size, seed=seed, show_progress=show_progress, post=post), True

"""Checking datasets before training, and loading their images robustly.

The scan reads image headers only, so that a missing file, a Tp/Gt pair of
different sizes or an unreadable header surfaces before the first epoch, not
at epoch 80. What a header cannot show (a truncated file) surfaces when the
image is decoded, as a :class:`BadSample` naming the file.
"""

import multiprocessing
import os
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import say, track

NEGATIVE = "Negative"  # IMDL-BenCo's JsonDataset marker for an authentic image


class BadSample(UsageError):
    """An image or mask that cannot be used; the message names the file."""


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float images scaled to 0-255: PIL's convert('RGB') would clip them to white."""
    array = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
    if top <= 255:
        return Image.fromarray(array.astype(np.uint8))
    return Image.fromarray(np.clip(array * (255.0 / top), 0, 255).round().astype(np.uint8))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode (grayscale, palette, RGBA, 16-bit, float, CMYK) as 8-bit RGB."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    elif image.mode == "P":
        image = image.convert("RGBA")
    return image.convert("RGB")


class ImageLoader:
    """IMDL-BenCo's ``img_loader`` hook: decode fully, convert any mode to RGB, name the file on failure.

    ``masks`` are the dataset's mask paths: a mask with values other than 0 and
    255 is thresholded by IMDL-BenCo (mean over channels > 127.5), and said once.
    """

    def __init__(self, masks: Sequence[str] = ()):
        self.masks = frozenset(masks)
        self.warned = False

    def __call__(self, path: str) -> Image.Image:
        try:
            with open(path, "rb") as handle:
                image = Image.open(handle)
                image.load()
                image = to_rgb(image)
        except FileNotFoundError:
            raise BadSample(f"{path}: file not found") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise BadSample(
                f"{path}: unreadable or truncated image ({err}); fix it, or pass --skip_bad_samples to leave such "
                f"files out"
            ) from None
        if path in self.masks and not self.warned:
            values = np.unique(np.asarray(image))
            if not set(values.tolist()) <= {0, 255}:
                self.warned = True
                warnings.warn(
                    f"{path}: mask is not binary ({len(values)} grey levels); IMDL-BenCo thresholds it at 127.5. "
                    f"Further non-binary masks are not reported.",
                    stacklevel=2,
                )
        return image


def read_size(path: str) -> Tuple[Optional[Tuple[int, int]], Optional[str]]:
    """((width, height), None) from the file header, or (None, what is wrong)."""
    if not os.path.isfile(path):
        return None, "file not found"
    try:
        with Image.open(path) as image:
            size, kind = image.size, image.format
            if not _ends_whole(path, kind):
                try:
                    image.load()  # no end marker: decode, to tell a truncated file from one with trailing bytes
                except (OSError, SyntaxError, ValueError) as err:
                    return None, f"unreadable or truncated image ({err})"
            return size, None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return None, f"unreadable image ({err})"


# The last bytes of a whole file: JPEG's end-of-image marker, PNG's IEND chunk. Reading them costs
# nothing beside a header, and finds the truncated download that would otherwise stop training at epoch 80.
_ENDS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}
_TAIL = 4096  # JPEGs may carry trailing bytes after their end marker (camera metadata)


def _ends_whole(path: str, kind: Optional[str]) -> bool:
    """Whether a JPEG or PNG file holds its end marker near its end (other formats: not checked, True)."""
    marker = _ENDS.get(kind or "")
    if marker is None:
        return True
    with open(path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(path) - _TAIL))
        return marker in handle.read()


def problems_of(tp_paths: Sequence[str], gt_paths: Sequence[str]) -> List[Tuple[int, str]]:
    """(index, message) for every pair with a missing or unreadable file, or with sizes that differ."""
    found = []
    pairs = enumerate(zip(tp_paths, gt_paths))
    if len(tp_paths) >= 2000:  # a big dataset takes seconds: show it
        pairs = track(pairs, "checking images", total=len(tp_paths), unit="img")
    for index, (tp, gt) in pairs:
        tp_size, tp_error = read_size(tp)
        if tp_error:
            found.append((index, f"{tp}: {tp_error}"))
            continue
        if gt == NEGATIVE:
            continue
        gt_size, gt_error = read_size(gt)
        if gt_error:
            found.append((index, f"{gt}: {gt_error}"))
        elif gt_size != tp_size:
            found.append((index, f"{tp} is {tp_size[0]}x{tp_size[1]} but its mask {gt} is {gt_size[0]}x{gt_size[1]}"))
    return found


ORDER_FLAG = "--pair_by_order"
ORDER_RULE = "the n-th file of Tp/ with the n-th file of Gt/, both in sorted order (IMDL-BenCo's ManiDataset)"


def check_mani_folder(path: str, flag: str, by_order: bool = False) -> Tuple[List[str], List[str]]:
    """A ManiDataset folder's (images, masks), checked and paired: Tp/ and Gt/ must exist and be non-empty, and
    each mask is paired with the image it is named after. A folder where some file has no partner of its name
    is an error naming the files; sorted order pairs a folder only when the user asks for it (``by_order``,
    :data:`ORDER_FLAG`). Returns the paths in pairing order, for :func:`pair_mani_dataset`."""
    tp_dir, gt_dir = os.path.join(path, "Tp"), os.path.join(path, "Gt")
    for sub in (tp_dir, gt_dir):
        if not os.path.isdir(sub):
            raise UsageError(
                f"{flag} {path}: no {os.path.basename(sub)}/ folder; a ManiDataset folder holds Tp/ (images) and Gt/ (masks)"
            )
    tp, gt = sorted(os.listdir(tp_dir)), sorted(os.listdir(gt_dir))
    if not tp:
        raise UsageError(f"{flag} {path}: Tp/ is empty")
    if by_order:
        _check_sorted_counts(tp, gt, path, flag)
        pairs = list(zip(tp, gt))
        say(f"{flag} {path}: {ORDER_FLAG}: {ORDER_RULE}; first pair {pairs[0][0]} with {pairs[0][1]}")
    else:
        pairs = _pairs_by_name(tp, gt, path, flag)
    return [os.path.join(tp_dir, t) for t, _ in pairs], [os.path.join(gt_dir, g) for _, g in pairs]


def pair_mani_dataset(dataset, pairs: Tuple[List[str], List[str]]):
    """IMDL-BenCo's ManiDataset pairs the n-th image of Tp/ with the n-th mask of Gt/ in sorted order, which
    differs from pairing by name wherever one name sorts apart from its partner (a.jpg, a1.jpg with a_gt.png,
    a1_gt.png): it is given the pairs :func:`check_mani_folder` checked instead."""
    dataset.tp_path, dataset.gt_path = list(pairs[0]), list(pairs[1])
    return dataset


# A mask is named after its image: x.jpg with x.png, or x followed by a separator and any word: x_gt.png
# (CASIA), x_mask.png, x_edgemask.jpg (Columbia), x-m.png. Where two images' names both start a mask's
# name (a_b.jpg and a.jpg for a_b_gt.png), the longer one is its image.
SEPARATORS = "_- ."
NAMED_LIMIT = 4  # unpaired files an error names before it counts the rest


def _stem(file: str) -> str:
    return os.path.splitext(file)[0].lower()


def _image_of(mask: str, images: dict) -> Optional[str]:
    """The stem of the image ``mask`` is named after, or None. ``images``: {stem: [files]}."""
    stem = _stem(mask)
    if stem in images:
        return stem
    for end in range(len(stem) - 1, 0, -1):  # longest first
        if stem[end] in SEPARATORS and stem[:end] in images:
            return stem[:end]
    return None


def _named(files: Sequence[str]) -> str:
    """A few files by name, then how many more."""
    shown = ", ".join(files[:NAMED_LIMIT])
    return shown + (f" and {len(files) - NAMED_LIMIT} more" if len(files) > NAMED_LIMIT else "")


def _pairs_by_name(tp: Sequence[str], gt: Sequence[str], path: str, flag: str) -> List[Tuple[str, str]]:
    """(image, mask) file names paired by name, in the images' order. A file without a partner of its name,
    or two images or two masks of one name, is an error naming them: sorted order would score images
    against other images' masks without a word."""
    images: dict = {}
    for name in tp:
        images.setdefault(_stem(name), []).append(name)
    masks: dict = {}
    strays = []
    for name in gt:
        owner = _image_of(name, images)
        if owner is None:
            strays.append(name)
        else:
            masks.setdefault(owner, []).append(name)
    alone = [f"Tp/{t}" for t in tp if _stem(t) not in masks] + [f"Gt/{g}" for g in strays]
    doubled = [f"Tp/{n}" for names in images.values() if len(names) > 1 for n in names]
    doubled += [f"Gt/{n}" for names in masks.values() if len(names) > 1 for n in names]
    if not alone and not doubled:
        return [(t, masks[_stem(t)][0]) for t in tp]
    paired = sum(1 for key, names in images.items() if len(names) == 1 and len(masks.get(key, [])) == 1)
    problems = [f"without a partner of their name: {_named(alone)}"] if alone else []
    problems += [f"sharing one name: {_named(doubled)}"] if doubled else []
    if paired == 0 and not doubled and len(tp) == len(gt):
        advice = (
            f"name each mask after its image (x.jpg with x.png or x_<any word>.png), give a JsonDataset list, "
            f"or pass {ORDER_FLAG} to pair {ORDER_RULE}"
        )
    else:
        advice = (
            "name each mask after its image (x.jpg with x.png or x_<any word>.png) and remove extra files, "
            "or give a JsonDataset list"
        )
    raise UsageError(
        f"{flag} {path}: Tp/ and Gt/ are paired by name, and {paired} of {len(tp)} images have their mask, "
        f"but {len(alone) + len(doubled)} files do not pair ({'; '.join(problems)}); {advice}"
    )


def _check_sorted_counts(tp: Sequence[str], gt: Sequence[str], path: str, flag: str) -> None:
    if len(tp) != len(gt):
        raise UsageError(
            f"{flag} {path}: {ORDER_FLAG}: Tp/ has {len(tp)} files but Gt/ has {len(gt)}, so they cannot be paired "
            f"in sorted order; add or remove files, or name each mask after its image and leave out {ORDER_FLAG}"
        )


class SkipCounter:
    """Bad samples skipped during an epoch, counted across DataLoader worker processes."""

    def __init__(self):
        self._value = (
            multiprocessing.get_context("fork").Value("i", 0) if os.name == "posix" else multiprocessing.Value("i", 0)
        )

    def add(self) -> None:
        with self._value.get_lock():
            self._value.value += 1

    def take(self) -> int:
        with self._value.get_lock():
            count, self._value.value = self._value.value, 0
        return count


def sub_datasets(dataset) -> list:
    """The AbstractDataset(s) behind a dataset: itself, or a BalancedDataset's members."""
    return list(getattr(dataset, "dataset_list", [dataset]))


def leave_out_authentic(dataset, path: str) -> int:
    """``--tampered_only``: drop the "Negative" entries of a dataset's lists; returns how many, and says so.
    A folder's authentic images (an empty mask in Gt/) cannot be told from their names: an error."""
    members = sub_datasets(dataset)
    if not all(isinstance(getattr(m, "gt_path", None), list) for m in members) or any(
        os.path.isdir(getattr(m, "entry_path", "")) for m in members
    ):
        raise UsageError(
            f"--tampered_only: --data_path {path} is a folder; it takes a JsonDataset list, whose authentic "
            f'entries say "Negative" (`benco data NAME ROOT --tampered_only` writes a list without them)'
        )
    dropped = 0
    for member in members:
        keep = [i for i, gt in enumerate(member.gt_path) if gt != NEGATIVE]
        dropped += len(member.gt_path) - len(keep)
        if not keep:
            raise UsageError(f"--tampered_only: --data_path {path} lists no tampered image")
        member.tp_path = [member.tp_path[i] for i in keep]
        member.gt_path = [member.gt_path[i] for i in keep]
    say(f"--tampered_only: training on the {len(dataset)} tampered images of {path}, {dropped} authentic left out")
    return dropped


def scan(dataset, flag: str, skip_bad: bool) -> int:
    """Check every pair of ``dataset`` up front (headers only).

    Problems raise one UsageError naming the first bad file, unless
    ``skip_bad``: then the bad pairs are dropped and their number returned.
    """
    dropped = 0
    for member in sub_datasets(dataset):
        found = problems_of(member.tp_path, member.gt_path)
        if found and not skip_bad:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise UsageError(f"{flag}: {found[0][1]}{more}; fix the files or pass --skip_bad_samples to leave them out")
        if found:
            bad = {index for index, _ in found}
            member.tp_path = [p for i, p in enumerate(member.tp_path) if i not in bad]
            member.gt_path = [p for i, p in enumerate(member.gt_path) if i not in bad]
            dropped += len(bad)
            if not member.tp_path:
                raise UsageError(f"{flag}: every sample is bad ({found[0][1]})")
        member.img_loader = ImageLoader(member.gt_path)
    return dropped


class SkippingDataset:
    """``--skip_bad_samples`` at decode time: a sample that fails is replaced by the next good one and counted."""

    def __init__(self, dataset, counter: SkipCounter):
        self.dataset = dataset
        self.counter = counter

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        return getattr(self.dataset, name)

    def __getitem__(self, index: int):
        for attempt in range(len(self.dataset)):
            try:
                return self.dataset[(index + attempt) % len(self.dataset)]
            except BadSample:
                self.counter.add()
        raise BadSample("every sample of the dataset failed to load")

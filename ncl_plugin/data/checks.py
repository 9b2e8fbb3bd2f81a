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


def check_mani_folder(path: str, flag: str) -> None:
    """A ManiDataset folder pairs Tp/ and Gt/ files in sorted order: they must exist, be non-empty and match."""
    tp_dir, gt_dir = os.path.join(path, "Tp"), os.path.join(path, "Gt")
    for sub in (tp_dir, gt_dir):
        if not os.path.isdir(sub):
            raise UsageError(
                f"{flag} {path}: no {os.path.basename(sub)}/ folder; a ManiDataset folder holds Tp/ (images) and Gt/ (masks)"
            )
    tp, gt = sorted(os.listdir(tp_dir)), sorted(os.listdir(gt_dir))
    if not tp:
        raise UsageError(f"{flag} {path}: Tp/ is empty")
    if len(tp) != len(gt):
        tp_stems = {os.path.splitext(n)[0] for n in tp}
        gt_stems = {os.path.splitext(n)[0] for n in gt}
        alone = sorted(tp_stems - gt_stems) or sorted(gt_stems - tp_stems)
        example = f"; for example {alone[0]!r} has no partner" if alone else ""
        raise UsageError(
            f"{flag} {path}: Tp/ has {len(tp)} files but Gt/ has {len(gt)}; they are paired in sorted order{example}"
        )
    _check_pairs_share_names(tp, gt, path, flag)


# How datasets name a mask after its image: x.jpg -> x_gt.png (CASIA), x_mask.png, x_edgemask.jpg (Columbia).
MASK_SUFFIXES = ("_gt", "-gt", "_mask", "-mask", "_edgemask", "_groundtruth")


def _partner_name(file: str) -> str:
    stem = os.path.splitext(file)[0].lower()
    for suffix in MASK_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _check_pairs_share_names(tp: Sequence[str], gt: Sequence[str], path: str, flag: str) -> None:
    """IMDL-BenCo's ManiDataset pairs the n-th image with the n-th mask in sorted order. Where some pairs
    share a name and others do not, a mask is missing, renamed or extra, and every pair after it is
    scored against another image's mask: an error, naming the files. A folder whose images and masks
    follow two naming schemes (no pair shares a name: 1t.tif with 1forged.tif) is left to that order."""
    differ = [(t, g) for t, g in zip(tp, gt) if _partner_name(t) != _partner_name(g)]
    if not differ or len(differ) == len(tp):
        return
    masks = {_partner_name(g) for g in gt}
    images = {_partner_name(t) for t in tp}
    alone = [f"Tp/{t}" for t in tp if _partner_name(t) not in masks] + [
        f"Gt/{g}" for g in gt if _partner_name(g) not in images
    ]
    unpaired = f"; without a partner of their name: {', '.join(alone[:4])}" + (" ..." if len(alone) > 4 else "")
    raise UsageError(
        f"{flag} {path}: Tp/ and Gt/ are paired in sorted order, and {len(differ)} of {len(tp)} pairs do not share "
        f"a name (first: Tp/{differ[0][0]} with Gt/{differ[0][1]}){unpaired if alone else ''}; rename them so that "
        f"each mask is named after its image, or give a JsonDataset list"
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

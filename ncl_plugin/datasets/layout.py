"""What an indexer finds in a dataset folder: samples to check, and files it had to leave out.

Indexers only read names and folders here; :mod:`.indexing` opens the files.
"""

import dataclasses
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"})

# How a mask file marks the tampered pixels.
WHITE = "white"  # bright = tampered; IMDL-BenCo's own reading (mean over channels > 127.5)
BLACK = "black"  # dark = tampered (inverted polarity, as in NIST's masks)
GREEN = "green"  # colour-coded: the green region is tampered
RED = "red"  # colour-coded: the red region is tampered
NOT_AN_IMAGE = "not an image file"  # the skip reason of Thumbs.db, READMEs, spreadsheets


@dataclasses.dataclass(frozen=True)
class Sample:
    """An image and, for a tampered one, its mask file and how that mask reads."""

    image: Path
    tampered: bool
    mask: Optional[Path] = None
    rule: str = WHITE
    sources: Tuple[Path, ...] = ()  # authentic images of the same copy it was made from (CASIA names them)


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file left out of the list: why, in a short phrase the summary counts by, and the particulars."""

    path: Path
    reason: str
    detail: str = ""


@dataclasses.dataclass
class Corrections:
    """The corrections an indexer applied, for the reports: published ones (:mod:`.renames`, :mod:`.revised`),
    and names and masks of a copy that differ from the ground truth's in a way only one pairing explains."""

    renamed: Dict[Path, str] = dataclasses.field(default_factory=dict)  # image -> the corrected name it paired by
    renames_from: Optional[Path] = None  # the spreadsheet those renames came from
    revised: Dict[Path, Tuple[Path, Path]] = dataclasses.field(default_factory=dict)  # image -> (own mask, revised)
    unused: List[Skipped] = dataclasses.field(default_factory=list)  # revised masks not taken, and why
    # image -> (the mask name it paired by, how its own name differs: "source ids swapped", "source id misspelt")
    respelt: Dict[Path, Tuple[str, str]] = dataclasses.field(default_factory=dict)
    turned: Dict[Path, str] = dataclasses.field(default_factory=dict)  # image -> how its mask was turned, and why


@dataclasses.dataclass
class Found:
    """An indexer's result: the samples it recognised, and the files it left out by name or layout."""

    samples: List[Sample] = dataclasses.field(default_factory=list)
    skipped: List[Skipped] = dataclasses.field(default_factory=list)
    tampered_seen: int = 0  # tampered images recognised, with a usable mask or not
    corrections: Corrections = dataclasses.field(default_factory=Corrections)
    warnings: List[str] = dataclasses.field(default_factory=list)
    published: Optional["Published"] = None  # the counts to check against, when not the dataset's (a --subset)

    @property
    def authentic_seen(self) -> int:
        return sum(not s.tampered for s in self.samples)

    def skip(self, path: Path, reason: str, detail: str = "") -> None:
        self.skipped.append(Skipped(path, reason, detail))


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def files_under(root: Path) -> List[Path]:
    """Every file below ``root``, sorted, hidden files (``.DS_Store``, ``._x.jpg``) left out."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found.extend(Path(folder) / name for name in sorted(names) if not name.startswith("."))
    return found


def split_images(files: Iterable[Path], found: Found) -> List[Path]:
    """Image files of ``files``; every other file (``Thumbs.db``, a README) is recorded as skipped."""
    images = []
    for path in files:
        if is_image(path):
            images.append(path)
        else:
            found.skip(path, NOT_AN_IMAGE)
    return images


def group_by(paths: Iterable[Path], key) -> Dict[str, List[Path]]:
    groups = defaultdict(list)
    for path in paths:
        groups[key(path)].append(path)
    return groups


def pair_masks(images: Dict[str, List[Path]], masks: Dict[str, List[Path]], found: Found, rule: str = WHITE) -> None:
    """Tampered samples from images and masks keyed by the same name; never a guess.

    A name shared by two images, or two masks, is skipped with the files named:
    which mask belongs to which image cannot be told.
    """
    found.tampered_seen += sum(len(candidates) for candidates in images.values())
    for key, candidates in sorted(images.items()):
        own = masks.get(key, [])
        if len(candidates) > 1:
            for path in candidates:
                found.skip(path, "ambiguous name", f"{len(candidates)} images share the name {key!r}")
        elif not own:
            found.skip(candidates[0], "no mask")
        elif len(own) > 1:
            names = ", ".join(str(m) for m in own)
            found.skip(candidates[0], "ambiguous name", f"{len(own)} masks match it: {names}")
        else:
            found.samples.append(Sample(candidates[0], True, own[0], rule))
    for key in sorted(set(masks) - set(images)):
        for path in masks[key]:
            found.skip(path, "mask without an image")


@dataclasses.dataclass(frozen=True)
class Options:
    """Choices a user can make about a layout (``benco data`` flags)."""

    masks: Optional[Path] = None  # masks kept apart from the images (CASIA's ground truth repositories)
    columbia_spliced: str = GREEN  # which colour of Columbia's edge masks is the spliced region
    renames: Optional[Path] = None  # CASIA's rename spreadsheet; None: the one found with the masks, if any
    apply_renames: bool = True  # False: --renames none
    corrections: Optional[Path] = None  # a folder of revised masks (.revised)
    subset: Optional[Path] = None  # DEFACTO: a list of the images to keep (MVSS-Net's DEFACTO12k-test.txt)


@dataclasses.dataclass(frozen=True)
class Published:
    """Counts the publisher gives; ``None`` where no count is published."""

    tampered: Optional[int]
    authentic: Optional[int]
    approximate: bool = False  # "about 19,000": a copy within APPROXIMATE of it is not warned about

    def text(self, count: Optional[int]) -> str:
        if count is None:
            return "-"
        return f"about {count}" if self.approximate else str(count)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A public dataset as distributed: how to find its samples, and what its publisher counts."""

    name: str  # the ``benco data`` name
    title: str  # the name test sets go by in IMDL-BenCo's tables
    folders: Tuple[str, ...]  # folder names it usually has, for ``benco data protocol --root``
    published: Published
    layout: str  # one line for `benco data --help`
    find: Callable[[Path, Options], Found]
    # Tells a folder of masks shipped apart by its name (CASIA), for ``benco data protocol --root``
    is_mask_folder: Optional[Callable[[str], bool]] = None
    # The name a file below ``top`` has as one of this dataset's (white-on-black) masks, None if it is not one:
    # how a revised mask is matched to the mask it replaces. None: no revised masks are taken.
    mask_key: Optional[Callable[[Path, Path], Optional[str]]] = None


def inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())

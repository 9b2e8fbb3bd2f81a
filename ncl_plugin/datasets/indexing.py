"""Checking what an indexer found, file by file, and writing the IMDL-BenCo list.

Every image header is read and every mask decoded, so that what IMDL-BenCo
would fail on at epoch 80 (an unreadable file, a mask of another size) or
count wrongly (an empty mask, the same photograph twice) is settled here,
with the reason kept for each file left out.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from PIL import UnidentifiedImageError

from ncl_plugin.data.checks import NEGATIVE, read_size
from ncl_plugin.datasets.layout import WHITE, Corrections, Found, Sample, Skipped
from ncl_plugin.datasets.masks import as_white, read_tampered, resized, turned_to_fit
from ncl_plugin.terminal import track

# --fix resize rescales a mask only when it is the image scaled: same aspect
# ratio within this fraction. A transposed or cropped mask is never "fixed".
ASPECT_TOLERANCE = 0.02
FIXES = ("resize",)


@dataclasses.dataclass
class Entry:
    """A sample that passed every check."""

    sample: Sample
    area: float = 0.0  # tampered fraction of the image
    mask_path: Optional[Path] = None  # what the list points to: the dataset's mask, or one written anew
    written: bool = False


@dataclasses.dataclass
class Index:
    """One dataset, checked: what goes into the list, what was left out, and the counts behind the summary."""

    name: str
    root: Path
    entries: List[Entry]
    skipped: List[Skipped]
    found_tampered: int  # recognised by the layout, before any check
    found_authentic: int
    size_mismatches: int = 0  # masks whose size differs from their image's
    resized_masks: int = 0
    corrections: Corrections = dataclasses.field(default_factory=Corrections)  # as the indexer applied them

    @property
    def tampered(self) -> List[Entry]:
        return [e for e in self.entries if e.sample.tampered]

    @property
    def authentic(self) -> List[Entry]:
        return [e for e in self.entries if not e.sample.tampered]

    def listed(self, images) -> int:
        """How many of ``images`` are in the list."""
        return sum(e.sample.image in images for e in self.entries)


def _absolute(path: Path) -> Path:
    """Absolute, symbolic links kept: a dataset linked into place stays addressed through the link."""
    return Path(os.path.abspath(path))


def _digest(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shape_text(size) -> str:
    return f"{size[0]}x{size[1]}"


def _check_mask(
    sample: Sample, size, fix: Optional[str], index: Index, masks_to: Path
) -> Tuple[Optional[Entry], Optional[Skipped]]:
    def skip(reason: str, detail: str):
        return None, Skipped(sample.image, reason, detail)

    try:
        tampered = read_tampered(sample.mask, sample.rule)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return skip("unreadable mask", f"{sample.mask}: {err}")
    mask_size = (tampered.shape[1], tampered.shape[0])
    rewritten = sample.rule != WHITE
    if mask_size != size:
        index.size_mismatches += 1
        what = f"mask {sample.mask.name} is {_shape_text(mask_size)}, the image {_shape_text(size)}"
        if mask_size == size[::-1]:
            turned = turned_to_fit(tampered, sample.image, sample.sources)
            if turned is None:
                return skip("mask size differs", f"{what} (transposed)")
            tampered, why = turned
            index.corrections.turned[sample.image] = why
        else:
            same_shape = abs(mask_size[0] / mask_size[1] - size[0] / size[1]) <= ASPECT_TOLERANCE * size[0] / size[1]
            if fix != "resize":
                return skip("mask size differs", what + ("; --fix resize would rescale it" if same_shape else ""))
            if not same_shape:
                return skip("mask size differs", f"{what}, another aspect ratio: not rescaled")
            tampered = resized(tampered, size)
            index.resized_masks += 1
        rewritten = True
    if not tampered.any():
        return skip("empty mask", f"{sample.mask} marks no tampered pixel")
    if not rewritten:
        return Entry(sample, float(tampered.mean()), sample.mask), None
    # Written now, not kept: a dataset's masks can hold gigabytes of pixels. Named
    # after the whole image name, so that x.jpg and x.tif in one folder get two masks.
    relative = _absolute(sample.image).relative_to(_absolute(index.root))
    path = masks_to / relative.with_name(relative.name + ".mask.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    as_white(tampered).save(path)
    return Entry(sample, float(tampered.mean()), path, written=True), None


def check(name: str, root: Path, found: Found, masks_to: Path, fix: Optional[str] = None) -> Index:
    """Open every file ``found`` names; keep what IMDL-BenCo can use, with a reason for the rest.

    Masks that must be converted (another polarity or colour code, or rescaled
    by ``fix``) are written as white-on-black PNGs below ``masks_to``.
    """
    index = Index(
        name,
        root,
        [],
        list(found.skipped),
        found_tampered=found.tampered_seen,
        found_authentic=found.authentic_seen,
        corrections=found.corrections,
    )
    by_digest: Dict[str, List[Entry]] = {}
    for sample in track(found.samples, f"checking {name}", unit="img"):
        size, error = read_size(str(sample.image))
        entry, problem = None, Skipped(sample.image, "unreadable image", error)
        if size is not None:
            entry, problem = (
                _check_mask(sample, size, fix, index, masks_to) if sample.tampered else (Entry(sample), None)
            )
        if entry is None:
            index.skipped.append(problem)
            continue
        by_digest.setdefault(_digest(sample.image), []).append(entry)
    for copies in by_digest.values():
        index.entries.extend(_without_duplicates(copies, index.skipped))
    index.entries.sort(key=lambda e: str(e.sample.image))
    return index


def _without_duplicates(copies: List[Entry], skipped: List[Skipped]) -> List[Entry]:
    """One of several byte-identical images; none when they disagree on tampered or authentic."""
    if len(copies) == 1:
        return copies
    first = copies[0].sample.image
    if len({e.sample.tampered for e in copies}) > 1:
        for entry in copies:
            kind = "tampered" if entry.sample.tampered else "authentic"
            skipped.append(
                Skipped(
                    entry.sample.image, "duplicate image", f"listed as {kind}; the same file is listed otherwise too"
                )
            )
        dropped = copies
    else:
        dropped = copies[1:]
        for entry in dropped:
            skipped.append(Skipped(entry.sample.image, "duplicate image", f"the same file as {first}"))
    for entry in dropped:
        if entry.written:
            entry.mask_path.unlink()
    return [] if dropped is copies else copies[:1]


def mask_folder(out: Path) -> Path:
    """Where the masks this tool writes go: beside the list, ``<list name>_masks/``."""
    return out.with_name(out.stem + "_masks")


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(text)
    os.replace(temporary, path)


def write(index: Index, out: Path, tampered_only: bool = False) -> List[List[str]]:
    """The JsonDataset list at ``out`` (absolute paths) and ``<out>.skipped.tsv``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for entry in index.entries:
        if entry.sample.tampered:
            rows.append([str(_absolute(entry.sample.image)), str(_absolute(entry.mask_path))])
        elif not tampered_only:
            rows.append([str(_absolute(entry.sample.image)), NEGATIVE])
    # one pair a line: the list reads, and diffs, as a table
    _atomic_write(out, "[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n")
    _write_table(skipped_report(out), ("file", "reason", "detail"), index.skipped)
    _write_table(corrections_report(out), ("file", "correction", "detail"), corrections(index))
    return rows


def corrections(index: Index) -> List[Skipped]:
    """Each published correction applied (rename, revised mask), and each revised mask left unused, with why."""
    applied = index.corrections
    rows = [
        Skipped(image, "renamed", f"paired as {name}, its corrected name in {applied.renames_from}")
        for image, name in applied.renamed.items()
    ]
    rows += [
        Skipped(image, how, f"paired with the mask of {name}: the same kind, flags, serial and source photographs")
        for image, (name, how) in applied.respelt.items()
    ]
    rows += [Skipped(image, "mask turned", why) for image, why in applied.turned.items()]
    listed = {e.sample.image for e in index.entries}
    rows += [
        Skipped(image, "revised mask", f"{new} replaces {own}" + ("" if image in listed else "; the image is left out"))
        for image, (own, new) in applied.revised.items()
    ]
    return rows + applied.unused


def _write_table(path: Path, header, rows: List[Skipped]) -> None:
    """A tab-separated report, one file a line, sorted; none (an earlier run's removed) when there is nothing to say."""
    if rows:
        ordered = sorted(rows, key=lambda s: str(s.path))
        lines = ["\t".join(header)] + [f"{s.path}\t{s.reason}\t{s.detail}" for s in ordered]
        _atomic_write(path, "\n".join(lines) + "\n")
    elif path.exists():  # left by an earlier run of the same list
        path.unlink()


def skipped_report(out: Path) -> Path:
    return out.with_name(out.stem + ".skipped.tsv")


def corrections_report(out: Path) -> Path:
    return out.with_name(out.stem + ".corrections.tsv")

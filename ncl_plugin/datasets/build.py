"""One dataset from its folder to a checked IMDL-BenCo list, with its summary shown and saved."""

from pathlib import Path
from typing import Optional

from ..errors import UsageError
from ..terminal import print_plain, say, show, warn
from . import summary
from .indexing import Index, check, mask_folder, skipped_report, write
from .layout import Dataset, Options, inside


def summary_file(out: Path) -> Path:
    return out.with_name(out.stem + ".summary.txt")


def build(
    dataset: Dataset,
    root: Path,
    out: Path,
    options: Optional[Options] = None,
    fix: Optional[str] = None,
    tampered_only: bool = False,
    masks_flag: str = "--masks",
) -> Index:
    """Index ``root`` as ``dataset``, write the list to ``out``, show the summary and any count warning."""
    options = options or Options()
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder; give the folder {dataset.title} was unpacked into")
    if options.masks is not None and not options.masks.is_dir():
        raise UsageError(f"{masks_flag} {options.masks}: no such folder")
    if inside(out.parent, root):
        raise UsageError(
            f"--out {out} is inside {root}: the list and the masks it writes go beside the dataset, "
            f"where a later run does not take them for its files; choose a folder outside it"
        )
    found = dataset.find(root, options)
    if not found.samples:
        raise UsageError(
            f"{root}: no {dataset.title} image found below it ({len(found.skipped)} other files); "
            f"is it the right folder? `benco data --help` lists each layout"
        )
    say(
        f"{dataset.title}: {found.tampered_seen} tampered and {found.authentic_seen} authentic image(s) below {root}; "
        f"checking each file"
    )
    index = check(dataset.title, root, found, mask_folder(out), fix)
    grid = summary.table(index, dataset.published, tampered_only)
    show(grid)
    if not index.tampered:
        paired = any(s.tampered for s in found.samples)
        why = "passed the checks" if paired else "could be paired with a mask"
        raise UsageError(
            f"{root}: none of the {index.found_tampered} tampered {dataset.title} images {why}; see the table above "
            f"and the README's section on {dataset.title} for where its masks come from"
            + ("" if paired or dataset.is_mask_folder is None else f" ({masks_flag} DIR: a mask folder kept apart)")
        )
    rows = write(index, out, tampered_only)
    with open(summary_file(out), "w") as handle:
        print_plain(grid, handle)
    for line in summary.warnings(index, dataset.published):
        warn(line)
    notes = f"; files left out, and why: {skipped_report(out)}" if index.skipped else ""
    say(f"Wrote {out} ({len(rows)} image(s)){notes}")
    return index

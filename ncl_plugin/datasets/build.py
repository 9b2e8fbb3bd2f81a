"""One dataset from its folder to a checked IMDL-BenCo list, with its summary shown and saved."""

from pathlib import Path
from typing import Optional

from ncl_plugin.datasets import revised, summary
from ncl_plugin.datasets.indexing import Index, check, corrections_report, mask_folder, skipped_report, write
from ncl_plugin.datasets.layout import Dataset, Options, inside
from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import print_plain, say, show, warn


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
    if options.corrections is not None:
        _check_corrections(dataset, root, options.corrections)
    found = dataset.find(root, options)
    if options.corrections is not None:
        revised.apply(found, dataset, options.corrections, [t for t in (options.masks, root) if t is not None])
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
    published = found.published or dataset.published
    grid = summary.table(index, published, tampered_only)
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
    for line in found.warnings + summary.warnings(index, published):
        warn(line)
    notes = f"; files left out, and why: {skipped_report(out)}" if index.skipped else ""
    if corrections_report(out).exists():
        notes += f"; published corrections: {corrections_report(out)}"
    say(f"Wrote {out} ({len(rows)} image(s)){notes}")
    return index


def _check_corrections(dataset: Dataset, root: Path, folder: Path) -> None:
    if dataset.mask_key is None:
        raise UsageError(
            f"--corrections: revised masks are taken for CASIAv1, CASIAv2, Coverage and IMD2020, not {dataset.title}"
        )
    if not folder.is_dir():
        raise UsageError(f"--corrections {folder}: no such folder")
    if inside(folder, root) or inside(root, folder):
        raise UsageError(
            f"--corrections {folder} and {root} overlap: the revised masks would be taken for the dataset's own; "
            f"keep them in a folder of their own"
        )

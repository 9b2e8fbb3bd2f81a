"""Revised masks: the community's corrections of masks that do not fit their images (``--corrections DIR``).

The IML community's correction repository (SunnyHaze/IML-Dataset-Corrections)
publishes revised masks for the CASIA 2.0 images whose masks have another
size (17), for 9 COVERAGE forgeries (27 masks: copy, paste and forged) and
for IMD2020's ``z14/00030_fake``: the CASIA and COVERAGE ones as downloads,
the IMD2020 one in the repository's ``images/`` folder. Each is named as the
mask it replaces (``<image>_gt.png``, ``41forged.tif``,
``00030_fake_mask.png``), white on black.

A revised mask replaces the dataset's own mask of the same name, whatever
folder below DIR it sits in; where several masks of the dataset share that
name (IMD2020 repeats names across its folders), it must sit in a folder
named as its image's folder (``DIR/z14/00030_fake_mask.png``). It then goes
through every check the dataset's own masks do.
"""

from pathlib import Path
from typing import Dict, List

from ncl_plugin.datasets.layout import WHITE, Dataset, Found, Sample, Skipped, files_under, inside, is_image


def _top(path: Path, tops: List[Path]) -> Path:
    return next(top for top in tops if inside(path, top))


def apply(found: Found, dataset: Dataset, folder: Path, tops: List[Path]) -> None:
    """Replace the masks of ``found``'s tampered samples by their revised masks in ``folder``.

    ``tops`` are the folders the dataset's own masks were found below (ROOT, and ``--masks``).
    """
    own: Dict[str, List[int]] = {}
    for number, sample in enumerate(found.samples):
        if sample.tampered:
            own.setdefault(dataset.mask_key(sample.mask, _top(sample.mask, tops)), []).append(number)
    chosen: Dict[int, List[Path]] = {}
    for path in files_under(folder):
        key = dataset.mask_key(path, folder) if is_image(path) else None
        if key is None:
            continue  # not one of this dataset's masks (another dataset's, or a copy or paste mask)
        candidates = own.get(key, [])
        if len(candidates) > 1:  # the same mask name in several folders: the revised mask's folder tells which
            candidates = [n for n in candidates if found.samples[n].mask.parent.name == path.parent.name] or candidates
        if not candidates:
            detail = f"no tampered image of {dataset.title} is paired with a mask named {key!r}"
            found.corrections.unused.append(Skipped(path, "revised mask unused", detail))
        elif len(candidates) > 1:
            folders = ", ".join(sorted({found.samples[n].mask.parent.name for n in candidates}))
            detail = (
                f"{len(candidates)} masks of {dataset.title} are named {key!r} (in {folders}); "
                f"put it in a folder named as its image's"
            )
            found.corrections.unused.append(Skipped(path, "revised mask unused", detail))
        else:
            chosen.setdefault(candidates[0], []).append(path)
    for number, paths in chosen.items():
        sample = found.samples[number]
        if len(paths) > 1:  # two revisions of one mask: which is the later cannot be told
            for path in paths:
                found.corrections.unused.append(
                    Skipped(
                        path,
                        "revised mask unused",
                        f"{len(paths)} revised masks for {sample.image.name}: {', '.join(map(str, paths))}",
                    )
                )
            continue
        found.corrections.revised[sample.image] = (sample.mask, paths[0])
        found.samples[number] = Sample(sample.image, True, paths[0], WHITE)

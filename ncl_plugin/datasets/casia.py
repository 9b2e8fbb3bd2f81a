"""CASIA v1.0 and v2.0 (Dong, Wang and Tan, ChinaSIP 2013), with the community's ground-truth masks.

The publisher ships images only: authentic ``Au_*`` and tampered images
(``Sp_*`` in v1.0, in ``Tp/CM`` and ``Tp/Sp``; ``Tp_*`` in v2.0, in ``Tp/``).
The masks come from the ground-truth repositories the field uses
(namtpham/casia1groundtruth, namtpham/casia2groundtruth, and the corrected
v2.0 masks of SunnyHaze/CASIA2.0-Corrected-Groundtruth that IMDL-BenCo's
documentation points to), named ``<image name>_gt.png``. Images and masks are
paired by name wherever they sit below the root (or below ``--masks``), so
mixed folders, IMDL-BenCo's ``Tp/``+``Gt/`` copies and the repositories'
folder names all work; the folder an image is in never decides its class,
its name does. A copy whose images still carry the publisher's wrong names
is paired through the renames the ground truth publishes (:mod:`.renames`).
"""

import dataclasses
import re
from pathlib import Path
from typing import Dict, List, Optional

from ncl_plugin.datasets.layout import (
    NOT_AN_IMAGE,
    Dataset,
    Found,
    Options,
    Published,
    Sample,
    files_under,
    group_by,
    inside,
    pair_masks,
    split_images,
)
from ncl_plugin.datasets.renames import Renames, find_spreadsheets
from ncl_plugin.datasets.renames import load as load_renames
from ncl_plugin.datasets.sources import frame, respelt, sources

MASK_FOLDERS = {"gt", "groundtruth", "ground_truth", "mask", "masks"}


def _is_mask(path: Path, root: Path) -> bool:
    """``*_gt.*``, or any image in a folder named like a mask folder (IMDL-BenCo's ``Gt/``)."""
    folders = {part.lower().replace(" ", "_") for part in path.relative_to(root).parent.parts}
    named_gt = any(f in MASK_FOLDERS or f.endswith("groundtruth") for f in folders)
    return path.stem.lower().endswith("_gt") or named_gt


def _mask_key(path: Path) -> str:
    stem = path.stem
    return stem[: -len("_gt")] if stem.lower().endswith("_gt") else stem


def ground_truth_of(version: str):
    """Whether a folder's name is CASIA ``version``'s ground truth: ``CASIA 1.0 groundtruth``,
    ``CASIA2.0_Groundtruth``, ``CASIA2.0-Corrected-Groundtruth``, ``casia2groundtruth``, ...

    A wrong pick could not pair wrongly: v1.0 (``Sp_``) and v2.0 (``Tp_``) names never meet.
    """

    def matches(name: str) -> bool:
        squeezed = re.sub(r"[\s._-]", "", name.lower())
        return "groundtruth" in squeezed and re.search(rf"casiav?{version}", squeezed) is not None

    return matches


def mask_key_of(tampered_prefix: str):
    """The image name a CASIA mask file below ``top`` belongs to; None for a file that is not this version's mask."""

    def mask_key(path: Path, top: Path) -> Optional[str]:
        key = _mask_key(path)
        return key if key.startswith(tampered_prefix) and _is_mask(path, top) else None

    return mask_key


def find_casia(root: Path, options: Options, tampered_prefix: str, title: str) -> Found:
    found = Found()
    apart = options.masks is not None and not inside(options.masks, root)
    masks, images = [], []
    for top in [root] + ([options.masks] if apart else []):
        for path in split_images(files_under(top), found):
            is_mask = _is_mask(path, top) or (options.masks is not None and inside(path, options.masks))
            (masks if is_mask else images).append(path)
    tampered = []
    for path in images:
        if path.name.startswith("Au_"):
            found.samples.append(Sample(path, tampered=False))
        elif path.name.startswith(tampered_prefix):
            tampered.append(path)
        else:
            found.skip(path, "not a CASIA name", f"starts with neither Au_ nor {tampered_prefix}")
    by_name = group_by(masks, _mask_key)
    renames = None
    if options.apply_renames:
        # the spreadsheet is among the files split_images left out as not images
        others = (s.path for s in found.skipped if s.reason == NOT_AN_IMAGE)
        renames = load_renames(find_spreadsheets(others), options.renames, tampered_prefix, title)
    if renames is not None:
        _note_renames(found, renames, title)
    keys = {path: _paired_name(path, renames, by_name, found) for path in tampered}
    respelt_names = _respelt(keys, by_name)
    keys.update({path: name for path, (name, _) in respelt_names.items()})
    pair_masks(group_by((p for p in tampered if keys[p]), keys.get), by_name, found)
    listed = {s.image for s in found.samples}
    found.corrections.renamed = {
        p: keys[p] for p in tampered if keys[p] and keys[p] != p.stem and p in listed and p not in respelt_names
    }
    found.corrections.respelt = {p: match for p, match in respelt_names.items() if p in listed}
    _name_sources(found)
    return found


def _respelt(keys: Dict[Path, Optional[str]], masks: Dict[str, List[Path]]) -> Dict[Path, tuple]:
    """{image: (mask name, how)} for images whose name has no mask while a mask of the same frame (kind,
    flags, serial) names the same two source photographs otherwise (swapped, or one id misspelt), and no
    image has that mask's name. Only one-to-one matches are taken: two candidates either way is no match."""
    claimed = set(keys.values())
    orphans = [name for name in masks if name not in claimed]
    by_frame = group_by(orphans, frame)
    candidates = {}
    for path, key in keys.items():
        if key is None or key in masks or frame(key) is None:
            continue
        near = [(m, how) for m in by_frame.get(frame(key), []) if (how := respelt(sources(key), sources(m)))]
        if len(near) == 1:
            candidates[path] = near[0]
    wanted = group_by(candidates, lambda path: candidates[path][0])
    return {path: match for path, match in candidates.items() if len(wanted[match[0]]) == 1}


def _name_sources(found: Found) -> None:
    """Each tampered sample with the authentic images of this copy it was made from, by CASIA's ids: what
    tells which way a mask stored turned against its image must be turned back (:mod:`.indexing`)."""
    authentic = {sources(s.image.stem)[0]: s.image for s in found.samples if not s.tampered and sources(s.image.stem)}

    def made_from(sample: Sample) -> tuple:
        ids = dict.fromkeys(sources(sample.image.stem) + sources(_mask_key(sample.mask)))
        return tuple(authentic[i] for i in ids if i in authentic)

    found.samples = [dataclasses.replace(s, sources=made_from(s)) if s.tampered else s for s in found.samples]


def _note_renames(found: Found, renames: Renames, title: str) -> None:
    found.corrections.renames_from = renames.spreadsheet
    # the spreadsheet is read, not left out: it is no longer one of the "not an image file" skips
    found.skipped = [s for s in found.skipped if s.path != renames.spreadsheet]
    if renames.unreadable:
        cells = ", ".join(renames.unreadable[:3]) + (", ..." if len(renames.unreadable) > 3 else "")
        found.warnings.append(
            f"{title}: {renames.spreadsheet}: {len(renames.unreadable)} corrected name(s) ({cells}) are formulas "
            f"saved without their values; those images are not renamed (open and save the file in a spreadsheet "
            f"program, or use the copy the ground truth ships with)"
        )


def _paired_name(path: Path, renames: Optional[Renames], masks: dict, found: Found) -> Optional[str]:
    """The name ``path`` is paired by: its own, or the corrected one a published rename gives it. None: left out."""
    own = path.stem
    corrected = renames.corrected.get(own) if renames is not None else None
    if corrected is None or corrected not in masks:
        return own
    if own in masks:  # a mask under each name: which one this copy's image is cannot be told
        found.tampered_seen += 1
        found.skip(path, "ambiguous name", f"masks for its own name and for {corrected}, its published correction")
        return None
    return corrected


CASIAV1 = Dataset(
    name="casiav1",
    title="CASIAv1",
    folders=("CASIA1.0", "CASIA1", "CASIAv1", "CASIA 1.0", "CASIA_1.0"),
    published=Published(tampered=921, authentic=800),
    layout="Au_*.jpg, Tp/CM|Sp/Sp_*.jpg; masks <image>_gt.png anywhere below ROOT (or --masks)",
    find=lambda root, options: find_casia(root, options, "Sp_", "CASIAv1"),
    is_mask_folder=ground_truth_of("1"),
    mask_key=mask_key_of("Sp_"),
)

CASIAV2 = Dataset(
    name="casiav2",
    title="CASIAv2",
    folders=("CASIA2.0_revised", "CASIA2.0", "CASIA2", "CASIAv2", "CASIA 2.0", "CASIA_2.0"),
    published=Published(tampered=5123, authentic=7491),
    layout="Au_*.jpg|bmp, Tp_*.jpg|tif; masks <image>_gt.png anywhere below ROOT (or --masks)",
    find=lambda root, options: find_casia(root, options, "Tp_", "CASIAv2"),
    is_mask_folder=ground_truth_of("2"),
    mask_key=mask_key_of("Tp_"),
)

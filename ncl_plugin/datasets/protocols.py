"""IMDL-BenCo's protocols, written with real paths: every list a protocol reads, from the datasets' folders.

Both protocols test on the tampered images of CASIAv1, Columbia, Coverage,
NIST16 and IMD2020 (pixel-level metrics, as IMDL-BenCo's tables). Protocol-
CASIAv2 trains on CASIAv2's tampered images (what a ManiDataset ``Tp/``+``Gt/``
folder holds); Protocol-CAT trains on CAT-Net's balanced mix, whose
FantasticReality and tampCOCO lists are given as files.
"""

import json
import os
from pathlib import Path
from typing import Dict, Optional

from ncl_plugin.datasets import DATASETS
from ncl_plugin.datasets.build import build
from ncl_plugin.datasets.layout import Dataset, Options
from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import say

TEST_SETS = ("casiav1", "columbia", "coverage", "nist16", "imd2020")
TRAIN_SETS = {"casiav2": ("casiav2",), "cat": ("casiav2", "imd2020")}
TAMPCOCO_LISTS = ("sp_COCO_list.json", "cm_COCO_list.json", "bcm_COCO_list.json", "bcmc_COCO_list.json")
PROTOCOLS = tuple(TRAIN_SETS)
# every dataset some protocol reads (DEFACTO and CocoGlide are indexed alone, with `benco data NAME`)
MEMBERS = tuple(dict.fromkeys(TEST_SETS + sum(TRAIN_SETS.values(), ())))


def locate(dataset: Dataset, root: Path, given: Optional[Path]) -> Path:
    """The dataset's folder: ``given``, or the one below ``root`` with one of its usual names."""
    if given is not None:
        return given
    wanted = {name.lower() for name in dataset.folders}
    matches = sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in wanted)
    if not matches:
        raise UsageError(
            f"--root {root}: no {dataset.title} folder in it (looked for {', '.join(dataset.folders)}); "
            f"rename it, or give it with --{dataset.name} DIR"
        )
    if len(matches) > 1:
        raise UsageError(
            f"--root {root}: {len(matches)} {dataset.title} folders ({matches[0].name}, {matches[1].name}); choose one with --{dataset.name} DIR"
        )
    return matches[0]


def locate_masks(dataset: Dataset, root: Path, given: Optional[Path]) -> Optional[Path]:
    """A ground-truth folder shipped apart (CASIA's): ``given``, or the one below ``root`` named like it."""
    if given is not None or dataset.is_mask_folder is None:
        return given
    matches = sorted(p for p in root.iterdir() if p.is_dir() and dataset.is_mask_folder(p.name))
    if len(matches) > 1:
        raise UsageError(
            f"--root {root}: {len(matches)} {dataset.title} ground-truth folders ({matches[0].name}, "
            f"{matches[1].name}); choose one with --{dataset.name}_masks DIR"
        )
    return matches[0] if matches else None  # none apart: the masks are inside the dataset's folder


def _cat_lists(fantastic_reality: Optional[Path], tampcoco: Optional[Path]) -> list:
    if fantastic_reality is None or tampcoco is None:
        flag = "--fantastic_reality FILE" if fantastic_reality is None else "--tampcoco DIR"
        raise UsageError(
            f"protocol cat: {flag} is needed: CAT-Net's FantasticReality and tampCOCO lists (JsonDataset files, "
            f"as CAT-Net's authors distribute them) are read as they are"
        )
    lists = [fantastic_reality] + [tampcoco / name for name in TAMPCOCO_LISTS]
    for path in lists:
        if not path.is_file():
            raise UsageError(
                f"{path}: no such file; protocol cat reads FantasticReality's list and tampCOCO's {', '.join(TAMPCOCO_LISTS)}"
            )
    return lists


def write_protocol(
    protocol: str,
    root: Path,
    out: Path,
    folders: Dict[str, Optional[Path]],
    masks: Dict[str, Optional[Path]],
    columbia_spliced: str = "green",
    fix: Optional[str] = None,
    fantastic_reality: Optional[Path] = None,
    tampcoco: Optional[Path] = None,
    corrections: Optional[Path] = None,
    renames: Optional[Dict[str, dict]] = None,
) -> Dict[str, Path]:
    """Write ``protocol``'s training list and test-set map into ``out``; returns {"train": ..., "test": ...}."""
    if not root.is_dir():
        raise UsageError(f"--root {root}: no such folder; give the folder that holds the datasets' folders")
    if corrections is not None and not corrections.is_dir():
        raise UsageError(f"--corrections {corrections}: no such folder")
    extra = _cat_lists(fantastic_reality, tampcoco) if protocol == "cat" else []
    needed = dict.fromkeys(TRAIN_SETS[protocol] + TEST_SETS)
    # every folder found before the slow part: a missing one is said at once
    located = {name: locate(DATASETS[name], root, folders.get(name)) for name in needed}
    apart = {name: locate_masks(DATASETS[name], root, masks.get(name)) for name in needed}
    out.mkdir(parents=True, exist_ok=True)
    lists = {}
    for name, folder in located.items():
        dataset = DATASETS[name]
        lists[name] = out / f"{dataset.title}.json"
        if apart[name] is not None and masks.get(name) is None:
            say(f"{dataset.title}: masks from {apart[name]}")
        options = Options(
            masks=apart[name],
            columbia_spliced=columbia_spliced,
            # one folder of revised masks for every dataset: each takes the masks named as its own
            corrections=corrections if dataset.mask_key is not None else None,
            **(renames or {}).get(name, {}),
        )
        build(dataset, folder, lists[name], options, fix, tampered_only=True, masks_flag=f"--{name}_masks")
    test_map = out / "test_datasets.json"
    test_map.write_text(json.dumps({DATASETS[n].title: os.path.abspath(lists[n]) for n in TEST_SETS}, indent=4) + "\n")
    if protocol == "casiav2":
        train = lists["casiav2"]
    else:
        train = out / "cat_balanced_dataset.json"
        members = [lists["casiav2"], extra[0], lists["imd2020"], *extra[1:]]  # the order of IMDL-BenCo's file
        train.write_text(json.dumps([["JsonDataset", os.path.abspath(p)] for p in members], indent=4) + "\n")
    say(f"Protocol {protocol}: training list {train}, test sets {test_map}")
    return {"train": train, "test": test_map}

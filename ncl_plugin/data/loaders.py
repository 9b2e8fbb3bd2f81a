"""IMDL-BenCo datasets, transforms and loaders, as IMDL-BenCo's train.py builds them."""

import json
import os
from pathlib import Path
from typing import Dict

import albumentations as albu
import torch
from IMDLBenCo.datasets import BalancedDataset, JsonDataset, ManiDataset
from IMDLBenCo.registry import DATASETS, POSTFUNCS

from ncl_plugin.data.augmentations import AUGMENTATIONS, compose, train_transform  # noqa: F401  (loaders' own API)
from ncl_plugin.data.checks import NEGATIVE, check_mani_folder, pair_mani_dataset, sub_datasets
from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import say


def test_transform() -> albu.Compose:
    return compose([])


def post_function(model_name: str):
    """IMDL-BenCo's per-model data hook ``<model>_post_func``, if the model registered one."""
    wanted = f"{model_name.lower()}_post_func"
    for name, func in POSTFUNCS.module_dict.items():
        if name.lower() == wanted:
            return func
    return None


def missing(path: str, flag: str) -> None:
    if not path or not os.path.exists(path):
        hint = (
            "; it is a placeholder: `benco data protocol NAME --root DIR` writes the lists and prints the flags"
            if "REPLACE/WITH" in str(path)
            else ""
        )
        raise UsageError(f"{flag} {path}: no such file or folder{hint}")


def _read_json(path: str, flag: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise UsageError(f"{flag} {path}: invalid JSON at line {err.lineno}: {err.msg}") from None
    except UnicodeDecodeError:  # an image or another binary file given where a dataset goes
        raise UsageError(
            f"{flag} {path}: a file that is not JSON; give a dataset: a folder with Tp/ and Gt/, "
            f"or a JSON list of [image, mask] pairs"
        ) from None


def choose_resizing(args) -> None:
    """IMDL-BenCo's datasets take exactly one of --if_padding and --if_resizing: resizing when neither is given."""
    if not args.if_padding and not args.if_resizing:
        args.if_resizing = True  # resizing is IMDL-BenCo's usual choice
    if args.if_padding and args.if_resizing:
        raise UsageError("--if_padding and --if_resizing exclude each other; pass one")


def _dataset_options(args, transform, post) -> Dict:
    return dict(
        is_padding=args.if_padding,
        is_resizing=args.if_resizing,
        output_size=(args.image_size, args.image_size),
        common_transforms=transform,
        edge_width=args.edge_mask_width,
        post_funcs=post,
    )


def build_dataset(path: str, args, transform, post, flag: str = "--data_path"):
    """A folder is a ManiDataset; a JSON list of [image, mask] a JsonDataset; a JSON list of
    [DatasetName, path] pairs a BalancedDataset."""
    missing(path, flag)
    options = _dataset_options(args, transform, post)
    if os.path.isdir(path):
        pairs = check_mani_folder(path, flag, getattr(args, "pair_by_order", False))
        return pair_mani_dataset(ManiDataset(path, **options), pairs)
    entries = _read_json(path, flag)
    if isinstance(entries, dict):
        raise UsageError(
            f"{flag} {path}: a JSON map of names to paths describes test sets (--test_data_path); "
            f"{flag} takes a folder, a JsonDataset list or a BalancedDataset list"
        )
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{flag} {path}: expected a non-empty JSON list")
    for index, entry in enumerate(entries):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and all(isinstance(v, str) for v in entry)):
            raise UsageError(
                f'{flag} {path}: entry {index} is {entry!r}; expected [image path, mask path or "Negative"]'
            )
    if DATASETS.has(entries[0][0]):
        checked = {}
        for name, member in entries:
            missing(member, f"{flag} {path}: {name}")
            if name == "ManiDataset":
                checked[member] = check_mani_folder(
                    member, f"{flag} {path}: {name}", getattr(args, "pair_by_order", False)
                )
        balanced = BalancedDataset(path, **options)
        for member in balanced.dataset_list:
            if isinstance(member, ManiDataset):
                pair_mani_dataset(member, checked[member.entry_path])
        return balanced
    if not os.path.isfile(entries[0][0]):
        raise UsageError(
            f"{flag} {path}: entry 0: {entries[0][0]}: no such file (relative paths count from the current folder)"
        )
    return JsonDataset(path, **options)


def _resolve(path: str, base: Path) -> str:
    """Paths in a test-set map are taken as given, or relative to the map's own folder."""
    if os.path.exists(path) or os.path.isabs(path):
        return path
    candidate = base / path
    return str(candidate) if candidate.exists() else path


def build_test_datasets(
    path: str, args, post, transform=None, flag: str = "--test_data_path"
) -> Dict[str, torch.utils.data.Dataset]:
    """``--test_data_path``: one dataset (a folder or a JsonDataset list, named after its file), or a JSON map
    {name: folder or JsonDataset list}.

    ``transform``: an albumentations transform applied to every test image (robustness tests); ``flag``: the
    flag errors name, for a script that takes the test list under another name.
    """
    transform = transform or test_transform()
    missing(path, flag)
    if os.path.isdir(path):
        return {Path(path).resolve().name: build_dataset(path, args, transform, post, flag)}
    mapping = _read_json(path, flag)
    if isinstance(mapping, list):  # one dataset's list (JsonDataset or BalancedDataset), named after its file
        mapping = {Path(path).stem: path}
    if not isinstance(mapping, dict) or not mapping:
        raise UsageError(
            f"{flag} {path}: expected a dataset list or a JSON map of test-set names to dataset paths, "
            f'like {{"CASIAv1": "/data/CASIA1.0"}}, got a {type(mapping).__name__}'
        )
    base = Path(path).resolve().parent
    datasets = {
        name: build_dataset(_resolve(str(p), base), args, transform, post, f"{flag} {path}: {name}:")
        for name, p in mapping.items()
    }
    for name, dataset in datasets.items():
        _say_authentic(name, dataset)
    return datasets


def listed_authentic(dataset) -> int:
    """The images a dataset's list marks authentic ("Negative"): those IMDL-BenCo labels 0. A Tp/ Gt/
    folder's images are all labelled tampered, an empty mask or not."""
    return sum(gt == NEGATIVE for member in sub_datasets(dataset) for gt in getattr(member, "gt_path", ()))


def _say_authentic(name: str, dataset) -> None:
    """One line when a test set lists authentic images: they count in the image-level metrics only."""
    authentic = listed_authentic(dataset)
    if authentic:
        say(
            f"{name}: pixel metrics over its {len(dataset) - authentic} tampered images; its {authentic} "
            f"authentic images count in the image-level metrics only (image-auc, image-f1, image-acc)"
        )


def default_num_workers(world_size: int = 1) -> int:
    """Loader workers per process: none when it gets 2 cores or fewer, else half its cores, at most 8.

    On 2 cores the model's threads already take both, and a worker only competes with them; IMDL-BenCo's
    loop also starts the workers anew every epoch. benchmarks/probes/loader_workers.py measured the quickstart
    there: 3% faster epochs without a worker, 30% faster on 48-image epochs."""
    cores = (os.cpu_count() or 2) // max(1, world_size)
    return 0 if cores <= 2 else min(8, cores // 2)


def train_loader(dataset, args, distributed: bool, generator=None):
    if len(dataset) < args.batch_size:
        raise UsageError(
            f"--data_path {args.data_path}: {len(dataset)} images, fewer than --batch_size {args.batch_size}"
        )
    if distributed:
        sampler = torch.utils.data.DistributedSampler(dataset, shuffle=True, seed=args.seed)
    else:
        sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
    return torch.utils.data.DataLoader(
        dataset,
        sampler=sampler,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        pin_memory=args.pin_mem,
        drop_last=True,
    )


def test_loader(dataset, args, distributed: bool):
    """In order. Under DDP the last partial round is dropped, and IMDL-BenCo's test_one_epoch
    evaluates that tail on every rank; a single process keeps every image."""
    if distributed:
        sampler = torch.utils.data.DistributedSampler(dataset, shuffle=False, drop_last=True)
    else:
        sampler = torch.utils.data.SequentialSampler(dataset)
    return torch.utils.data.DataLoader(
        dataset,
        sampler=sampler,
        batch_size=args.test_batch_size,
        num_workers=args.num_workers,
        pin_memory=args.pin_mem,
        drop_last=distributed,
    )

"""Launching `benco train` runs at an equal budget, resumable, for the accuracy and ablation harnesses."""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import torch

# Network flags a harness may override for NCL and deeplabv3plus (the other models lack them).
NETWORK = {"backbone": str, "output_stride": int, "decoder_channels": int, "patch_size": int}
# Budget flags a harness may override for every model at once.
BUDGET = {"epochs": int, "image_size": int, "batch_size": int, "blr": float, "lr": float}


def _network(args) -> List[str]:
    return [f for flag in NETWORK if getattr(args, flag) is not None for f in (f"--{flag}", str(getattr(args, flag)))]


# What each model needs to train from random initialisation without a download. NCL and
# deeplabv3plus take their network from the recipe (--config); deeplabv3plus is the paper's
# baseline, plain deep-supervised BCE, whatever contour_weight the recipe gives NCL.
MODEL_FLAGS = {
    "ncl": _network,
    "deeplabv3plus": lambda a: _network(a) + ["--contour_weight", "0"],
    "segformer": lambda a: ["--pretrain_pth_path", str(empty_weights(a.out))],  # an empty state dict: random init
    "srm_segformer": lambda a: ["--pretrain_pth_path", str(empty_weights(a.out))],
    "bayar_segformer": lambda a: ["--pretrain_pth_path", str(empty_weights(a.out))],
    "IML_ViT": lambda a: ["--input_size", str(a.recipe["image_size"]), "--edge_mask_width", "7",
                          "--vit_pretrain_path", str(empty_weights(a.out, {"model": {}}))],
    "PSCC_Net": lambda a: ["--input_size", str(a.recipe["image_size"]), "--pretrain_path", str(empty_weights(a.out))],
}
METRICS = "pixel-f1,pixel-f1-best,pixel-auc,pixel-iou"


def add_budget_flags(parser: argparse.ArgumentParser) -> None:
    """The budget every run shares: a recipe (--config; the CPU quickstart by default), a few
    overrides, the data and the seeds."""
    parser.add_argument("--config", default="quickstart", help="the recipe every run trains with: a packaged config name or a YAML file")
    parser.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    for flag, kind in BUDGET.items():
        parser.add_argument(f"--{flag}", type=kind, default=None, help="overrides the recipe's value for every run")
    for flag, kind in NETWORK.items():
        parser.add_argument(f"--{flag}", type=kind, default=None, help="overrides the recipe's value for ncl and deeplabv3plus")
    parser.add_argument("--images", default=None, type=int, help="size of the synthetic set (without --data_path; default: the recipe's)")
    parser.add_argument("--data_path", default=None, help="a real training set instead of the synthetic one")
    parser.add_argument("--test_data_path", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--num_workers", default=None)
    parser.add_argument("--out", default="runs/accuracy", help="one folder per run; finished runs are not run again")


def resolve_budget(args) -> None:
    """args.recipe: the budget every run gets, i.e. the recipe's values with the overrides applied."""
    from ncl_plugin.config import read_config

    args.recipe = read_config(args.config)
    args.recipe.setdefault("image_size", 512)  # benco train's default
    for flag in list(BUDGET) + list(NETWORK):
        if getattr(args, flag) is not None:
            args.recipe[flag] = getattr(args, flag)


def empty_weights(out: str, content=None) -> Path:
    """A weight file that loads nothing (non-strict), so a model that insists on one starts from random init."""
    content = {} if content is None else content
    path = Path(out) / ("random_init.pth" if not content else f"random_init_{'_'.join(content)}.pth")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(content, path)
    return path


def data_flags(args) -> List[str]:
    if args.data_path:
        return ["--data_path", args.data_path, "--test_data_path", args.test_data_path]
    return ["--synthetic_images", str(args.images)] if args.images else []


def budget_flags(args, seed: int) -> List[str]:
    flags = ["--config", args.config, "--test_period", "1", "--metrics", METRICS, "--seed", str(seed)]
    for flag in BUDGET:
        if getattr(args, flag) is not None:
            flags += [f"--{flag}", str(getattr(args, flag))]
    if args.device:
        flags += ["--device", args.device]
    if args.num_workers is not None:
        flags += ["--num_workers", str(args.num_workers)]
    return flags + data_flags(args)


def run_all(jobs: Sequence[Dict], args) -> List[str]:
    """Run each job ({'name', 'model', 'flags'}) once per seed, at the budget of add_budget_flags;
    return the run folders."""
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    pending = [(job, seed) for job in jobs for seed in seeds]
    folders = [str(Path(args.out) / f"{job['name']}-seed{seed}") for job, seed in pending]
    started = time.time()
    for index, ((job, seed), folder) in enumerate(zip(pending, map(Path, folders)), start=1):
        if (folder / "summary.json").exists():
            print(f"[{index}/{len(pending)}] {folder}: done before, kept")
            continue
        # The job's own flags come last: a variant overrides the shared budget.
        command = [sys.executable, "-m", "ncl_plugin", "train", "--model", job["model"], *budget_flags(args, seed),
                   *MODEL_FLAGS.get(job["model"], lambda a: [])(args), *job["flags"],
                   "--output_dir", str(folder), "--resume", "auto"]
        print(f"[{index}/{len(pending)}] {folder}: {' '.join(command[3:])}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "train.out", "w") as log:
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        elapsed = (time.time() - started) / 60
        print(f"    exit {code}; {elapsed:.1f} min so far" + ("" if code == 0 else f"; see {folder / 'train.out'}"), flush=True)
    return folders


def compare(folders: List[str], out: str, title: str, by_job: bool = False) -> str:
    """benco compare over the finished runs. by_job: one row per job name (the folder name without
    its -seedN), for harnesses whose runs differ in their data, where settings would make poor labels."""
    from ncl_plugin.report import compare as compare_runs

    finished = [f for f in folders if (Path(f) / "summary.json").exists()]
    labels = {f: Path(f).name.rsplit("-seed", 1)[0] for f in finished} if by_job else None
    table = compare_runs(finished, "markdown", out=str(Path(out) / "results.md"), plot_path=str(Path(out) / "results.png"),
                         labels=labels)
    compare_runs(finished, "latex", out=str(Path(out) / "results.tex"), labels=labels)
    compare_runs(finished, "csv", out=str(Path(out) / "results.csv"), labels=labels)
    print(f"\n{title}\n\n{table}\nWrote {out}/results.md, .tex, .csv and .png")
    return table

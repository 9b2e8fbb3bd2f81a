"""Launching `benco train` runs at an equal budget, resumable, for the accuracy and ablation harnesses."""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import torch

# What each model needs to train from random initialisation without a download.
MODEL_FLAGS = {
    "ncl": lambda a: ["--backbone", a.backbone, "--output_stride", str(a.output_stride), "--patch_size", str(a.patch_size)],
    "deeplabv3plus": lambda a: ["--backbone", a.backbone, "--output_stride", str(a.output_stride), "--patch_size", str(a.patch_size)],
    "segformer": lambda a: ["--pretrain_pth_path", str(empty_weights(a.out))],  # an empty state dict: random init
    "srm_segformer": lambda a: ["--pretrain_pth_path", str(empty_weights(a.out))],
    "bayar_segformer": lambda a: ["--pretrain_pth_path", str(empty_weights(a.out))],
    "IML_ViT": lambda a: ["--input_size", str(a.image_size), "--vit_pretrain_path", str(empty_weights(a.out, {"model": {}})),
                          "--edge_mask_width", "7"],
    "PSCC_Net": lambda a: ["--input_size", str(a.image_size), "--pretrain_path", str(empty_weights(a.out))],
}


def add_budget_flags(parser: argparse.ArgumentParser) -> None:
    """The budget every run shares; the defaults fit a 2-core CPU, the flags reach paper scale on a GPU."""
    parser.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    parser.add_argument("--epochs", default=4, type=int)
    parser.add_argument("--image_size", default=128, type=int)
    parser.add_argument("--batch_size", default=8, type=int)
    parser.add_argument("--blr", default=0.08, type=float, help="lr = blr * batch * accum / 256 for every model")
    parser.add_argument("--backbone", default="resnet18", help="of ncl and deeplabv3plus (the paper: resnet101)")
    parser.add_argument("--output_stride", default=16, type=int, help="of ncl and deeplabv3plus (the paper: 8)")
    parser.add_argument("--patch_size", default=16, type=int)
    parser.add_argument("--images", default=300, type=int, help="size of the synthetic set (without --data_path)")
    parser.add_argument("--data_path", default=None, help="a real training set instead of the synthetic one")
    parser.add_argument("--test_data_path", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--num_workers", default=None)
    parser.add_argument("--out", default="runs/accuracy", help="one folder per run; finished runs are not run again")


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
    return ["--synthetic_images", str(args.images), "--synthetic_size", str(args.image_size)]


def budget_flags(args, seed: int) -> List[str]:
    flags = [
        "--epochs", str(args.epochs), "--image_size", str(args.image_size), "--if_resizing",
        "--batch_size", str(args.batch_size), "--test_batch_size", str(args.batch_size), "--accum_iter", "1",
        "--blr", str(args.blr), "--min_lr", "1e-5", "--warmup_epochs", "1", "--weight_decay", "0.05",
        "--test_period", "1", "--save_period", str(max(args.epochs, 1)),
        "--metrics", "pixel-f1,pixel-auc,pixel-iou", "--seed", str(seed),
    ]
    if args.device:
        flags += ["--device", args.device]
    if args.num_workers is not None:
        flags += ["--num_workers", str(args.num_workers)]
    return flags + data_flags(args)


def run_all(jobs: Sequence[Dict], args) -> List[str]:
    """Run each job ({'name', 'model', 'flags'}) once per seed; return the run folders."""
    folders = []
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    total = len(jobs) * len(seeds)
    done = 0
    started = time.time()
    for job in jobs:
        for seed in seeds:
            folder = Path(args.out) / f"{job['name']}-seed{seed}"
            folders.append(str(folder))
            done += 1
            if (folder / "summary.json").exists():
                print(f"[{done}/{total}] {folder}: done before, kept")
                continue
            command = [sys.executable, "-m", "ncl_plugin", "train", "--model", job["model"], *job["flags"],
                       *budget_flags(args, seed), "--output_dir", str(folder), "--resume", "auto"]
            print(f"[{done}/{total}] {folder}: {' '.join(command[3:])}", flush=True)
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "train.out", "w") as log:
                code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
            elapsed = (time.time() - started) / 60
            print(f"    exit {code}; {elapsed:.1f} min so far" + ("" if code == 0 else f"; see {folder / 'train.out'}"), flush=True)
    return folders


def compare(folders: List[str], out: str, title: str) -> str:
    from ncl_plugin.report import compare as compare_runs

    finished = [f for f in folders if (Path(f) / "summary.json").exists()]
    table = compare_runs(finished, "markdown", out=str(Path(out) / "results.md"), plot_path=str(Path(out) / "results.png"))
    compare_runs(finished, "latex", out=str(Path(out) / "results.tex"))
    compare_runs(finished, "csv", out=str(Path(out) / "results.csv"))
    print(f"\n{title}\n\n{table}\nWrote {out}/results.md, .tex, .csv and .png")
    return table

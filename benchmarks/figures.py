"""Figures from finished runs: a prediction grid and training curves, as PNGs.

    python benchmarks/figures.py runs/accuracy --out benchmarks/results   # accuracy-predictions.png, accuracy-curves.png

Prediction grid: the same test images for every model (the seed-0 run of
each), each model's `benco predict` probability map laid over the image,
beside the image and its ground truth. Training curves: each model's training
loss and test pixel F1 and AUC per epoch from its runs' log.txt (mean over
seeds, shaded from min to max).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from ncl_plugin.bench.report import save_figure
from ncl_plugin.engine.training_log import read_log

LOSS_KEYS = ("train_total", "train_backward_loss", "train_combined_loss", "train_predict_loss")
KINDS = ("splice", "copymove", "removal", "authentic")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="folders of runs named <name>-seed<k>, as benchmarks/accuracy.py writes them")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--seed", default=0, type=int, help="whose predictions go in the grid")
    p.add_argument("--images", default=4, type=int, help="test images in the grid (one of each manipulation first)")
    p.add_argument("--name", default=None, help="file name prefix (default: the first folder's name)")
    return p.parse_args(argv)


def discover(folders: List[str]) -> Dict[str, List[Path]]:
    """{run name: [run folders over seeds]}, in the order the runs were made."""
    runs = defaultdict(list)
    found = sorted((p for f in folders for p in Path(f).glob("*-seed*") if (p / "summary.json").exists()),
                   key=lambda p: (p / "summary.json").stat().st_mtime)
    for path in found:
        runs[path.name.rsplit("-seed", 1)[0]].append(path)
    if not runs:
        sys.exit(f"figures.py: no finished runs (<name>-seed<k>/summary.json) under {', '.join(folders)}")
    return dict(runs)


def test_pairs(summary: dict, count: int) -> List[Tuple[Path, Path]]:
    """(image, ground truth) pairs of the run's first test set, one of each manipulation kind first."""
    with open(summary["args"]["test_data_path"]) as handle:
        first = next(iter(json.load(handle).values()))
    if str(first).endswith(".json"):
        with open(first) as handle:
            pairs = [(Path(a), Path(b) if b != "Negative" else None) for a, b in json.load(handle)]
    else:
        images = sorted((Path(first) / "Tp").iterdir())
        masks = {m.stem: m for m in (Path(first) / "Gt").iterdir()}
        pairs = [(i, masks.get(i.stem)) for i in images]
    chosen = []
    for kind in KINDS:
        chosen += [p for p in pairs if kind in p[0].stem and p not in chosen][:1]
    chosen += [p for p in pairs if p not in chosen]
    return chosen[:count]


def predict(run: Path, model: str, images: List[Path], out: Path) -> Dict[str, np.ndarray]:
    command = [sys.executable, "-m", "ncl_plugin", "predict", "--model", model, "--checkpoint", str(run),
               *map(str, images), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if result.returncode:
        sys.exit(f"figures.py: benco predict failed for {run}: {result.stderr.strip().splitlines()[-1]}")
    with open(out / "predictions.json") as handle:
        predictions = json.load(handle)
    return {key: np.asarray(Image.open(value["mask"]), dtype=np.float32) / 255 for key, value in predictions.items()}


def prediction_grid(runs: Dict[str, List[Path]], seed: int, count: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = {name: next((r for r in folders if r.name.endswith(f"-seed{seed}")), folders[0]) for name, folders in runs.items()}
    first = json.loads((next(iter(chosen.values())) / "summary.json").read_text())
    pairs = test_pairs(first, count)
    maps = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, run in chosen.items():
            model = json.loads((run / "summary.json").read_text())["model"]
            maps[name] = predict(run, model, [p[0] for p in pairs], Path(scratch) / name)
    columns = ["image", "ground truth", *chosen]
    fig, axes = plt.subplots(len(pairs), len(columns), figsize=(1.9 * len(columns), 1.9 * len(pairs)), squeeze=False)
    for row, (image_path, mask_path) in enumerate(pairs):
        image = np.asarray(Image.open(image_path).convert("RGB"))
        truth = np.asarray(Image.open(mask_path).convert("L")) > 127 if mask_path else np.zeros(image.shape[:2], bool)
        cells = [(image, None), (truth, "gray")] + [(image, maps[name][str(image_path)]) for name in chosen]
        for col, (picture, extra) in enumerate(cells):
            ax = axes[row, col]
            if isinstance(extra, np.ndarray):
                ax.imshow(picture)
                ax.imshow(extra, cmap="inferno", vmin=0, vmax=1, alpha=0.65)
            else:
                ax.imshow(picture, cmap=extra)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=8)
        axes[row, 0].set_ylabel(image_path.stem, fontsize=7)
    fig.suptitle("tampering probability (0 black to 1 yellow) over the image, seed-%d runs" % seed, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def curves(runs: Dict[str, List[Path]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [("training loss (each model's own)", None), ("test pixel F1", "test_pixel-level F1"),
              ("test pixel AUC", "test_pixel-level AUC")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2))
    for name, folders in runs.items():
        logs = [read_log(str(r)) for r in folders]
        for ax, (title, key) in zip(axes, panels):
            series = []
            for log in logs:
                if key is None:
                    key_here = next((k for k in LOSS_KEYS if k in log[0]), None)
                    key_here = key_here or next((k for k in log[0] if k.startswith("train_") and "loss" in k), None)
                else:
                    key_here = key
                series.append([entry.get(key_here, np.nan) if key_here else np.nan for entry in log])
            length = min(len(s) for s in series)
            values = np.array([s[:length] for s in series], dtype=float)
            epochs = np.arange(length)
            line, = ax.plot(epochs, np.nanmean(values, 0), marker="o", markersize=3, label=name)
            if len(values) > 1:
                ax.fill_between(epochs, np.nanmin(values, 0), np.nanmax(values, 0), color=line.get_color(), alpha=0.15)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].legend(fontsize=7)
    seeds = max(len(f) for f in runs.values())
    fig.suptitle(f"mean over {seeds} seeds, shaded from min to max" if seeds > 1 else "one seed", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main(argv=None):
    args = parse_args(argv)
    runs = discover(args.folders)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or Path(args.folders[0]).resolve().name
    grid, curve = out / f"{name}-predictions.png", out / f"{name}-curves.png"
    prediction_grid(runs, args.seed, args.images, grid)
    curves(runs, curve)
    print(f"Wrote {grid} and {curve}")


if __name__ == "__main__":
    main()

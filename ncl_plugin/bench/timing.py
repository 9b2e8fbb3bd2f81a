"""Real `benco train --config quickstart` epochs under several flag settings, timed side by side.

The helpers behind `loader_workers.py` and `memory_format.py`. Each measurement is one real training
run, so the figures include what an epoch costs beyond its steps (IMDL-BenCo's loop creates the
loader's iterator, and with it any workers, at every epoch). The settings run interleaved
(A B C C B A ...), so that each sees the same machine state: compare the ratios within one run,
not absolute times across machines.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def train(folder: Path, flags) -> dict:
    """One `benco train` run; its training seconds and steps from log.txt, and its wall time."""
    command = [sys.executable, "-m", "ncl_plugin", "train", "--config", "quickstart", "--test_period", "1000",
               "--save_period", "1000", "--output_dir", str(folder), *flags]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (folder / "log.txt").read_text().splitlines() if line.strip()]
    seconds = sum(r["train_seconds"] for r in rows)
    steps = sum(r["train_steps"] for r in rows)
    return {"step": seconds / steps, "epoch": seconds / len(rows), "wall": wall}


def regimes(scratch: Path) -> dict:
    """{name: flags}. full: the quickstart's 800 training images, one epoch of 100 steps; small: 48 of
    them, 8 epochs of 6 steps, where what every epoch costs beyond its steps weighs (as in the
    data-efficiency curve's smallest sets)."""
    from ncl_plugin.config import read_config
    from ncl_plugin.data import synthetic

    recipe = read_config("quickstart")
    data, _ = synthetic.cached(recipe["synthetic_images"], recipe["synthetic_size"])
    small = scratch / "train48.json"
    small.write_text(json.dumps(json.loads((data / "train.json").read_text())[:48]))
    return {
        "full": ["--epochs", "1", "--warmup_epochs", "1"],
        "small": ["--epochs", "8", "--warmup_epochs", "1", "--data_path", str(small),
                  "--test_data_path", str(data / "test_datasets.json")],
    }  # fmt: skip


def compare_settings(settings: dict, names, repeats: int, title: str) -> dict:
    """Time every setting ({label: flags}) in every regime named, interleaved; print each run and
    the table (medians, epoch time over the first setting's). Returns {regime: fastest label}."""
    labels = list(settings)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        flags = regimes(scratch)
        for regime in names:
            order = [s for r in range(repeats) for s in (labels if r % 2 == 0 else labels[::-1])]
            for k, label in enumerate(order):
                figures = train(scratch / f"{regime}-{k}", [*flags[regime], *settings[label]])
                results.setdefault(regime, {}).setdefault(label, []).append(figures)
                print(f"  {regime}, {label}: {figures['step']:.3f} s/step, {figures['epoch']:.1f} s/epoch, "
                      f"{figures['wall']:.0f} s in all", flush=True)  # fmt: skip
    width = max(len(label) for label in labels)
    print(f"\nbenco train --config quickstart, one process, {os.cpu_count()} cores; medians of {repeats} runs")
    print(f"{'regime':>7} {title:>{width}} {'s/step':>8} {'s/epoch':>8} {'epoch ratio':>12}")
    fastest = {}
    for regime, by_label in results.items():
        epochs = {label: statistics.median(f["epoch"] for f in runs) for label, runs in by_label.items()}
        base = epochs[labels[0]]
        for label, runs in by_label.items():
            step = statistics.median(f["step"] for f in runs)
            print(f"{regime:>7} {label:>{width}} {step:>8.3f} {epochs[label]:>8.2f} {epochs[label] / base:>12.3f}")
        fastest[regime] = min(epochs, key=epochs.get)
    print("fastest: " + ", ".join(f"{regime} {label}" for regime, label in fastest.items()))
    return fastest

"""How many data-loader workers the CPU quickstart should use: seconds per training step and
per epoch for --num_workers 0, 1 and 2, measured side by side in one run.

    python benchmarks/loader_workers.py                       # about 6 minutes on 2 cores
    python benchmarks/loader_workers.py --workers 0,1 --repeats 3

Each measurement is one real `benco train --config quickstart` (NCL) of one epoch, so the
figures include what an epoch costs beyond its steps: starting the workers (IMDL-BenCo's loop
creates the loader's iterator, and with it the workers, at every epoch). Two regimes:

  full    the quickstart's 800 training images: 100 steps an epoch
  small   48 of them (6 steps an epoch, 8 epochs): where the worker start-up of every epoch weighs,
          as in the data-efficiency curve's smallest sets

The settings run interleaved (0 1 2 2 1 0 ...), so that each sees the same machine state; compare
the ratios within one run, not absolute times across machines. The last line names the fastest
setting per regime.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def train(workers: int, folder: Path, extra) -> dict:
    """One `benco train` run; its training seconds and steps from log.txt, and its wall time."""
    command = [sys.executable, "-m", "ncl_plugin", "train", "--config", "quickstart", "--num_workers", str(workers),
               "--test_period", "1000", "--save_period", "1000", "--output_dir", str(folder), *extra]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (folder / "log.txt").read_text().splitlines() if line.strip()]
    seconds = sum(r["train_seconds"] for r in rows)
    steps = sum(r["train_steps"] for r in rows)
    return {"step": seconds / steps, "epoch": seconds / len(rows), "wall": wall}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="0,1,2", help="comma list of --num_workers values")
    parser.add_argument("--repeats", default=2, type=int, help="runs per setting and regime")
    parser.add_argument("--regimes", default="full,small")
    args = parser.parse_args(argv)
    from ncl_plugin import synthetic
    from ncl_plugin.config import read_config

    recipe = read_config("quickstart")
    data, _ = synthetic.cached(recipe["synthetic_images"], recipe["synthetic_size"])
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        small = scratch / "train48.json"
        small.write_text(json.dumps(json.loads((data / "train.json").read_text())[:48]))
        regimes = {
            "full": ["--epochs", "1", "--warmup_epochs", "1"],
            "small": ["--epochs", "8", "--warmup_epochs", "1", "--data_path", str(small),
                      "--test_data_path", str(data / "test_datasets.json")],
        }  # fmt: skip
        results = {}
        for regime in args.regimes.split(","):
            order = [w for r in range(args.repeats) for w in (workers if r % 2 == 0 else workers[::-1])]
            for k, w in enumerate(order):
                figures = train(w, scratch / f"{regime}-{w}-{k}", regimes[regime])
                results.setdefault(regime, {}).setdefault(w, []).append(figures)
                print(f"  {regime}, --num_workers {w}: {figures['step']:.3f} s/step, {figures['epoch']:.1f} s/epoch, "
                      f"{figures['wall']:.0f} s in all", flush=True)  # fmt: skip
    print(f"\nbenco train --config quickstart, one process, {os.cpu_count()} cores; medians of {args.repeats} runs")
    print(f"{'regime':>7} {'workers':>8} {'s/step':>8} {'s/epoch':>8} {'epoch ratio':>12}")
    fastest = {}
    for regime, by_workers in results.items():
        epochs = {w: statistics.median(f["epoch"] for f in runs) for w, runs in by_workers.items()}
        base = epochs[workers[0]]
        for w, runs in by_workers.items():
            step = statistics.median(f["step"] for f in runs)
            print(f"{regime:>7} {w:>8} {step:>8.3f} {epochs[w]:>8.2f} {epochs[w] / base:>12.3f}")
        fastest[regime] = min(epochs, key=epochs.get)
    print("fastest: " + ", ".join(f"{regime} --num_workers {w}" for regime, w in fastest.items()))


if __name__ == "__main__":
    main()

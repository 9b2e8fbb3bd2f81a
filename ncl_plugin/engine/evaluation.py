"""Testing a model with IMDL-BenCo's test loop on every test set, and writing what it measured."""

import contextlib
import csv
import json
import math
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import torch

from ncl_plugin.data import checks, loaders
from ncl_plugin.engine import amp, compat
from ncl_plugin.errors import RunError
from ncl_plugin.terminal import TrackedLoader, show


def test_datasets(args, post, transform=None) -> Dict:
    """The test sets of --test_data_path, checked up front like training data (headers only)."""
    datasets = loaders.build_test_datasets(args.test_data_path, args, post, transform)
    for name, dataset in datasets.items():
        checks.scan(dataset, f"--test_data_path {name}", args.skip_bad_samples)
    return datasets


def evaluate(model, loaders: Dict, make_evaluators, device, epoch: int, args, log_writer=None, progress=None):
    """IMDL-BenCo's test_one_epoch on every test set, in the run's precision (``args.precision``, float32 outputs).
    Returns {test set: {metric: value}}."""
    from IMDLBenCo.training_scripts.tester import test_one_epoch

    results = {}
    for name, loader in loaders.items():
        evaluators = make_evaluators()
        if progress is not None:
            loader = TrackedLoader(loader, progress, f"test {name}")
        with compat.adapted(device), amp.running(model, device, getattr(args, "precision", amp.FLOAT32)):
            with finite_predictions(model, name):
                stats = test_one_epoch(
                    model,
                    data_loader=loader,
                    evaluator_list=evaluators,
                    device=device,
                    epoch=epoch,
                    name=name,
                    log_writer=log_writer,
                    args=args,
                    is_test=False,
                )
        # a rate over authentic images on a set without one has nothing to average: no figure
        results[name] = {
            e.name: float(stats[e.name])
            for e in evaluators
            if not (getattr(e, "authentic", False) and math.isnan(float(stats[e.name])))
        }
    return results


@contextlib.contextmanager
def finite_predictions(model, test_set: str) -> Iterator[None]:
    """Stop with one line when the model predicts NaN or infinity: IMDL-BenCo's evaluators would turn such a
    mask into a finite F1 and AUC (a checkpoint with a NaN weight read AUC 0.45)."""
    bad = []

    def check(module, inputs, output):
        mask = output.get("pred_mask") if isinstance(output, dict) else None
        if mask is not None and not bad and not bool(torch.isfinite(mask).all()):
            bad.append(mask.shape)

    handle = model.register_forward_hook(check)
    try:
        yield
    finally:
        handle.remove()
    if bad:
        raise RunError(
            f"test set {test_set}: the model predicted NaN or infinite probabilities, so no metric of it means "
            "anything; the checkpoint's weights are probably not finite (retrain, or lower --lr)"
        )


def write_rows(rows: List[Dict], stem: str) -> Tuple[str, str]:
    """``stem``.json and ``stem``.csv, one row per (checkpoint or perturbation, test set)."""
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = f"{stem}.json", f"{stem}.csv"
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(rows, handle, indent=2)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return json_path, csv_path


def print_rows(rows: List[Dict], title: str, keys: List[str]) -> None:
    from rich.table import Table

    metrics = [
        k for k in dict.fromkeys(k for row in rows for k in row) if k not in keys and isinstance(rows[0].get(k), float)
    ]
    table = Table(title=title)
    for column in keys + metrics:
        table.add_column(column, justify="right" if column in metrics else "left")
    for row in rows:
        table.add_row(*[str(row[k]) for k in keys], *[f"{row[m]:.4f}" if m in row else "" for m in metrics])
    show(table)

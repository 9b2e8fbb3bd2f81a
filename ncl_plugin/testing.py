"""``benco test``, ``benco test-robust`` and ``benco complexity``."""
import csv
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from . import data
from .checkpoint import load_checkpoint, model_state_dict
from . import validation
from .engine import build_model, evaluate, evaluator_factory, is_main, parse_metrics, setup
from .training_state import list_checkpoints
from .errors import UsageError
from .progress import console, progress_session

# Training flags a test inherits from the checkpoint, so that it runs at the trained resolution.
INHERITED_TRAIN_FLAGS = ("image_size", "if_padding", "if_resizing", "edge_mask_width")


# ---------------------------------------------------------------- checkpoints
def checkpoint_files(path: str) -> List[Tuple[int, str]]:
    """(epoch, file) for a checkpoint file, or for every checkpoint-<epoch>.pth of a folder."""
    if os.path.isdir(path):
        found = list_checkpoints(path)
        if not found:
            raise UsageError(f"--checkpoint {path}: no checkpoint-<epoch>.pth in this folder")
        return found
    if not os.path.isfile(path):
        raise UsageError(f"--checkpoint {path}: no such file or folder")
    name = Path(path).name
    epoch = int(name[len("checkpoint-") : -len(".pth")]) if name.startswith("checkpoint-") and name[11:-4].isdigit() else -1
    return [(epoch, path)]


def best_checkpoint(path: str) -> str:
    """A file as is; for a training folder, the best epoch's checkpoint if it was kept, else the newest."""
    if not os.path.isdir(path):
        return checkpoint_files(path)[0][1]
    found = dict(checkpoint_files(path))
    summary = Path(path) / "summary.json"
    if summary.is_file():
        best = json.loads(summary.read_text()).get("best_epoch")
        if best in found:
            return found[best]
    return found[max(found)]


def checkpoint_defaults(path: str, trusted: bool = False) -> Tuple[Optional[str], Dict]:
    """The model name and flags a checkpoint of this plugin was trained with (it stores them)."""
    try:
        file = best_checkpoint(path)
    except UsageError:
        return None, {}  # reported properly once the subcommand runs
    checkpoint = load_checkpoint(file, trusted=trusted)
    if not isinstance(checkpoint, dict):
        return None, {}
    args = checkpoint.get("args") if isinstance(checkpoint.get("args"), dict) else {}
    defaults = dict(checkpoint.get("model_args") or {})
    defaults.update({k: args[k] for k in INHERITED_TRAIN_FLAGS if k in args})
    return args.get("model"), defaults


def load_weights(model, path: str, trusted: bool = False) -> None:
    state = model_state_dict(load_checkpoint(path, trusted=trusted), path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UsageError(
            f"--checkpoint {path}: does not fit this model ({first}); pass the --model and model flags it was trained with"
        ) from None


# ---------------------------------------------------------------- output
def write_rows(rows: List[Dict], stem: str) -> Tuple[str, str]:
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

    metrics = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in keys and isinstance(rows[0].get(k), float)]
    table = Table(title=title)
    for column in keys + metrics:
        table.add_column(column, justify="right" if column in metrics else "left")
    for row in rows:
        table.add_row(*[str(row[k]) for k in keys], *[f"{row[m]:.4f}" if m in row else "" for m in metrics])
    console.print(table)


def _default_stem(checkpoint: str, name: str) -> str:
    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(os.path.abspath(checkpoint))
    return os.path.join(folder, name)


# ---------------------------------------------------------------- benco test
def test_datasets(args, post, transform=None) -> Dict:
    """The test sets, checked up front like training data (headers only)."""
    datasets = data.build_test_datasets(args.test_data_path, args, post, transform)
    for name, dataset in datasets.items():
        validation.scan(dataset, f"--test_data_path {name}", args.skip_bad_samples)
    return datasets


def test(args, model_args, model_class) -> List[Dict]:
    """Every checkpoint on every test set. Returns one row per (checkpoint, test set)."""
    device = setup(args)
    make_evaluators = evaluator_factory(parse_metrics(args.metrics))
    checkpoints = checkpoint_files(args.checkpoint)
    post = data.post_function(args.model)
    loaders = {
        name: data.test_loader(ds, args, args.distributed) for name, ds in test_datasets(args, post).items()
    }
    model, unwrapped = build_model(model_class, args, model_args, device)
    rows = []
    for epoch, path in checkpoints:
        load_weights(unwrapped, path, args.trust_checkpoint)
        with progress_session(enabled=is_main()) as progress:
            results = evaluate(model, loaders, make_evaluators, device, epoch, args, progress=progress)
        for name, metrics in results.items():
            rows.append({"checkpoint": os.path.basename(path), "epoch": epoch, "test set": name, **metrics})
    if is_main():
        print_rows(rows, f"benco test: {args.model}", ["checkpoint", "epoch", "test set"])
        json_path, csv_path = write_rows(rows, args.out or _default_stem(args.checkpoint, "test_results"))
        console.print(f"Wrote {json_path} and {csv_path}")
    return rows


# ---------------------------------------------------------------- benco test-robust
def _numbers(text: str, flag: str, kind=float) -> List:
    try:
        return [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text}: expected a comma list of numbers") from None


def perturbations(args) -> Dict[str, List[Tuple[float, object]]]:
    """{perturbation: [(parameter, albumentations transform or None)]}.

    JPEG, blur and noise use IMDL-BenCo's own robustness wrappers; resize uses
    albumentations' Downscale (down by the factor, back up to the original size).
    """
    import albumentations as albu
    from IMDLBenCo.transforms.robustness_wrapper import GaussianBlurWrapper, GaussianNoiseWrapper, JpegCompressionWrapper

    grid = {
        "jpeg": list(JpegCompressionWrapper(_numbers(args.jpeg, "--jpeg", int))),
        "blur": list(GaussianBlurWrapper(_numbers(args.blur, "--blur", int))),
        "noise": list(GaussianNoiseWrapper(_numbers(args.noise, "--noise", int))),
        "resize": [],
    }
    for factor in _numbers(args.resize, "--resize"):
        if not 0 < factor <= 1:
            raise UsageError(f"--resize {args.resize}: factors must be in (0, 1]")
        transform = None if factor == 1 else albu.Downscale(scale_min=factor, scale_max=factor, interpolation=0, p=1.0)
        grid["resize"].append((factor, transform))
    return {name: params for name, params in grid.items() if params}


def test_robust(args, model_args, model_class) -> List[Dict]:
    device = setup(args)
    make_evaluators = evaluator_factory(parse_metrics(args.metrics))
    path = best_checkpoint(args.checkpoint)
    grid = perturbations(args)
    model, unwrapped = build_model(model_class, args, model_args, device)
    load_weights(unwrapped, path, args.trust_checkpoint)
    post = data.post_function(args.model)
    rows = []
    for name, params in grid.items():
        for param, transform in params:
            datasets = test_datasets(args, post, transform)
            loaders = {k: data.test_loader(ds, args, args.distributed) for k, ds in datasets.items()}
            with progress_session(enabled=is_main()) as progress:
                results = evaluate(model, loaders, make_evaluators, device, 0, args, progress=progress)
            for test_set, metrics in results.items():
                rows.append({"perturbation": name, "parameter": param, "test set": test_set, **metrics})
    if is_main():
        for name in grid:
            print_rows([r for r in rows if r["perturbation"] == name], f"{name} ({os.path.basename(path)})", ["parameter", "test set"])
        json_path, csv_path = write_rows(rows, args.out or _default_stem(args.checkpoint, "robustness"))
        console.print(f"Wrote {json_path} and {csv_path}")
    return rows


# ---------------------------------------------------------------- benco complexity
def complexity(args, model_args, model_class) -> Dict:
    """Parameters and FLOPs with fvcore, feeding the model the inputs IMDL-BenCo's script feeds it."""
    import inspect

    from fvcore.nn import FlopCountAnalysis, flop_count_table

    device = setup(args)
    if args.distributed:
        raise UsageError("benco complexity runs in one process; start it without torchrun")
    model, _ = build_model(model_class, args, model_args, device)
    model.eval()
    size, batch = args.image_size, args.test_batch_size
    inputs = {
        "image": torch.randn(batch, 3, size, size, device=device),
        "mask": torch.zeros(batch, 1, size, size, device=device),
        "label": torch.zeros(batch, dtype=torch.long, device=device),
    }
    ordered = tuple(inputs.get(name) for name in inspect.signature(model.forward).parameters if name not in ("args", "kwargs"))
    used = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: used.add(mod)) for m in model.modules()]
    with torch.no_grad():
        flops = FlopCountAnalysis(model, ordered)
        flops.unsupported_ops_warnings(False)
        flops.uncalled_modules_warnings(False)
        total_flops = flops.total()
    for hook in hooks:
        hook.remove()
    params = sum(p.numel() for p in model.parameters())
    inference_params = sum(p.numel() for m in used for p in m.parameters(recurse=False))
    console.print(flop_count_table(flops, max_depth=args.table_depth))
    result = {
        "model": args.model,
        "image_size": size,
        "batch": batch,
        "parameters": params,
        "inference_parameters": inference_params,
        "flops": total_flops,
        "gflops_per_image": total_flops / batch / 1e9,
    }
    console.print(
        f"{args.model} at {size}x{size}: {params / 1e6:.2f} M parameters "
        f"({inference_parameters_text(params, inference_params)}), "
        f"{result['gflops_per_image']:.2f} GFLOPs per image (fvcore counts a multiply-add as one FLOP)"
    )
    return result


def inference_parameters_text(total: int, used: int) -> str:
    if used == total:
        return "all used at inference"
    return f"{used / 1e6:.2f} M used at inference; the rest only in training"

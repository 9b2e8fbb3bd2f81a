"""Training on IMDL-BenCo's datasets, loop and evaluators, on a CPU, one GPU or under torchrun."""
import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist

from . import compat, data, synthetic, validation
from .checkpoint import plain
from .config import closest, model_kwargs
from .metrics import EVALUATORS
from .errors import Interrupted, UsageError
from .progress import TrackedLoader, console, progress_session
from .resumable import EpochLoader, GuardedScaler, StopAtStep, StopRequest, capture_rng, seed_epoch
from .training_state import forget_interrupted, list_checkpoints, resume, save_checkpoint, save_interrupted

SELECTION_RULE = "the epoch with the best mean of all test metrics over all test sets (IMDL-BenCo's rule)"


# ---------------------------------------------------------------- devices
def resolve_device(name: Optional[str]) -> torch.device:
    """``--device``: CUDA when present, else CPU; asking for CUDA without a GPU is an error."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is visible on this machine; use --device cpu")
    return device


def is_main() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def setup(args) -> torch.device:
    """Device, AMP switch, process group and seeds, in that order."""
    args.device = str(resolve_device(args.device))
    compat.init_distributed(args)
    device = torch.device(args.device)
    # AMP only on CUDA; IMDL-BenCo's trainer reads args.if_not_amp.
    args.if_not_amp = bool(getattr(args, "if_not_amp", True)) or device.type != "cuda"
    compat.seed_everything(args.seed + args.rank)
    if args.num_workers is None:
        args.num_workers = data.default_num_workers(int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    args.pin_mem = bool(args.pin_mem) and device.type == "cuda"
    if not args.if_padding and not args.if_resizing:
        args.if_resizing = True  # IMDL-BenCo requires one of the two; resizing is its usual choice
    if args.if_padding and args.if_resizing:
        raise UsageError("--if_padding and --if_resizing exclude each other; pass one")
    if args.image_size % 32:
        raise UsageError(f"--image_size {args.image_size}: must be a multiple of 32")
    return device


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# ---------------------------------------------------------------- model and evaluators
def build_model(model_class, args, model_args, device: torch.device):
    """Instantiate, move to ``device`` and wrap in DDP when distributed. Returns (model, unwrapped)."""
    try:
        model = model_class(**model_kwargs(model_class, args, model_args))
    except (ValueError, TypeError) as err:
        raise UsageError(f"--model {args.model}: {err}") from None
    except (OSError, KeyError, RuntimeError) as err:
        # IMDL-BenCo's models load pre-trained weights in their constructors: a missing
        # or mismatched weight file surfaces here.
        raise UsageError(f"--model {args.model} could not be built: {type(err).__name__}: {err} "
                         "(check its weight-path flags; `benco train --model "
                         f"{args.model} --help` lists them)") from None
    if args.distributed and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if getattr(args, "channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    unwrapped = model
    if args.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(getattr(args, "find_unused_parameters", False)),
        )
    return model, unwrapped


def parse_metrics(text: str) -> List[str]:
    names = [m.strip() for m in str(text).split(",") if m.strip()]
    for name in names:
        if name not in EVALUATORS:
            raise UsageError(f"--metrics {text}: unknown metric {name!r}{closest(name, EVALUATORS)} (known: {', '.join(EVALUATORS)})")
    if not names:
        raise UsageError("--metrics: name at least one metric, e.g. pixel-f1")
    return names


def evaluator_factory(metrics: List[str]) -> Callable[[], list]:
    """Fresh evaluators for each test set (they keep state between batches)."""
    return lambda: [EVALUATORS[name]() for name in metrics]


# ---------------------------------------------------------------- testing
def evaluate(model, loaders: Dict, make_evaluators, device, epoch: int, args, log_writer=None, progress=None):
    """IMDL-BenCo's test_one_epoch on every test set. Returns {test set: {metric: value}}."""
    from IMDLBenCo.training_scripts.tester import test_one_epoch

    results = {}
    for name, loader in loaders.items():
        evaluators = make_evaluators()
        if progress is not None:
            loader = TrackedLoader(loader, progress, f"test {name}")
        with compat.adapted(device):
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
        results[name] = {e.name: float(stats[e.name]) for e in evaluators}
    return results


def mean_metrics(results: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    metrics = {m for per_set in results.values() for m in per_set}
    return {m: float(np.mean([per_set[m] for per_set in results.values() if m in per_set])) for m in sorted(metrics)}


def selection_score(results: Dict[str, Dict[str, float]]) -> float:
    """What SELECTION_RULE maximises: the mean over metrics of each metric's mean over test sets."""
    return float(np.mean(list(mean_metrics(results).values())))


# ---------------------------------------------------------------- logs and summary
def read_log(output_dir: str) -> List[Dict]:
    path = os.path.join(output_dir, "log.txt")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_summary(args, model_args, checkpoints: List[str]) -> Dict:
    """summary.json: the best epoch's metrics per test set, by SELECTION_RULE, and the last epoch's."""
    tested = [row for row in read_log(args.output_dir) if row.get("test_metrics")]
    summary = {"model": args.model, "model_args": plain(model_args), "selection": SELECTION_RULE}
    if tested:
        best = max(tested, key=lambda row: selection_score(row["test_metrics"]))
        summary.update(
            best_epoch=best["epoch"],
            best=best["test_metrics"],
            best_mean=mean_metrics(best["test_metrics"]),
            last_epoch=tested[-1]["epoch"],
            last=tested[-1]["test_metrics"],
        )
    summary.update(
        output_dir=os.path.abspath(args.output_dir),
        checkpoints=[os.path.abspath(p) for p in checkpoints],
        args=plain(args),
    )
    tmp = os.path.join(args.output_dir, "summary.json.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(tmp, os.path.join(args.output_dir, "summary.json"))
    return summary


def print_summary(summary: Dict, elapsed: float) -> None:
    from rich.table import Table

    if "best" not in summary:
        console.print("No test was run.")
        return
    # One row per test set and metric, so that the table stays narrow in an 80-column log.
    table = Table(title=f"{summary['model']}: test metrics")
    for column in ("test set", "metric"):
        table.add_column(column)
    table.add_column(f"best (epoch {summary['best_epoch']})", justify="right")
    table.add_column(f"last (epoch {summary['last_epoch']})", justify="right")
    for name, per_set in summary["best"].items():
        for metric in sorted(per_set):
            table.add_row(name, metric, f"{per_set[metric]:.4f}", f"{summary['last'][name][metric]:.4f}")
    console.print(table)
    minutes, seconds = divmod(int(elapsed), 60)
    console.print(
        f"Finished in {minutes} min {seconds} s. Pixel metrics are per-image means over each test set "
        f"(an authentic image scores pixel-F1 0, as in IMDL-BenCo).\n"
        f"Wrote {summary['output_dir']}: log.txt, summary.json, TensorBoard events"
        + (f", {len(summary['checkpoints'])} checkpoint(s)" if summary["checkpoints"] else "")
    )


# ---------------------------------------------------------------- data
def prepare_data(args, metrics: List[str]) -> None:
    """With no --data_path, train and test on the embedded synthetic set (built once, cached).

    Its test set holds manipulated images only, as IMDL-BenCo's pixel-level test sets do;
    image-level metrics need authentic images too, so asking for one tests on the list that
    includes them (where IMDL-BenCo's pixel metrics score each authentic image 0).
    """
    if args.data_path:
        if not args.test_data_path:
            raise UsageError("--test_data_path is required with --data_path (a dataset folder or a JSON map of test sets)")
        return
    if args.test_data_path:
        raise UsageError("--test_data_path needs a --data_path to train on")
    if is_main():
        folder, built = synthetic.cached(args.synthetic_images, args.synthetic_size, show_progress=True)
        print(f"Synthetic dataset {'built in' if built else 'cached at'} {folder}")
    barrier()
    folder, _ = synthetic.cached(args.synthetic_images, args.synthetic_size, show_progress=False)
    args.data_path = str(folder / "train")
    args.test_data_path = str(folder / "test_datasets.json")
    if any(m.startswith("image") for m in metrics):
        args.test_data_path = str(folder / "test_datasets_with_authentic.json")
        print("Image-level metrics: testing on the synthetic test images with the authentic ones "
              "(IMDL-BenCo's pixel metrics score each authentic image 0)")


# ---------------------------------------------------------------- training
def build_datasets(args, post):
    """The training set and the test sets, checked up front (headers only) before any training."""
    train_set = data.build_dataset(args.data_path, args, data.train_transform(args.augment), post)
    test_sets = data.build_test_datasets(args.test_data_path, args, post)
    dropped = validation.scan(train_set, f"--data_path {args.data_path}", args.skip_bad_samples)
    for name, test_set in test_sets.items():
        dropped += validation.scan(test_set, f"--test_data_path {name}", args.skip_bad_samples)
    if dropped:
        console.print(f"[yellow]--skip_bad_samples: left out {dropped} bad sample(s) found by the scan[/yellow]")
    return train_set, test_sets


def check_model_fits(unwrapped, args) -> None:
    patch = getattr(unwrapped, "patch_size", None)
    if isinstance(patch, int) and patch > args.image_size:
        raise UsageError(f"--patch_size {patch} is larger than --image_size {args.image_size}; use a smaller --patch_size")


def train(args, model_args, model_class) -> Optional[Dict]:
    import timm.optim
    from IMDLBenCo.training_scripts.trainer import train_one_epoch
    from torch.utils.tensorboard import SummaryWriter

    started = time.time()
    device = setup(args)
    metrics = parse_metrics(args.metrics)
    prepare_data(args, metrics)
    args.log_dir = args.log_dir or args.output_dir
    if is_main():
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)

    post = data.post_function(args.model)
    dataset_train, test_sets = build_datasets(args, post)
    skipped = validation.SkipCounter()
    if args.skip_bad_samples:
        dataset_train = validation.SkippingDataset(dataset_train, skipped)
    loader_train = data.train_loader(dataset_train, args, args.distributed)
    test_loaders = {name: data.test_loader(ds, args, args.distributed) for name, ds in test_sets.items()}

    model, unwrapped = build_model(model_class, args, model_args, device)
    check_model_fits(unwrapped, args)
    eff_batch_size = args.batch_size * args.accum_iter * args.world_size
    if args.lr is None:
        args.lr = args.blr * eff_batch_size / 256
    # IMDL-BenCo's train.py: AdamW through timm, betas (0.9, 0.999), no decay on norms and biases.
    optimizer = timm.optim.create_optimizer_v2(
        unwrapped, opt="adamw", lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.999)
    )
    scaler = GuardedScaler(compat.amp_scaler(device, enabled=not args.if_not_amp), args.max_nonfinite_steps)
    resume_step, resume_rng = resume(args, unwrapped, optimizer, scaler)

    log_writer = SummaryWriter(log_dir=args.log_dir) if is_main() and args.log_dir else None
    make_evaluators = evaluator_factory(metrics)
    print(
        f"Training {args.model} on {device} for epochs {args.start_epoch}..{args.epochs - 1}: "
        f"{len(dataset_train)} training images, test sets {', '.join(f'{k} ({len(v)})' for k, v in test_sets.items())}; "
        f"lr {args.lr:.2e}, effective batch {eff_batch_size}, AMP {'on' if not args.if_not_amp else 'off'}"
    )
    logged = [row["test_metrics"] for row in read_log(args.output_dir) if row.get("test_metrics")]
    best_value = max((selection_score(r) for r in logged), default=-math.inf)
    with StopRequest() as stop:
        for epoch in range(args.start_epoch, args.epochs):
            seed_epoch(args.seed, args.rank, epoch)
            if args.distributed:
                loader_train.sampler.set_epoch(epoch)
            with progress_session(enabled=is_main()) as progress:
                epoch_loader = EpochLoader(
                    loader_train, progress, f"epoch {epoch + 1}/{args.epochs}", epoch, args.accum_iter,
                    skip=resume_step, rng=resume_rng, stop=stop,
                )
                resume_step, resume_rng = 0, None
                try:
                    with compat.adapted(device, schedule_position=lambda: epoch_loader.position):
                        train_stats = train_one_epoch(
                            model, epoch_loader, optimizer, device, epoch, scaler,
                            log_writer=log_writer, log_per_epoch_count=args.log_per_epoch_count, args=args,
                        )
                except StopAtStep as halt:
                    optimizer.zero_grad()
                    saved = None
                    if is_main() and args.output_dir:
                        saved = save_interrupted(args, model_args, epoch, halt.step, capture_rng(), unwrapped, optimizer, scaler)
                    barrier()
                    raise Interrupted(
                        f"stopped at epoch {epoch}, batch {halt.step}"
                        + (f"; saved {saved}: continue with --resume auto --output_dir {args.output_dir}" if saved else ""),
                        halt.signum,
                    ) from None
                bad = skipped.take()
                if bad:
                    console.print(f"[yellow]--skip_bad_samples: skipped {bad} unreadable sample(s) in epoch {epoch}[/yellow]")
                last = epoch + 1 == args.epochs
                checkpoint_due = epoch % args.save_period == 0 or last
                if args.output_dir and checkpoint_due and is_main():
                    save_checkpoint(args, model_args, epoch, unwrapped, optimizer, scaler)
                optimizer.zero_grad()
                log_stats = {f"train_{k}": v for k, v in train_stats.items()}
                if bad:
                    log_stats["skipped_samples"] = bad
                if epoch % args.test_period == 0 or last:
                    results = evaluate(model, test_loaders, make_evaluators, device, epoch, args, log_writer, progress)
                    means = mean_metrics(results)
                    value = selection_score(results)
                    # IMDL-BenCo also keeps the best model, once past epoch 20.
                    if value > best_value:
                        best_value = value
                        if epoch > 20 and not checkpoint_due and args.output_dir and is_main():
                            save_checkpoint(args, model_args, epoch, unwrapped, optimizer, scaler)
                    if log_writer is not None:
                        for metric in means:
                            log_writer.add_scalars(f"{metric}_Metric", {n: r[metric] for n, r in results.items()}, epoch)
                        log_writer.add_scalar("Average", value, epoch)
                    log_stats.update({f"test_{k}": v for k, v in means.items()}, test_metrics=results)
            log_stats["epoch"] = epoch
            if args.output_dir and is_main():
                if log_writer is not None:
                    log_writer.flush()
                with open(os.path.join(args.output_dir, "log.txt"), "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(log_stats) + "\n")

    summary = None
    if is_main() and args.output_dir:
        forget_interrupted(args.output_dir)
        summary = write_summary(args, model_args, [p for _, p in list_checkpoints(args.output_dir)])
        print_summary(summary, time.time() - started)
        if scaler.skipped:
            console.print(f"[yellow]{scaler.skipped} step(s) were skipped for a non-finite loss[/yellow]")
    if log_writer is not None:
        log_writer.close()
    barrier()
    return summary

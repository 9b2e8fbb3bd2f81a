"""Training on IMDL-BenCo's datasets, loop and evaluators, on a CPU, one GPU or under torchrun.

One :class:`Training` follows IMDL-BenCo's train.py: AdamW through timm,
IMDL-BenCo's ``train_one_epoch`` and ``test_one_epoch``, ``log.txt``,
TensorBoard, ``checkpoint-<epoch>.pth`` every ``--save_period`` epochs, the
last one, and the best one past epoch 20. Around that loop this module adds
the embedded dataset when no data is given, a guard against non-finite
losses, and exact resumption after an interruption (:mod:`interruption`).
"""

import os
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ncl_plugin.data import checks, loaders, postprocess, synthetic
from ncl_plugin.engine import amp, compat, imdlbenco_line
from ncl_plugin.engine.checkpoints import (
    KEEP_BEST_AFTER_EPOCH,
    forget_interrupted,
    list_checkpoints,
    resume,
    save_checkpoint,
    save_interrupted,
)
from ncl_plugin.engine.evaluation import evaluate
from ncl_plugin.engine.interruption import (
    EpochLoader,
    StopAtStep,
    StopRequest,
    capture_rng,
    schedule_follows,
    seed_epoch,
)
from ncl_plugin.engine.metrics import (
    best_epoch,
    evaluator_factory,
    evaluator_name,
    mean_metrics,
    parse_metrics,
    selection_score,
    short_names,
)
from ncl_plugin.engine.runtime import barrier, build_model, is_main, setup
from ncl_plugin.engine.training_log import append_row, read_log, tested_epochs, write_summary
from ncl_plugin.errors import Interrupted, RunError, UsageError
from ncl_plugin.terminal import epoch_line, progress_session, say, show, warn


# ---------------------------------------------------------------- data
def prepare_data(args, metrics: List[str]) -> None:
    """With no --data_path, train and test on the embedded synthetic set (built once, cached).

    Its test set holds manipulated images only, as IMDL-BenCo's pixel-level test sets do;
    image-level metrics need authentic images too, so asking for one tests on the list that
    includes them (pixel metrics stay means over its tampered images: metrics.OverTamperedImages).
    """
    if args.data_path:
        args.training_data = os.path.abspath(args.data_path)  # recorded in every checkpoint (benco test, predict)
        if not args.test_data_path:
            raise UsageError(
                "--test_data_path is required with --data_path (a dataset folder or a JSON map of test sets)"
            )
        return
    if args.test_data_path:
        raise UsageError("--test_data_path needs a --data_path to train on")
    post = postprocess.parse(args.synthetic_post, flag="--synthetic_post")
    if is_main():
        folder, built = synthetic.cached(args.synthetic_images, args.synthetic_size, show_progress=True, post=post)
        say(f"Synthetic dataset {'built in' if built else 'cached at'} {folder}")
    barrier()
    folder, _ = synthetic.cached(args.synthetic_images, args.synthetic_size, show_progress=False, post=post)
    args.data_path = str(folder / "train")
    args.test_data_path = str(folder / "test_datasets.json")
    processed = f", post-processed {args.synthetic_post}" if args.synthetic_post else ""
    args.training_data = (
        f"synthetic:the embedded synthetic set ({args.synthetic_images} generated images at "
        f"{args.synthetic_size}x{args.synthetic_size}{processed}; {folder})"
    )
    if any(m.startswith("image") for m in metrics):
        args.test_data_path = str(folder / "test_datasets_with_authentic.json")
        say("Image-level metrics: testing on the synthetic test images with the authentic ones")


def build_datasets(args, post):
    """The training set and the test sets, checked up front (headers only) before any training."""
    train_set = loaders.build_dataset(args.data_path, args, loaders.train_transform(args.augment), post)
    if getattr(args, "tampered_only", False):
        checks.leave_out_authentic(train_set, args.data_path)
    test_sets = loaders.build_test_datasets(args.test_data_path, args, post)
    dropped = checks.scan(train_set, f"--data_path {args.data_path}", args.skip_bad_samples)
    for name, test_set in test_sets.items():
        dropped += checks.scan(test_set, f"--test_data_path {name}", args.skip_bad_samples)
    if dropped:
        warn(f"--skip_bad_samples: left out {dropped} bad sample(s) found by the scan")
    return train_set, test_sets


def check_model_fits(unwrapped, args) -> None:
    patch = getattr(unwrapped, "patch_size", None)
    if isinstance(patch, int) and patch > args.image_size:
        raise UsageError(
            f"--patch_size {patch} is larger than --image_size {args.image_size}; use a smaller --patch_size"
        )


# ---------------------------------------------------------------- non-finite losses
class GuardedScaler:
    """IMDL-BenCo's loss scaler, refusing non-finite losses.

    A non-finite loss skips its step with a warning (on every rank, so that DDP
    stays in step); ``max_nonfinite`` consecutive ones stop the run.
    """

    def __init__(self, inner, max_nonfinite: int = 20):
        self.inner = inner
        self.max_nonfinite = max_nonfinite
        self.consecutive = 0
        self.skipped = 0
        self.state_dict_key = getattr(inner, "state_dict_key", "amp_scaler")

    def __call__(self, loss, optimizer, *args, **kwargs):
        import torch.distributed as dist

        finite = torch.isfinite(loss.detach()).all().float().reshape(1)
        if dist.is_available() and dist.is_initialized():
            finite = finite.to(compat.collective_device())
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite.item() < 1:
            self.consecutive += 1
            self.skipped += 1
            warn(f"non-finite loss ({loss.detach().float().mean().item()}): step skipped ({self.consecutive} in a row)")
            if self.consecutive >= self.max_nonfinite:
                raise RunError(
                    f"the loss was not finite for {self.consecutive} steps in a row (--max_nonfinite_steps); "
                    f"lower --lr or --blr, or check the data; the last checkpoint is kept"
                )
            return None
        self.consecutive = 0
        return self.inner(loss, optimizer, *args, **kwargs)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


# ---------------------------------------------------------------- TensorBoard
class WithoutImages:
    """A SummaryWriter that keeps scalars and drops images.

    IMDL-BenCo's ``train_one_epoch`` logs the epoch's last batch (images, masks, predictions) to
    TensorBoard at the end of every epoch: about 0.4 s of PNG encoding on the training thread and
    1.2 MB of events an epoch at batch 8 and 256x256 (benchmarks/probes/tensorboard_images.py). A small
    training set runs hundreds of short epochs (the real-data curve's 50 images: 206 epochs of 6
    steps, 286 MB of events a run), so the images are kept on the tested epochs only, beside those
    epochs' test metrics.
    """

    def __init__(self, writer):
        self.writer = writer

    def add_images(self, *args, **kwargs) -> None:
        pass

    add_image = add_images

    def __getattr__(self, name):
        return getattr(self.writer, name)


def epoch_writer(writer, tested: bool):
    """The writer an epoch's training loop gets: ``writer`` on a tested epoch, without images otherwise."""
    return writer if writer is None or tested else WithoutImages(writer)


# ---------------------------------------------------------------- the run
class Training:
    """Everything one ``benco train`` holds: data, model, optimiser, scaler, logs. :meth:`run` trains."""

    def __init__(self, args, model_args, model_class):
        import timm.optim
        from torch.utils.tensorboard import SummaryWriter

        self.args, self.model_args = args, model_args
        self.started = time.time()
        self.device = setup(args)
        self.metrics = parse_metrics(args.metrics)
        prepare_data(args, self.metrics)
        args.log_dir = args.log_dir or args.output_dir
        if is_main():
            Path(args.output_dir).mkdir(parents=True, exist_ok=True)

        post = loaders.post_function(args.model)
        self.train_set, test_sets = build_datasets(args, post)
        self.skipped = checks.SkipCounter()
        if args.skip_bad_samples:
            self.train_set = checks.SkippingDataset(self.train_set, self.skipped)
        self.train_loader = loaders.train_loader(self.train_set, args, args.distributed)
        self.test_sizes = {name: len(ds) for name, ds in test_sets.items()}
        self.test_loaders = {name: loaders.test_loader(ds, args, args.distributed) for name, ds in test_sets.items()}

        self.model, self.unwrapped = build_model(model_class, args, model_args, self.device)
        check_model_fits(self.unwrapped, args)
        self.parameters = parameter_counts(self.unwrapped)
        self.effective_batch = args.batch_size * args.accum_iter * args.world_size
        if args.lr is None:
            args.lr = args.blr * self.effective_batch / 256
        # IMDL-BenCo's train.py: AdamW through timm, betas (0.9, 0.999), no decay on norms and biases.
        self.optimizer = timm.optim.create_optimizer_v2(
            self.unwrapped, opt="adamw", lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.999)
        )
        self.scaler = GuardedScaler(
            compat.amp_scaler(self.device, enabled=not args.if_not_amp), args.max_nonfinite_steps
        )
        self.resume_step, self.resume_rng = resume(args, self.unwrapped, self.optimizer, self.scaler)
        self.log_writer = SummaryWriter(log_dir=args.log_dir) if is_main() and args.log_dir else None
        self.make_evaluators = evaluator_factory(self.metrics)
        self.tested = tested_epochs(read_log(args.output_dir))  # epochs tested before a resume count too

    def run(self) -> Optional[Dict]:
        args = self.args
        say(imdlbenco_line.installed().described())
        say(
            f"Training {args.model} on {self.device} for epochs {args.start_epoch}..{args.epochs - 1}: "
            f"{len(self.train_set)} training images, test sets "
            f"{', '.join(f'{k} ({v})' for k, v in self.test_sizes.items())}; "
            f"lr {args.lr:.2e}, effective batch {self.effective_batch}, {amp.described(args.precision)}"
        )
        with StopRequest() as stop:
            for epoch in range(args.start_epoch, args.epochs):
                self.epoch(epoch, stop)
        return self.finish()

    def epoch(self, epoch: int, stop: StopRequest) -> None:
        args, started = self.args, time.time()
        seed_epoch(args.seed, args.rank, epoch)
        if args.distributed:
            self.train_loader.sampler.set_epoch(epoch)
        last = epoch + 1 == args.epochs
        tested = epoch % args.test_period == 0 or last
        with progress_session(enabled=is_main()) as progress:
            steps = (len(self.train_loader) - self.resume_step) // max(1, args.accum_iter)
            train_stats = self.train_epoch(epoch, progress, stop, images=tested)
            # The training loop's own time (no test, no checkpoint): what `benco compare --costs`
            # reports as seconds per optimiser step.
            row = {f"train_{k}": v for k, v in train_stats.items()}
            row.update(train_seconds=round(time.time() - started, 3), train_steps=steps)
            saved_now = self.save_due(epoch, last)
            bad = self.skipped.take()
            if bad:
                warn(f"--skip_bad_samples: skipped {bad} unreadable sample(s) in epoch {epoch}")
                row["skipped_samples"] = bad
            means = None
            if tested:
                results = self.test_epoch(epoch, progress, keep_best=not saved_now)
                means = mean_metrics(results)
                row.update({f"test_{k}": v for k, v in means.items()}, test_metrics=results)
                means = {name: means[name] for name in map(evaluator_name, self.metrics) if name in means}
        row.update(epoch=epoch, precision=args.precision, imdlbenco=imdlbenco_line.installed().name)
        if args.output_dir and is_main():
            if self.log_writer is not None:
                self.log_writer.flush()
            append_row(args.output_dir, row)
        say(
            epoch_line(
                epoch, args.epochs, train_stats, means, best_epoch(self.tested), time.time() - started, short_names()
            )
        )

    def train_epoch(self, epoch: int, progress, stop: StopRequest, images: bool = True) -> Dict:
        """IMDL-BenCo's train_one_epoch, resumable mid-way and stoppable at an optimiser step; its
        TensorBoard images of the last batch only where ``images``."""
        from IMDLBenCo.training_scripts.trainer import train_one_epoch

        loader = EpochLoader(
            self.train_loader,
            progress,
            f"epoch {epoch}/{self.args.epochs - 1}",
            epoch,
            self.args.accum_iter,
            skip=self.resume_step,
            rng=self.resume_rng,
            stop=stop,
        )
        self.resume_step, self.resume_rng = 0, None
        try:
            with compat.adapted(self.device, self.args.precision), amp.outputs_in_float32(self.model):
                with schedule_follows(loader):
                    stats = train_one_epoch(
                        self.model,
                        loader,
                        self.optimizer,
                        self.device,
                        epoch,
                        self.scaler,
                        log_writer=epoch_writer(self.log_writer, images),
                        log_per_epoch_count=self.args.log_per_epoch_count,
                        args=self.args,
                    )
        except StopAtStep as halt:
            self.stop_at(epoch, halt)
        self.optimizer.zero_grad()
        return stats

    def stop_at(self, epoch: int, halt: StopAtStep) -> None:
        """Save the interrupted state (position and random states included), then end the command."""
        self.optimizer.zero_grad()
        saved = None
        if is_main() and self.args.output_dir:
            saved = save_interrupted(
                self.args, self.model_args, epoch, halt.step, capture_rng(), self.unwrapped, self.optimizer, self.scaler
            )
        barrier()
        raise Interrupted(
            f"stopped at epoch {epoch}, batch {halt.step}"
            + (f"; saved {saved}: continue with --resume auto --output_dir {self.args.output_dir}" if saved else ""),
            halt.signum,
        ) from None

    def save_due(self, epoch: int, last: bool) -> bool:
        """IMDL-BenCo's schedule: every --save_period epochs and the last. True when a checkpoint was due."""
        due = epoch % self.args.save_period == 0 or last
        if due and self.args.output_dir and is_main():
            save_checkpoint(self.args, self.model_args, epoch, self.unwrapped, self.optimizer, self.scaler)
        return due

    def test_epoch(self, epoch: int, progress, keep_best: bool) -> Dict:
        """Every test set; a new best epoch past KEEP_BEST_AFTER_EPOCH also keeps its checkpoint."""
        results = evaluate(
            self.model,
            self.test_loaders,
            self.make_evaluators,
            self.device,
            epoch,
            self.args,
            self.log_writer,
            progress,
        )
        self.tested[epoch] = results
        if (
            best_epoch(self.tested) == epoch
            and epoch > KEEP_BEST_AFTER_EPOCH
            and keep_best
            and self.args.output_dir
            and is_main()
        ):
            save_checkpoint(self.args, self.model_args, epoch, self.unwrapped, self.optimizer, self.scaler)
        if self.log_writer is not None:
            for metric in mean_metrics(results):
                self.log_writer.add_scalars(f"{metric}_Metric", {n: r[metric] for n, r in results.items()}, epoch)
            self.log_writer.add_scalar("Average", selection_score(results), epoch)
        return results

    def finish(self) -> Optional[Dict]:
        summary = None
        args = self.args
        if is_main() and args.output_dir:
            forget_interrupted(args.output_dir)
            summary = write_summary(
                args, self.model_args, [p for _, p in list_checkpoints(args.output_dir)], self.parameters
            )
            print_summary(summary, time.time() - self.started)
            if self.scaler.skipped:
                warn(f"{self.scaler.skipped} step(s) were skipped for a non-finite loss")
        if self.log_writer is not None:
            self.log_writer.close()
        barrier()
        return summary


def parameter_counts(model) -> Dict[str, int]:
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def print_summary(summary: Dict, elapsed: float) -> None:
    from rich.table import Table

    if "best" not in summary:
        say("No test was run.")
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
    show(table)
    minutes, seconds = divmod(int(elapsed), 60)
    say(
        f"Finished in {minutes} min {seconds} s. Pixel metrics are per-image means over each test set's "
        f"tampered images.\n"
        f"Wrote {summary['output_dir']}: log.txt, summary.json, train.log, TensorBoard events"
        + (f", {len(summary['checkpoints'])} checkpoint(s)" if summary["checkpoints"] else "")
    )


def train(args, model_args, model_class) -> Optional[Dict]:
    return Training(args, model_args, model_class).run()

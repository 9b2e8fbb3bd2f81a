"""Many ``benco train`` runs at one budget, resumable, and their table: what ``benco bench`` and the
harnesses in ``benchmarks/`` run.

A :class:`Job` is one row of the final table (a model, optionally with flags of
its own); it runs once per seed, each run in ``<out>/<job>-seed<N>`` through
``python -m ncl_plugin train`` in a subprocess, with ``--resume auto``: a run
that was interrupted continues where it stopped, a finished one is kept. Each
folder records the command it was trained with (``bench.json``), so that a
second call with another budget does not silently mix two budgets in one table.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .checkpoints import INTERRUPTED_NAME
from .errors import UsageError
from .terminal import say, warn
from .training_log import SUMMARY_NAME, read_log

RECORD = "bench.json"
OUTPUT = "train.out"
# The metrics every benchmark run is tested on: the fixed threshold to cite, the best-threshold
# upper bound, the ranking and the overlap.
METRICS = "pixel-f1,pixel-f1-best,pixel-auc,pixel-iou"


@dataclass
class Job:
    """One row of the table: ``model`` trained with ``flags`` (after the shared budget's) per seed."""

    name: str
    model: str
    flags: List[str] = field(default_factory=list)
    seeds: Optional[List[int]] = None  # None: the benchmark's seeds
    cost: float = 1.0  # expected time per run relative to NCL's, for the time-left estimate
    label: Optional[str] = None  # the table's row label (default: name)
    env: Dict[str, str] = field(default_factory=dict)  # added to the run's environment


@dataclass
class Run:
    job: Job
    seed: int
    folder: Path
    command: List[str]

    @property
    def finished(self) -> bool:
        return (self.folder / SUMMARY_NAME).is_file() and not (self.folder / INTERRUPTED_NAME).exists()


def parse_seeds(text: str, flag: str = "--seeds") -> List[int]:
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text}: expected a comma list of integers, e.g. 0,1,2") from None
    if not seeds:
        raise UsageError(f"{flag}: no seed given")
    return seeds


def plan(jobs: Sequence[Job], seeds: Sequence[int], budget: List[str], out: Path) -> List[Run]:
    """Every job x seed, with its folder and its full ``benco train`` command. The job's flags come
    after the shared budget's, so that a variant overrides the budget where it says so."""
    runs = []
    for job in jobs:
        for seed in job.seeds or seeds:
            folder = out / f"{job.name}-seed{seed}"
            command = ["train", "--model", job.model, *budget, "--seed", str(seed), *job.flags]
            runs.append(Run(job, seed, folder, command))
    return runs


def check_records(runs: Sequence[Run]) -> None:
    """A folder trained with another command is an error before anything trains: results of two
    budgets would otherwise share a row."""
    for run in runs:
        record = run.folder / RECORD
        if record.is_file():
            before = json.loads(record.read_text()).get("command")
            if before != run.command:
                changed = sorted(set(before or []) ^ set(run.command))
                raise UsageError(
                    f"{run.folder} was trained with another command (differs in {' '.join(changed[:6])}); "
                    "give another --out, or delete that folder to train it again"
                )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _result_line(folder: Path) -> str:
    """The best epoch's pixel-F1 and AUC (means over the test sets)."""
    means = json.loads((folder / SUMMARY_NAME).read_text()).get("best_mean") or {}
    shown = [f"{name} {means[key]:.3f}" for key, name in (("pixel-level F1", "pixel-F1"), ("pixel-level AUC", "AUC"))
             if key in means]  # fmt: skip
    return ", ".join(shown) or "no test metrics"


def _last_error(folder: Path) -> str:
    lines = [ln.strip() for ln in (folder / OUTPUT).read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def execute(
    runs: Sequence[Run], epochs: Optional[int] = None, poll: float = 5.0, after_each: Optional[Callable] = None
) -> List[Run]:
    """Train the runs one after another (finished ones are kept); returns the runs that failed.

    Progress: a line per run (k of n) and per epoch, and after each run an estimate of the time
    left, from the time the runs of this call took per unit of their jobs' expected cost.
    ``epochs``: the budget's, for the epoch lines (a job's own --epochs wins). ``after_each``: called
    after every finished run (``benco bench`` rewrites its table, so that a long benchmark stopped
    half-way still leaves the table of what finished)."""
    failed = []
    pending_cost = sum(r.job.cost for r in runs if not r.finished)
    spent, spent_cost = 0.0, 0.0
    for index, run in enumerate(runs, start=1):
        where = f"[{index}/{len(runs)}] {run.job.label or run.job.name}, seed {run.seed}"
        if run.finished:
            say(f"{where}: done before, kept ({_result_line(run.folder)})")
            continue
        run.folder.mkdir(parents=True, exist_ok=True)
        (run.folder / RECORD).write_text(json.dumps({"command": run.command}, indent=1))
        command = [
            sys.executable,
            "-m",
            "ncl_plugin",
            *run.command,
            "--output_dir",
            str(run.folder),
            "--resume",
            "auto",
        ]
        resumed = " (resuming)" if (run.folder / "log.txt").exists() else ""
        say(f"{where}: training{resumed}; its output goes to {run.folder / OUTPUT}")
        started = time.time()
        code = _train(command, run, _flag_value(run.command, "--epochs") or epochs, poll)
        took = time.time() - started
        spent, spent_cost, pending_cost = spent + took, spent_cost + run.job.cost, pending_cost - run.job.cost
        left = f"; about {_minutes(spent / spent_cost * pending_cost)} left" if pending_cost > 0 else ""
        if code == 0 and run.finished:
            say(f"{where}: {_result_line(run.folder)} in {_minutes(took)}{left}")
            if after_each is not None:
                after_each()
        else:
            failed.append(run)
            warn(f"{where}: failed (exit {code}): {_last_error(run.folder)}; see {run.folder / OUTPUT}{left}")
    return failed


def _train(command: List[str], run: Run, epochs, poll: float) -> int:
    """One ``benco train`` subprocess, its output to train.out; an epoch line each time log.txt grows."""
    seen = len(read_log(str(run.folder)))
    with open(run.folder / OUTPUT, "a") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONWARNINGS": "ignore", **run.job.env}
        )
        try:
            while process.poll() is None:
                time.sleep(poll)
                rows = read_log(str(run.folder))
                for row in rows[seen:]:
                    tested = f", pixel-F1 {row['test_pixel-level F1']:.3f}" if "test_pixel-level F1" in row else ""
                    took = f" ({row['train_seconds'] / 60:.1f} min)" if "train_seconds" in row else ""
                    say(f"    epoch {row['epoch'] + 1}" + (f"/{epochs}" if epochs else "") + took + tested)
                seen = len(rows)
        except KeyboardInterrupt:
            # benco train saves a resumable state on SIGINT; wait for it, then stop the benchmark.
            process.wait()
            raise
    return process.returncode


def _flag_value(command: Sequence[str], flag: str) -> Optional[str]:
    values = [command[i + 1] for i, a in enumerate(command[:-1]) if a == flag]
    return values[-1] if values else None


def tables(runs: Sequence[Run], out: Path, name: str = "bench") -> Tuple[str, List[Path]]:
    """``benco compare`` over the finished runs, one row per job, with parameters and seconds per step:
    <out>/<name>.md, .tex, .csv and .png. Returns (the Markdown table, the files)."""
    from .report import compare

    finished = [r for r in runs if r.finished]
    if not finished:
        raise UsageError(f"{out}: no run has finished yet; nothing to tabulate")
    paths = [str(r.folder) for r in finished]
    labels = {str(r.folder): r.job.label or r.job.name for r in finished}
    files = [out / f"{name}.{ext}" for ext in ("md", "tex", "csv", "png")]
    table = compare(paths, "markdown", out=str(files[0]), plot_path=str(files[3]), labels=labels, costs=True)
    compare(paths, "latex", out=str(files[1]), labels=labels, costs=True)
    compare(paths, "csv", out=str(files[2]), labels=labels, costs=True)
    return table, files

"""Many ``benco train`` runs at one budget, resumable, and their table: what ``benco bench`` and the
harnesses in ``benchmarks/`` run.

A :class:`Job` is one row of the final table (a model, optionally with flags of
its own); it runs once per seed, each run in ``<out>/<job>-seed<N>`` through
``python -m ncl_plugin train`` in a subprocess, with ``--resume auto``: a run
that was interrupted continues where it stopped, a finished one is kept. Each
folder records the command it was trained with and what its data holds
(``bench.json``, :mod:`.datarefs`), so that a second call with another budget
or other data does not silently mix them in one table, while the same lists at
another path (a fresh clone, another machine) are the same data.
:func:`jobs` turns ``--models`` into jobs: each model's recipe from :mod:`zoo`, its own flags
(``ncl:contrast_weight=0``), and the shared :class:`Budget`.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ncl_plugin import zoo
from ncl_plugin.bench import datarefs
from ncl_plugin.bench.report import CALIBRATED
from ncl_plugin.engine import imdlbenco_line
from ncl_plugin.engine.checkpoints import INTERRUPTED_NAME
from ncl_plugin.engine.metrics import mean_metrics
from ncl_plugin.engine.training_log import SUMMARY_NAME, read_log, run_record
from ncl_plugin.errors import Interrupted, UsageError
from ncl_plugin.terminal import say, warn

SEED_MARK = "-seed"  # a run's folder: <job name>-seed<N>

# The budget every run shares (`benco bench`'s flags, the harnesses' too); the rest of a run's flags come
# from --config and the model's recipe.
BUDGET = {"epochs": int, "image_size": int, "batch_size": int, "blr": float, "lr": float, "accum_iter": int}
RECORD = "bench.json"
STOPPED = (128 + signal.SIGINT, 128 + signal.SIGTERM)  # benco train's exit codes after a signal
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


def run_folder(out: Path, name: str, seed: int) -> Path:
    """Where the run of job ``name`` at ``seed`` lives: the one place that names run folders."""
    return out / f"{name}{SEED_MARK}{seed}"


def finished_runs(out: Path, name: str) -> List[Path]:
    """The folders of job ``name``'s finished runs under ``out``, whatever their seeds, in seed order:
    what a table of everything trained so far reads, without knowing the seeds up front."""
    found = []
    for folder in out.glob(glob.escape(name + SEED_MARK) + "*"):
        seed = folder.name[len(name + SEED_MARK) :]
        if seed.isdigit() and Run(Job(name, ""), int(seed), folder, []).finished:
            found.append((int(seed), folder))
    return [folder for _, folder in sorted(found)]


def plan(jobs: Sequence[Job], seeds: Sequence[int], budget: List[str], out: Path) -> List[Run]:
    """Every job x seed, with its folder and its full ``benco train`` command. The job's flags come
    after the shared budget's, so that a variant overrides the budget where it says so."""
    runs = []
    for job in jobs:
        for seed in job.seeds or seeds:
            folder = run_folder(out, job.name, seed)
            command = ["train", "--model", job.model, *budget, "--seed", str(seed), *job.flags]
            runs.append(Run(job, seed, folder, command))
    return runs


def check_records(runs: Sequence[Run]) -> None:
    """A folder trained with another command, or on other data, is an error before anything trains: results
    of two budgets would otherwise share a row. Data is compared by what it holds, not by where it lies."""
    installed = imdlbenco_line.installed().name
    for run in runs:
        recorded = run_record(str(run.folder))
        ran, planned = recorded["precision"], planned_precision(run.command)
        if ran and ran != planned:
            fix = "add --if_not_amp to" if planned != "float32" else "leave out --if_not_amp to"
            raise UsageError(
                f"{run.folder} was trained in {ran}, and this command trains in {planned}: {fix} rebuild or extend "
                "it as it was trained, or give another --out (one table row never mixes precisions)"
            )
        if recorded["imdlbenco"] and recorded["imdlbenco"] != installed:
            raise UsageError(
                f"{run.folder} was trained under {recorded['imdlbenco']}, and {installed} is installed: "
                "give another --out (one table row never mixes IMDL-BenCo versions), or install the one it ran under"
            )
        record = run.folder / RECORD
        if record.is_file():
            changed = datarefs.differences(json.loads(record.read_text()), run.command)
            if changed:
                raise UsageError(
                    f"{run.folder} was trained with another command (differs in {' '.join(changed[:6])}); "
                    "give another --out, or delete that folder to train it again"
                )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _result_line(folder: Path, select: str = "best") -> str:
    """Pixel-F1 and AUC (means over the test sets) at the epoch the table reports (``select``), said."""
    summary = json.loads((folder / SUMMARY_NAME).read_text())
    means = summary.get("best_mean") if select == "best" else mean_metrics(summary.get("last") or {})
    means = means or {}
    shown = [f"{name} {means[key]:.3f}" for key, name in (("pixel-level F1", "pixel-F1"), ("pixel-level AUC", "AUC"))
             if key in means]  # fmt: skip
    return f"{', '.join(shown)} at its {select} epoch" if shown else "no test metrics"


def _last_error(folder: Path) -> str:
    lines = [ln.strip() for ln in (folder / OUTPUT).read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def execute(
    runs: Sequence[Run],
    epochs: Optional[int] = None,
    poll: float = 5.0,
    after_each: Optional[Callable] = None,
    select: str = "best",
    finish: Optional[Callable[[Run], None]] = None,
) -> List[Run]:
    """Train the runs one after another (finished ones are kept); returns the runs that failed.

    Progress: a line per run (k of n) and per epoch, and after each run an estimate of the time
    left, from the time the runs of this call took per unit of their jobs' expected cost.
    ``epochs``: the budget's, for the epoch lines (a job's own --epochs wins). ``after_each``: called
    after every finished run (``benco bench`` rewrites its table, so that a long benchmark stopped
    half-way still leaves the table of what finished). ``select``: the epoch each run's line reports,
    the table's (best or last). ``finish``: called with every finished run, kept or new, before its
    line (``benco bench --calibrate_on``: thresholds chosen on validation, then tested)."""
    failed = []
    pending_cost = sum(r.job.cost for r in runs if not r.finished)
    spent, spent_cost = 0.0, 0.0
    for index, run in enumerate(runs, start=1):
        where = f"[{index}/{len(runs)}] {run.job.label or run.job.name}, seed {run.seed}"
        if run.finished:
            if finish is not None:
                finish(run)
            say(f"{where}: done before, kept ({_result_line(run.folder, select)})")
            continue
        run.folder.mkdir(parents=True, exist_ok=True)
        (run.folder / RECORD).write_text(json.dumps(datarefs.record(run.command), indent=1))
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
        if code in STOPPED:
            # benco train saved its resumable state; a benchmark whose run was stopped stops too.
            raise Interrupted(
                f"{where} was stopped and saved; run the same command to continue where it stopped", code - 128
            )
        if code == 0 and run.finished:
            if finish is not None:
                finish(run)
            say(f"{where}: {_result_line(run.folder, select)} in {_minutes(took)}{left}")
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


def calibrator(val_data_path: str, metrics: str) -> Callable[[Run], None]:
    """The ``finish`` of :func:`execute` that calibrates each run on ``val_data_path`` (:func:`calibrate`),
    testing with ``metrics``, plus image F1 where they hold image-AUC (a test set with authentic images)."""
    if "image-auc" in metrics.split(","):
        metrics += ",image-f1"
    return lambda run: calibrate(run, val_data_path, metrics)


def calibrate(run: Run, val_data_path: str, metrics: str) -> None:
    """``benco calibrate`` on ``val_data_path`` for the run's last checkpoint, then ``benco test`` of that
    checkpoint on the run's test set(s) into <run>/calibrated.json, where :mod:`.report` finds F1 at the
    validation thresholds beside F1 at 0.5. Kept once done; the output goes to train.out."""
    from ncl_plugin.engine.checkpoints import checkpoint_files

    if (run.folder / CALIBRATED).is_file():
        return
    _, checkpoint = max(checkpoint_files(str(run.folder)))
    test_data = _flag_value(run.command, "--test_data_path")
    if not test_data:
        raise UsageError("--calibrate_on needs --data_path and --test_data_path: the runs' test sets")
    steps = (
        ["calibrate", "--checkpoint", checkpoint, "--val_data_path", val_data_path],
        ["test", "--checkpoint", checkpoint, "--test_data_path", test_data, "--metrics", metrics,
         "--out", str(run.folder / Path(CALIBRATED).stem)],  # benco test adds .json and .csv
    )  # fmt: skip
    for step in steps:
        with open(run.folder / OUTPUT, "a") as log:
            code = subprocess.call(
                [sys.executable, "-m", "ncl_plugin", *step, *_runtime_flags(run.command)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONWARNINGS": "ignore", **run.job.env},
            )
        if code != 0:
            raise UsageError(f"{run.folder}: benco {step[0]} failed (exit {code}): {_last_error(run.folder)}")
    say(f"    thresholds chosen on {val_data_path} for {Path(checkpoint).name}; tested into {CALIBRATED}")


def runtime_flags(args) -> List[str]:
    """--device, --num_workers and --if_not_amp of a benchmark's own flags, for every command it runs."""
    flags = [f for flag in ("device", "num_workers") if getattr(args, flag, None) is not None
             for f in (f"--{flag}", str(getattr(args, flag)))]  # fmt: skip
    return flags + (["--if_not_amp"] if getattr(args, "if_not_amp", False) else [])


def _runtime_flags(command: Sequence[str]) -> List[str]:
    """What a run's evaluation shares with its training: the device, loader workers and precision."""
    flags = [f for flag in ("--device", "--num_workers") if _flag_value(command, flag) is not None
             for f in (flag, _flag_value(command, flag))]  # fmt: skip
    return flags + (["--if_not_amp"] if "--if_not_amp" in command else [])


def planned_precision(command: Sequence[str]) -> str:
    """The precision ``benco train`` will choose for ``command`` on this machine."""
    from ncl_plugin.engine.amp import precision_for
    from ncl_plugin.engine.runtime import resolve_device

    return precision_for(resolve_device(_flag_value(command, "--device")), "--if_not_amp" in command)


def _flag_value(command: Sequence[str], flag: str) -> Optional[str]:
    values = [command[i + 1] for i, a in enumerate(command[:-1]) if a == flag]
    return values[-1] if values else None


def tables(runs: Sequence[Run], out: Path, name: str = "bench", select: str = "best") -> Tuple[str, List[Path]]:
    """``benco compare`` over the finished runs, one row per job, with parameters and seconds per step, each
    run at its ``select`` epoch: <out>/<name>.md, .tex, .csv and .png. Returns (the Markdown table, the files)."""
    from ncl_plugin.bench.report import compare

    finished = [r for r in runs if r.finished]
    if not finished:
        raise UsageError(f"{out}: no run has finished yet; nothing to tabulate")
    paths = [str(r.folder) for r in finished]
    labels = {str(r.folder): r.job.label or r.job.name for r in finished}
    files = [out / f"{name}.{ext}" for ext in ("md", "tex", "csv", "png")]
    table = compare(
        paths, "markdown", select=select, out=str(files[0]), plot_path=str(files[3]), labels=labels, costs=True
    )
    compare(paths, "latex", select=select, out=str(files[1]), labels=labels, costs=True)
    compare(paths, "csv", select=select, out=str(files[2]), labels=labels, costs=True)
    return table, files


# ---------------------------------------------------------------- from --models to jobs
@dataclass
class Budget:
    """What every run shares: --config, the overrides, the data, the device."""

    config: str
    overrides: Dict[str, object]
    data: List[str]
    runtime: List[str]
    values: Dict = field(default_factory=dict)  # the config's values with the overrides applied

    @classmethod
    def from_flags(cls, args) -> "Budget":
        from ncl_plugin.config import read_config

        overrides = {k: getattr(args, k) for k in BUDGET if getattr(args, k) is not None}
        data = []
        if args.data_path:
            data = ["--data_path", args.data_path, "--test_data_path", args.test_data_path]
        for flag in ("synthetic_images", "synthetic_post"):
            if getattr(args, flag) is not None:
                data += [f"--{flag}", str(getattr(args, flag))]
        runtime = runtime_flags(args)
        values = {"image_size": 512, **read_config(args.config), **overrides}  # 512: benco train's default
        return cls(args.config, overrides, data, runtime, values)

    @property
    def size(self) -> int:
        return int(self.values["image_size"])

    def flags(self) -> List[str]:
        overrides = [f for k, v in self.overrides.items() for f in (f"--{k}", str(v))]
        return ["--config", self.config, *overrides, "--metrics", self.metrics(), *self.data, *self.runtime]

    def metrics(self) -> str:
        """METRICS, and any other metric the recipe asks for (a real-data recipe's image-level AUC)."""
        asked = [m.strip() for m in str(self.values.get("metrics", "")).split(",") if m.strip()]
        return ",".join(dict.fromkeys(METRICS.split(",") + asked))

    def describe(self) -> str:
        v = self.values
        return (
            f"--config {self.config} ({_count(v.get('epochs', 200), 'epoch')}, {self.size}x{self.size}, batch "
            f"{v.get('batch_size', 1)}, blr {v.get('blr', 1e-3)})"
        )


def _count(n, what: str) -> str:
    return f"{n} {what}" + ("" if int(n) == 1 else "s")


def _constructor_defaults(model_class) -> Dict[str, object]:
    from ncl_plugin.config import model_parameters

    return {k: p.default for k, p in model_parameters(model_class).items()}


def _flag_text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _own_network(name: str, model_class, budget: Budget, set_here: set) -> List[str]:
    """A config's network keys are NCL's (quickstart's backbone, patch_size): a zoo model that shares
    a key's name gets its own default back, so that the budget is shared and the network is not."""
    if name in ("ncl", "deeplabv3plus"):
        return []
    flags = []
    for key, default in _constructor_defaults(model_class).items():
        if key in budget.values and key not in set_here and default is not None and key != "image_size":
            flags += [f"--{key}", _flag_text(default)]
    return flags


def parse_spec(text: str) -> Tuple[str, List[str], Optional[List[int]]]:
    """'ncl:contrast_weight=0:seeds=0;1' -> ('ncl', ['--contrast_weight', '0'], [0, 1])."""
    name, *pairs = text.split(":")
    flags, seeds = [], None
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--models {text}: expected NAME:flag=value, got {pair!r}")
        if key == "seeds":
            seeds = parse_seeds(value.replace(";", ","), f"--models {text}: seeds")
        else:
            flags += [f"--{key}", value]
    return name, flags, seeds


def jobs(models: Optional[str], budget: Budget, out: Path) -> List:
    """--models as benchmark jobs, every one checked at the budget's size first: one line names
    every model that cannot run, before anything trains."""
    from ncl_plugin.config import closest

    known = zoo.registry()
    specs = [s for s in (models or ",".join(zoo.default_models())).split(",") if s.strip()]
    problems, result, names = [], [], set()
    for spec in specs:
        name, flags, seeds = parse_spec(spec.strip())
        if name not in known and name in zoo.RECIPES:
            # a zoo model of another IMDL-BenCo version (MSCDI_Net left after 0.1.45): the rest still runs
            warn(f"--models {name}: skipped, not in {imdlbenco_line.installed().name}'s MODELS")
            continue
        if name not in known:
            problems.append(f"{name} is not in IMDL-BenCo's MODELS{closest(name, known)}")
            continue
        entry = zoo.recipe(name)
        if entry.status == zoo.CANNOT:
            problems.append(f"{name} cannot train here: {entry.note}")
            continue
        if entry.status == zoo.BROKEN:
            warn(f"--models {name}: excluded by default, as it {entry.note}")
        wrong_size = entry.size_error(budget.size)
        if wrong_size:
            problems.append(f"{name} {wrong_size}")
            continue
        job_name = "-".join([name, *(f"{f[2:]}={v}" for f, v in zip(flags[::2], flags[1::2]))])
        if job_name in names:
            problems.append(f"{spec.strip()} is given twice")
            continue
        names.add(job_name)
        own = zoo.recipe_flags(entry, budget.size, out / "weights")
        if entry.lr is not None and not {"lr", "blr"} & set(budget.overrides):
            own += ["--lr", str(entry.lr)]
        set_here = {f[2:] for f in own + flags if f.startswith("--")}
        label = name + (f" ({', '.join(f[2:] + '=' + v for f, v in zip(flags[::2], flags[1::2]))})" if flags else "")
        env = zoo.environment(name, out)
        result.append(
            Job(
                job_name,
                name,
                [*_own_network(name, known[name], budget, set_here), *own, *flags],
                seeds,
                entry.cost,
                label,
                env,
            )  # fmt: skip
        )
    if problems:
        raise UsageError(f"--models at --image_size {budget.size}: " + "; ".join(problems) + " (benco bench --list)")
    return result

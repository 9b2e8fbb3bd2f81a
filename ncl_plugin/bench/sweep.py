"""Sweeps over :mod:`ncl_plugin.bench.runner`: the harnesses in ``benchmarks/`` (accuracy, ablation,
contrast, data efficiency, generalization, recipe) are thin scripts over these, at one budget."""

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ncl_plugin.bench.runner import BUDGET
from ncl_plugin.engine.amp import FLAG_HELP

# Network flags a harness may override for NCL and deeplabv3plus (the other models lack them).
NETWORK = {"backbone": str, "output_stride": int, "decoder_channels": int, "patch_size": int}


def _network(args) -> List[str]:
    return [f for flag in NETWORK if getattr(args, flag) is not None for f in (f"--{flag}", str(getattr(args, flag)))]


# The harnesses test every epoch, as their committed tables were made.
TEST_PERIOD = ["--test_period", "1"]


def add_budget_flags(parser: argparse.ArgumentParser) -> None:
    """The budget every run shares: a recipe (--config; the CPU quickstart by default), a few
    overrides, the data and the seeds."""
    parser.add_argument(
        "--config", default="quickstart", help="the recipe every run trains with: a packaged config name or a YAML file"
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    for flag, kind in BUDGET.items():
        parser.add_argument(f"--{flag}", type=kind, default=None, help="overrides the recipe's value for every run")
    for flag, kind in NETWORK.items():
        parser.add_argument(
            f"--{flag}", type=kind, default=None, help="overrides the recipe's value for ncl and deeplabv3plus"
        )
    parser.add_argument(
        "--images",
        default=None,
        type=int,
        help="size of the synthetic set (without --data_path; default: the recipe's)",
    )
    parser.add_argument("--data_path", default=None, help="a real training set instead of the synthetic one")
    parser.add_argument("--test_data_path", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--num_workers", default=None)
    parser.add_argument("--if_not_amp", action="store_true", help=FLAG_HELP)
    parser.add_argument("--out", default="runs/accuracy", help="one folder per run; finished runs are not run again")


def chosen_variants(parser: argparse.ArgumentParser, only, variants, flag: str = "--only") -> List[str]:
    """--only (or ``flag``) as a list of variant names (all of them without it); an unknown name is a usage error."""
    names = only.split(",") if only else list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        parser.error(f"{flag}: unknown variant(s) {', '.join(unknown)}; known: {', '.join(variants)}")
    return names


def resolve_budget(args) -> None:
    """args.recipe: the budget every run gets, i.e. the recipe's values with the overrides applied."""
    from ncl_plugin.config import read_config

    args.recipe = read_config(args.config)
    args.recipe.setdefault("image_size", 512)  # benco train's default
    for flag in list(BUDGET) + list(NETWORK):
        if getattr(args, flag) is not None:
            args.recipe[flag] = getattr(args, flag)


def run_all(jobs: Sequence[Dict], args, select: str = "best", calibrate_on: Optional[str] = None) -> List[str]:
    """Run each job ({'name', 'model', 'flags'}, optionally 'seeds') once per seed, at the budget of add_budget_flags,
    through ncl_plugin's benchmark runner (the recipe `benco bench` gives each zoo model); return
    the run folders. ``select``: the epoch the harness's table reports, which each run's progress line says.
    ``calibrate_on``: a validation list on which each run's last checkpoint gets its thresholds, as
    ``benco bench --calibrate_on`` does (calibrated.json in the run's folder)."""
    from ncl_plugin.bench.runner import (
        Budget,
        Job,
        calibrator,
        check_records,
        execute,
        parse_seeds,
        plan,
        runtime_flags,
    )
    from ncl_plugin.bench.runner import jobs as model_jobs
    from ncl_plugin.errors import ReportedError

    out = Path(args.out)
    data = ["--data_path", args.data_path, "--test_data_path", args.test_data_path] if args.data_path else []
    data += ["--synthetic_images", str(args.images)] if args.images and not args.data_path else []
    runtime = runtime_flags(args)
    overrides = {flag: getattr(args, flag) for flag in BUDGET if getattr(args, flag) is not None}
    budget = Budget(args.config, overrides, data, runtime, args.recipe)
    runs = []
    for job in jobs:
        (recipe,) = model_jobs(job["model"], budget, out)
        network = _network(args) if job["model"] in ("ncl", "deeplabv3plus") else []
        flags = [*recipe.flags, *network, *TEST_PERIOD, *job["flags"]]  # the job's own flags last: a variant wins
        runs += plan([Job(job["name"], job["model"], flags, seeds=job.get("seeds"), cost=recipe.cost, env=recipe.env)],
                     parse_seeds(args.seeds), budget.flags(), out)  # fmt: skip
    try:
        check_records(runs)
        finish = calibrator(calibrate_on, budget.metrics()) if calibrate_on else None
        execute(runs, args.recipe.get("epochs"), select=select, finish=finish)
    except ReportedError as err:  # a stopped run or a folder of another budget: one line, as benco's commands say it
        print(f"{Path(sys.argv[0]).name}: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    return [str(r.folder) for r in runs]


def compare(
    folders: List[str],
    out: str,
    title: str,
    by_job: bool = False,
    select: str = "best",
    names: Optional[Dict[str, str]] = None,
) -> str:
    """benco compare over the finished runs, each at its ``select`` epoch. by_job: one row per job name (the
    folder name without its -seedN, or that of the name `names` gives a folder taken from elsewhere), for
    harnesses whose runs differ in their data, where settings would make poor labels."""
    from ncl_plugin.bench.report import compare as compare_runs

    names = names or {}
    # a training folder once it has its summary; a benco test result (a .json file) as it is
    finished = [f for f in folders if Path(f).is_file() or (Path(f) / "summary.json").exists()]
    Path(out).mkdir(parents=True, exist_ok=True)
    labels = {f: names.get(f, Path(f).name).rsplit("-seed", 1)[0] for f in finished} if by_job else None
    table = compare_runs(
        finished,
        "markdown",
        select=select,
        out=str(Path(out) / "results.md"),
        plot_path=str(Path(out) / "results.png"),
        labels=labels,
    )
    compare_runs(finished, "latex", select=select, out=str(Path(out) / "results.tex"), labels=labels)
    compare_runs(finished, "csv", select=select, out=str(Path(out) / "results.csv"), labels=labels)
    print(f"\n{title}\n\n{table}\nWrote {out}/results.md, .tex, .csv and .png")
    return table


VALIDATION_IMAGES = 1000  # as many as the quickstart's embedded set: 800 train, 200 validation


def validation_set(out: Path, images: int, size: int) -> Path:
    """The quickstart's synthetic set, with four training photographs held out instead of the test ones."""
    folder = out / f"validation-n{images}-s{size}"
    if not (folder / "manifest.json").exists():
        subprocess.check_call(
            [
                sys.executable,
                "-m",
                "ncl_plugin",
                "synth",
                str(folder),
                "--n",
                str(images),
                "--size",
                str(size),
                "--holdout",
                "validation",
                "--seed",
                "0",
            ]
        )
    return folder

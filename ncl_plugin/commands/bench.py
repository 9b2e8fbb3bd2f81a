"""``benco bench``: NCL and IMDL-BenCo's zoo side by side, every model x seed at one budget, one table."""

from pathlib import Path
from typing import List

from ncl_plugin.bench.runner import BUDGET
from ncl_plugin.config import Parser
from ncl_plugin.engine.amp import FLAG_HELP

NAME = "bench"
SUMMARY = "NCL and IMDL-BenCo's zoo at one budget (models x seeds), resumable, ending with the table"
TAKES_CONFIG = False


def parser() -> Parser:
    p = Parser(
        prog="benco bench",
        description=(
            "Train every model of --models once per seed through `benco train`, at one budget (the same data, "
            "image size, epochs, batch, learning-rate rule and test set), from random initialisation and without a "
            "download; then `benco compare` over them, with parameters and seconds per training step. "
            "A finished run is kept, an interrupted one resumed: run the same command again to continue."
        ),
    )
    p.add_argument("--list", action="store_true", help="list every model in IMDL-BenCo's MODELS: can it train here?")
    p.add_argument(
        "--models",
        default=None,
        help="comma list of registry names (default: the models `--list` marks 'default'); a model's own flags "
        "follow a colon, e.g. ncl:contrast_weight=0; seeds=N;M gives a heavy model fewer seeds, e.g. IML_ViT:seeds=0",
    )
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds (default: 0,1,2)")
    p.add_argument(
        "--config",
        default="quickstart",
        help="the recipe every run trains with: a packaged config name or a YAML file (default: quickstart, the CPU budget)",
    )
    for flag, kind in BUDGET.items():
        p.add_argument(f"--{flag}", type=kind, default=None, help="overrides the recipe's value for every run")
    p.add_argument("--synthetic_images", type=int, default=None, help="size of the embedded set (without --data_path)")
    p.add_argument("--synthetic_post", default=None, help="the embedded set's post-processing, as `benco synth --post`")
    p.add_argument("--data_path", default=None, help="a training set instead of the embedded one (as benco train)")
    p.add_argument("--test_data_path", default=None, help="its test set(s) (as benco train); needed with --data_path")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (as benco train)")
    p.add_argument("--num_workers", default=None, type=int)
    p.add_argument("--if_not_amp", action="store_true", help=FLAG_HELP)
    p.add_argument("--out", default="runs/bench", help="one folder per run, and the tables (default: runs/bench)")
    p.add_argument(
        "--select",
        choices=("best", "last"),
        default="best",
        help="the epoch each run is reported at: best (IMDL-BenCo's rule, over the test sets) or last (a "
        "schedule chosen on validation data, so that the test set chooses nothing)",
    )
    p.add_argument(
        "--calibrate_on",
        default=None,
        metavar="VAL_DATA_PATH",
        help="a validation list (with authentic images for the image threshold): after each run, benco calibrate "
        "chooses its pixel and image thresholds there, on its last checkpoint, and the table adds F1 at them on "
        "the test set(s) beside F1 at 0.5; needs --select last and --data_path",
    )
    p.add_argument("--debug", action="store_true")
    return p


def main(argv: List[str]) -> int:
    from ncl_plugin import zoo
    from ncl_plugin.bench.runner import Budget, calibrator, check_records, execute, jobs, parse_seeds, plan, tables
    from ncl_plugin.errors import UsageError
    from ncl_plugin.terminal import say, warn

    args = parser().parse_args(argv)
    if args.list:
        print(zoo.listing(), end="")
        return 0
    if bool(args.data_path) != bool(args.test_data_path):
        raise UsageError("--data_path and --test_data_path go together: give both, or neither for the embedded set")
    if args.calibrate_on and (args.select != "last" or not args.data_path):
        raise UsageError(
            "--calibrate_on: thresholds are chosen for each run's last checkpoint; give --select last, and "
            "--data_path with --test_data_path"
        )
    seeds = parse_seeds(args.seeds)
    out = Path(args.out)
    budget = Budget.from_flags(args)
    jobs = jobs(args.models, budget, out)  # every model checked at the budget's size before any trains
    runs = plan(jobs, seeds, budget.flags(), out)
    say(
        f"benco bench: {len(jobs)} model(s), {len(runs)} run(s) at {budget.describe()}; "
        f"{sum(r.finished for r in runs)} finished before, kept"
    )
    check_records(runs)
    finish = calibrator(args.calibrate_on, budget.metrics()) if args.calibrate_on else None
    failed = execute(
        runs,
        budget.values.get("epochs"),
        after_each=lambda: tables(runs, out, select=args.select),
        select=args.select,
        finish=finish,
    )
    table, files = tables(runs, out, select=args.select)
    print(table, end="")
    say(f"Wrote {', '.join(str(f) for f in files)}")
    if failed:
        warn(f"{len(failed)} run(s) failed: {', '.join(str(r.folder) for r in failed)}; run the same command to retry")
        return 1
    return 0

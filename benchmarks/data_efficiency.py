"""The paper's claim, tested: does NCL's advantage over its own network grow as training data shrinks?

    python benchmarks/data_efficiency.py --out runs/data-efficiency                 # the embedded set
    python benchmarks/data_efficiency.py --out runs/data-efficiency-post --post jpeg:60-95,resize:0.5-0.9
    python benchmarks/data_efficiency.py --sizes 50,100 --models ncl,deeplabv3plus  # a part of it
    python benchmarks/data_efficiency.py --seeds 0                                   # seed 0 of every point first
    python benchmarks/data_efficiency.py --config casia-cpu --data_path casiav1_split/train.json \
        --test_data_path casiav1_split/test.json --calibrate_on casiav1_split/val.json \
        --out runs/casia-data-efficiency-authentic                                  # real data: 50,100,200,all

NCL, the pivot-consistent loss alone (`pc-only`: `ncl:contrast_weight=0`) and its network with plain BCE
(`deeplabv3plus`) train on the first 50, 100, 200, 400 and 800 training images of the embedded set
(a fixed random order of the 800 built from the training photographs: each smaller set is part of
every larger one), all scored on the same test set (the test photographs' manipulated images).
Every run takes the quickstart's 900 optimiser steps of batch 8, whatever the set's size:
epochs, warm-up and test period scale with 800 / size. Seeds: 3 at 50 and 100 images, 2 above (`--seeds`: those at every size).
About 4 to 6 minutes a run on 2 CPU cores, 36 runs a set; finished runs are kept, so the command can be
stopped and run again. Writes benco compare's table (`results.md`, `.tex`, `.csv`), `curve.md` (per
size: each model's pixel-F1 and AUC, mean ± standard deviation over seeds, and NCL's F1 lead over
the other two) and `curve.png`: pixel-F1 and AUC against the training-set size, one line per
model, mean and min-max over seeds.

With --data_path (a real training list, e.g. CASIA v1.0's training side) the sizes are 50, 100, 200
and the whole list (nested subsets in one fixed random order; of its tampered images where the recipe
trains on those only; CASIA v1.0's training side has 442, so a 400 point would repeat the whole list's),
every run takes the recipe's steps on the whole list (its epochs x size // 8), runs are tested at the end
of the schedule and reported at their last epoch (the test set chooses nothing), on --test_data_path.
Seeds: 2 a point (`--seeds`: those at every size). --whole_from takes the whole list's point from the
finished runs of `benco bench --config` with the same recipe and lists (the real-data table's folder)
instead of training it again: the same recipe and steps on the same images, checked run by run (by the
digest of the images each run's lists held, wherever those lists lie: a fresh clone takes the kept runs).
--calibrate_on (a validation list) chooses each run's thresholds there for its last checkpoint, as benco bench
--calibrate_on does, and the curve adds pixel-F1 at them, where NCL's lead is then read: a recipe whose
probabilities sit below 0.5 (the CASIA recipe, which trains on authentic images too) says little at 0.5.
--whole_from then needs the table's runs calibrated on a list of the same name.
--pretrained_path adds NCL started from a checkpoint trained on generated images (ncl-synthetic-init),
at the same steps, at the curve's two smallest sizes (where real data is scarcest):

    python benchmarks/data_efficiency.py --config casia-cpu --data_path casiav1_split/train.json \
        --test_data_path casiav1_split/test.json --calibrate_on casiav1_split/val.json \
        --whole_from runs/casia-bench-authentic --out runs/casia-data-efficiency-authentic
    python benchmarks/data_efficiency.py --config casia-cpu-tampered --data_path casiav1_split/train.json \
        --test_data_path casiav1_split/test.json --whole_from runs/casia-bench \
        --pretrained_path runs/synthetic-to-real/plain-seed0/checkpoint-8.pth --out runs/casia-data-efficiency
"""
import argparse
import json
import math
import random
import statistics
from pathlib import Path
from typing import List

from ncl_plugin.bench.report import save_figure
from ncl_plugin.bench.runner import SEED_MARK
from ncl_plugin.bench.sweep import add_budget_flags, compare, resolve_budget, run_all

SIZES = (50, 100, 200, 400, 800)
# pc-only: the pivot-consistent loss alone (`ncl:contrast_weight=0`), named so that its run folders
# have no colon and check out anywhere.
MODELS = {"ncl": ("ncl", []), "pc-only": ("ncl", ["--contrast_weight", "0"]), "deeplabv3plus": ("deeplabv3plus", [])}
STEPS, BATCH, FULL = 900, 8, 800  # the quickstart: 9 epochs of 800 images, warm-up 1, test period 3


def schedule(size: int, steps: int = STEPS, full: int = FULL, warmup: int = 1, period: int = 3):
    """(epochs, warm-up epochs, test period) giving `size` images the steps of `full` images' recipe (the
    quickstart's by default; the loader drops the last incomplete batch: size // 8 steps an epoch)."""
    per_epoch = size // BATCH
    epochs = math.ceil(steps / per_epoch)
    full_epoch = full // BATCH
    return epochs, max(1, round(warmup * full_epoch / per_epoch)), max(1, round(period * full_epoch / per_epoch))


def subsets(images, sizes, out: Path):
    """{size: list file}: nested subsets of a training list, in one fixed random order."""
    images = list(images)
    random.Random(0).shuffle(images)
    lists = {}
    for size in sizes:
        if size > len(images):
            raise SystemExit(f"--sizes {size}: the set has {len(images)} training images")
        path = out / "lists" / f"train{size}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(images[:size]))
        lists[size] = path
    return lists


# what each point holds: pixel-F1 at 0.5 and AUC, the best-threshold F1 where the runs measured it (the
# real-data recipe does), which separates a model's calibration from what it localises, and with --calibrate_on
# F1 at the threshold chosen on validation, the F1 a user gets
METRICS = (("pixel-level F1", "F1", "pixel-F1 (0.5)"), ("pixel-level AUC", "AUC", "pixel AUC"),
           ("pixel-level F1 (best threshold)", "best F1", "pixel-F1 (best threshold)"),
           ("pixel-level F1 (validation threshold)", "F1 @val", "pixel-F1 (validation threshold)"))
CALIBRATED = 3  # METRICS' index of F1 at the validation threshold: NCL's lead is read there where measured


def _measured(found) -> int:
    """How many of METRICS every point holds."""
    return min(len(v) for by_size in found.values() for runs in by_size.values() for v in runs)


def points(folders, select: str = "best", names=None):
    """{model: {size: [(F1, AUC[, best F1[, F1 @val]]) per finished seed]}} from the run folders
    (n<size>-<model>-seed<N>, or as `names` calls a folder), each run at its best epoch (IMDL-BenCo's rule) or,
    with select="last", its last tested one, with F1 at the validation threshold where the run was calibrated
    (calibrated.json)."""
    from ncl_plugin.bench.report import with_calibrated
    from ncl_plugin.engine.metrics import mean_metrics

    found = {}
    names = names or {}
    for folder in map(Path, folders):
        summary = folder / "summary.json"
        if not summary.exists():
            continue
        size, model = names.get(str(folder), folder.name).split("-", 1)
        model = model.rsplit(SEED_MARK, 1)[0]
        summary = json.loads(summary.read_text())
        if select == "best":
            means = summary["best_mean"]
        else:
            means = mean_metrics(with_calibrated(folder, summary.get("last_epoch"), summary["last"]))
        found.setdefault(model, {}).setdefault(int(size[1:]), []).append(
            tuple(means[key] for key, _, _ in METRICS if key in means))
    return found


def _mean_std(values):
    mean = statistics.fmean(values)
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def summary_table(found, models=MODELS) -> str:
    """Markdown: one row per training-set size; per model pixel-F1, AUC (and best-threshold F1 where measured),
    mean ± standard deviation over seeds (as benco compare), and NCL's F1 lead over each of its two references."""
    order = list(models)
    models = sorted(found, key=lambda m: order.index(m) if m in order else len(order))  # the harness's order
    sizes = sorted({s for by_size in found.values() for s in by_size})
    lead = [m for m in models if m != "ncl"] if "ncl" in found else []
    measured = range(_measured(found))
    # NCL's lead in the F1 a user gets: at the validation threshold where the runs were calibrated, else at 0.5
    by = CALIBRATED if CALIBRATED in measured else 0
    header = ["training images", "seeds", *(f"{m} {METRICS[k][1]}" for k in measured for m in models),
              *(f"ncl − {m} {METRICS[by][1]}" for m in lead)]
    rows = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
    for size in sizes:
        runs = {m: found[m].get(size, []) for m in models}
        seeds = "/".join(str(len(runs[m])) for m in models)
        cells = [str(size), seeds]
        for k in measured:
            cells += [_mean_std([v[k] for v in runs[m]]) if runs[m] else "–" for m in models]
        for m in lead:
            both = runs["ncl"] and runs[m]
            cells.append(f"{statistics.fmean(v[by] for v in runs['ncl']) - statistics.fmean(v[by] for v in runs[m]):+.3f}"
                         if both else "–")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def curve(found, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = _measured(found)
    # two panels a row: a row of four was five times as wide as high, and shrank to a strip in a text column
    columns = min(panels, 2)
    rows = -(-panels // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    axes = list(grid.flat)[:panels]
    for spare in list(grid.flat)[panels:]:
        spare.set_visible(False)
    for model, by_size in found.items():
        sizes = sorted(by_size)
        for k, axis in enumerate(axes):
            values = [[v[k] for v in by_size[s]] for s in sizes]
            mean = [sum(v) / len(v) for v in values]
            low = [m - min(v) for m, v in zip(mean, values)]
            high = [max(v) - m for m, v in zip(mean, values)]
            axis.errorbar(sizes, mean, yerr=[low, high], marker="o", capsize=3, label=model)
    # ticked once all models are drawn: a model measured at fewer sizes (ncl-synthetic-init) must not drop
    # the other models' sizes from the axis
    measured = sorted({size for by_size in found.values() for size in by_size})
    for axis, (_, _, metric) in zip(axes, METRICS):
        axis.set_xscale("log")
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # only the sizes measured are ticked
        axis.set_xticks(measured)
        axis.set_xticklabels(map(str, measured))
        axis.set_xlabel("training images")
        axis.set_ylabel(metric)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{title}; mean, min-max over seeds", fontsize=9)
    figure.tight_layout()
    save_figure(figure, out / "curve.png", dpi=120)


REAL_SIZES = "50,100,200,all"
# benco bench's folder for each of the curve's models (the table names pc-only by its setting)
BENCH_NAMES = {"ncl": "ncl", "pc-only": "ncl-contrast_weight=0", "deeplabv3plus": "deeplabv3plus"}
# what a table run's command may hold besides its model's own flags: anything else (--epochs, a network
# flag) would make it another budget than the curve's
BENCH_FLAGS = {"--model", "--config", "--metrics", "--data_path", "--test_data_path", "--seed"}


def whole_from(table: Path, labels, seeds, size: int, args, models=MODELS):
    """{run folder: curve name (n<size>-<model>-seed<N>)}: the whole list's point taken from a finished
    benco bench table with the same recipe, training and test lists; anything else is refused by name.
    The lists are compared by the images they hold (the digest each run recorded), not by where they lie:
    a fresh clone at another path, with lists of the same images, takes the committed runs."""
    from ncl_plugin.bench.datarefs import same_config, same_data
    from ncl_plugin.zoo.recipes import recipe

    taken = {}
    for label in labels:
        model, own = models[label]
        own = [*(x for flag, value in recipe(model).flags for x in (f"--{flag}", value)), *own]  # as the runner gives it
        for seed in seeds:
            folder = table / f"{BENCH_NAMES[label]}{SEED_MARK}{seed}"
            record = folder / "bench.json"
            if not (folder / "summary.json").exists() or not record.exists():
                raise SystemExit(f"--whole_from: {folder} is not a finished benco bench run; finish the table "
                                 "first (the same benco bench command resumes it) or leave --whole_from out")
            recorded = json.loads(record.read_text())
            command = recorded["command"]
            flags = dict(zip(command[1::2], command[2::2]))
            wanted = {"--model": model, "--config": args.config, "--seed": str(seed), **dict(zip(own[::2], own[1::2]))}
            differs = [f for f, v in wanted.items() if flags.get(f) != v]
            differs += [f for f in ("--data_path", "--test_data_path")
                        if f not in flags or not same_data(recorded, f, getattr(args, f[2:]))]
            differs += sorted(set(flags) - BENCH_FLAGS - set(own[::2]))
            differs += [] if same_config(recorded, args.config) else ["--config values"]
            if differs:
                raise SystemExit(f"--whole_from: {record} was run with other {', '.join(differs)} than this curve; "
                                 "leave --whole_from out to train the whole list's point")
            calibrate_on = getattr(args, "calibrate_on", None)
            if calibrate_on and _chosen_on(folder) != Path(calibrate_on).name:
                raise SystemExit(f"--whole_from: {folder} has no thresholds chosen on {Path(calibrate_on).name}; "
                                 f"run its benco bench command again with --calibrate_on {calibrate_on}")
            taken[str(folder)] = f"n{size}-{label}{SEED_MARK}{seed}"
    return taken


def _chosen_on(folder: Path):
    """The name of the validation list a calibrated run's thresholds were chosen on (None if not calibrated)."""
    from ncl_plugin.bench.report import CALIBRATED as TESTED

    if not (folder / TESTED).is_file():
        return None
    chosen = json.loads((folder / "summary.json").read_text()).get("thresholds") or {}
    places = {Path(t["chosen_on"]).name for t in chosen.values() if t.get("chosen_on")}
    return places.pop() if len(places) == 1 else None


def planned(jobs: List[dict], out: Path) -> list:
    """The runner's run (its folder, whether finished) of every seed of `jobs`, without training."""
    from ncl_plugin.bench.runner import Job, plan

    return plan([Job(j["name"], j["model"], seeds=j["seeds"]) for j in jobs], [], [], out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=None, help=f"default {','.join(map(str, SIZES))}; with --data_path "
                        f"{REAL_SIZES} (all: the whole list)")
    parser.add_argument("--models", default=None)
    parser.add_argument("--no_train", action="store_true", help="tabulate the finished runs only; train nothing")
    parser.add_argument("--post", default="", help="the embedded set post-processed, as `benco synth --post`")
    parser.add_argument("--whole_from", default=None, help="with --data_path: a finished benco bench folder (same "
                        "--config, lists and seeds) whose ncl, ncl:contrast_weight=0 and deeplabv3plus runs are the "
                        "whole list's point, instead of training it again")
    parser.add_argument("--pretrained_path", default=None, help="with --data_path: a checkpoint to start NCL from "
                        "(a model trained on generated images), as the row ncl-synthetic-init beside NCL from scratch")
    parser.add_argument("--calibrate_on", default=None, metavar="VAL_DATA_PATH", help="with --data_path: a "
                        "validation list on which each run's last checkpoint gets its thresholds (as benco bench "
                        "--calibrate_on), and the curve adds pixel-F1 at them; NCL's lead is then read there")
    add_budget_flags(parser)
    parser.set_defaults(out="runs/data-efficiency", seeds=None)
    args = parser.parse_args(argv)
    given = [int(x) for x in args.seeds.split(",")] if args.seeds else None  # a part of the grid, e.g. seed 0 first
    args.seeds = args.seeds or "0"  # every job below names its own seeds
    real = bool(args.data_path)
    if real and (args.post or not args.test_data_path):
        parser.error("--data_path: give its --test_data_path too (--post is for the embedded set)")
    resolve_budget(args)
    recipe = args.recipe
    models = dict(MODELS)
    if args.pretrained_path:
        if not real:
            parser.error("--pretrained_path: fine-tuning is measured on a real training list (--data_path)")
        # as given: every run trains from this folder, and its record (bench.json) stays portable
        models["ncl-synthetic-init"] = ("ncl", ["--pretrained_path", args.pretrained_path])
    out = Path(args.out)
    if real:
        from ncl_plugin.datasets.split import read_list

        images = read_list(Path(args.data_path), "--data_path")
        if recipe.get("tampered_only"):  # the recipe trains on the tampered images: the sizes count those
            images = [row for row in images if row[1] != "Negative"]
        sizes = [len(images) if s == "all" else int(s) for s in (args.sizes or REAL_SIZES).split(",")]
        # equal steps: the recipe's, on the whole list
        budget = dict(steps=int(recipe["epochs"]) * (len(images) // BATCH), full=len(images),
                      warmup=int(recipe.get("warmup_epochs", 1)), period=int(recipe.get("test_period", 1)))
        test = ["--test_data_path", args.test_data_path]
    else:
        from ncl_plugin.data import postprocess, synthetic

        post = postprocess.parse(args.post) if args.post else postprocess.NONE
        folder, _ = synthetic.cached(recipe["synthetic_images"], recipe["synthetic_size"], post=post)
        images = json.loads((folder / "train.json").read_text())
        sizes = [int(s) for s in (args.sizes or ",".join(map(str, SIZES))).split(",")]
        budget = {}
        test = ["--test_data_path", str(folder / "test_datasets.json")]
    if args.whole_from and not real:
        parser.error("--whole_from: the whole list's point of a real --data_path")
    if args.calibrate_on and not real:
        parser.error("--calibrate_on: thresholds are chosen for a real --data_path's runs on its validation list")
    lists = subsets(images, sizes, out)
    labels = (args.models or ",".join(models)).split(",")
    unknown = [label for label in labels if label not in models]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)}; known: {', '.join(models)}")
    jobs, names = [], {}
    for size in sizes:
        epochs, warmup, period = schedule(size, **budget)
        seeds = given or ([0, 1] if real else [0, 1, 2] if size <= 100 else [0, 1])
        trained = labels
        if args.whole_from and size == len(images):
            names = whole_from(Path(args.whole_from), [x for x in labels if x in BENCH_NAMES], seeds, size, args, models)
            trained = [x for x in labels if x not in BENCH_NAMES]
        for label in trained:
            if label == "ncl-synthetic-init" and size not in sorted(sizes)[:2]:
                continue  # fine-tuning is measured where real data is scarcest: the curve's two smallest sizes
            model, flags = models[label]
            jobs.append({
                "name": f"n{size}-{label}", "model": model, "seeds": seeds,
                "flags": ["--data_path", str(lists[size]), *test, "--epochs", str(epochs),
                          "--warmup_epochs", str(warmup), *flags, "--test_period", str(period)],
            })
    # the checkpoint is needed only by a fine-tuning run still to train: a fresh clone holds the finished runs'
    # records, not the weights they started from, and tabulates them without it
    fine_tuned = [j for j in jobs if j["name"].endswith("-ncl-synthetic-init")]
    to_train = [] if args.no_train else [run for run in planned(fine_tuned, out) if not run.finished]
    if to_train and not Path(args.pretrained_path).is_file():
        parser.error(f"--pretrained_path {args.pretrained_path}: no such checkpoint, and {to_train[0].folder.name} "
                     "trains from it (benchmarks/synthetic_to_real.py trains one; --no_train tabulates without it)")
    if args.no_train:
        folders = [str(run.folder) for run in planned(jobs, out)]
    else:
        folders = run_all(jobs, args, select="last" if real else "best", calibrate_on=args.calibrate_on)
    folders = [*folders, *names]
    title = f"Equal steps, {','.join(map(str, sizes))} training images" + (f", post {args.post}" if args.post else "")
    compare(folders, str(out), title, by_job=True, select="last" if real else "best", names=names)
    found = points(folders, "last" if real else "best", names)
    table = summary_table(found, models)
    (out / "curve.md").write_text(table + "\n")
    what = f"{Path(args.data_path).name}, tested on {Path(args.test_data_path).name}" if real else (
        f"the embedded set post-processed ({args.post})" if args.post else "the embedded set")
    steps = budget.get("steps", STEPS)
    curve(found, out, f"{what}; equal optimiser steps ({steps} of batch {BATCH})")
    print(f"\n{table}\nWrote {out / 'curve.md'} and {out / 'curve.png'}")


if __name__ == "__main__":
    main()

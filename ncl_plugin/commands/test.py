"""``benco test``: one checkpoint, or every checkpoint of a folder, on every test set."""

import os
import re
from typing import Dict, List, Optional

from ncl_plugin.commands import flags
from ncl_plugin.config import Parser
from ncl_plugin.engine import amp, imdlbenco_line, thresholds
from ncl_plugin.engine.checkpoints import checkpoint_files, load_weights
from ncl_plugin.terminal import command_log, progress_session, say, warn

NAME = "test"
SUMMARY = "test checkpoints on test sets; a table, JSON and CSV"
TAKES_CONFIG = True


def parser() -> Parser:
    p = Parser(
        prog="benco test", description="Test one checkpoint, or every checkpoint of a folder, on every test set."
    )
    flags.common(p)
    flags.evaluation(p)
    flags.verbose(p, "test.log beside the results")
    flags.checkpoint(p, "a checkpoint file, or a folder of checkpoint-<epoch>.pth")
    p.add_argument("--test_data_path", required=True, help="a dataset folder, or a JSON map {name: path} of test sets")
    p.add_argument(
        "--out",
        default=None,
        help="results file stem (default: test_results-<test data name> in the checkpoint's folder); "
        ".json and .csv are written",
    )
    return p


def results_stem(args, name: str) -> str:
    """--out, or ``name``-<the test data's name> in the checkpoint's folder: a test on another test set writes
    beside the first instead of over it."""
    if args.out:
        return args.out
    folder = args.checkpoint if os.path.isdir(args.checkpoint) else os.path.dirname(os.path.abspath(args.checkpoint))
    data = os.path.basename(os.path.normpath(args.test_data_path))
    data = os.path.splitext(data)[0] if os.path.isfile(args.test_data_path) else data
    return os.path.join(folder, f"{name}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', data)}")


def with_chosen_thresholds(
    make_evaluators, chosen: Optional[Dict], image_threshold: Optional[float], dataset, test_set: str, path: str
):
    """The --metrics evaluators, plus F1 at the thresholds `benco calibrate` chose for this checkpoint (with
    ``image_threshold``, the one of the image score in use), unless they were chosen on some of this test set's
    images: a threshold is never reported on the images that chose it."""
    from ncl_plugin.engine.metrics import chosen_threshold_evaluators

    if not chosen:
        return make_evaluators
    seen = thresholds.overlap(chosen, thresholds.image_names(dataset))
    if seen:
        warn(
            f"{os.path.basename(path)} on {test_set}: its thresholds were chosen on {len(seen)} of these images "
            f"(e.g. {seen[0]}, by benco calibrate on {chosen.get('chosen_on')}): F1 at them is left out; "
            f"F1 at 0.5 stays"
        )
        return make_evaluators
    return lambda: make_evaluators() + chosen_threshold_evaluators(chosen, image_threshold)


def without_image_level(make_evaluators, dataset, test_set: str, warned: set):
    """A test set that lists no authentic image gives no image-level figure: IMDL-BenCo would print image F1
    0.96 on tampered images alone, where it means nothing. The columns are left out, and said once a set."""
    from ncl_plugin.data.loaders import listed_authentic
    from ncl_plugin.engine.metrics import is_image_level
    from ncl_plugin.engine.runtime import is_main

    if listed_authentic(dataset):
        return make_evaluators
    dropped = [e.name for e in make_evaluators() if is_image_level(e)]
    if not dropped:
        return make_evaluators
    if is_main() and test_set not in warned:
        warned.add(test_set)
        warn(
            f'{test_set} lists no authentic image ("Negative"): every image-level column is left out '
            f"({', '.join(dropped)}, for every checkpoint), as image-level figures need both kinds of image"
        )
    return lambda: [e for e in make_evaluators() if not is_image_level(e)]


def test(args, model_args, model_class) -> List[Dict]:
    """Every checkpoint on every test set. Returns one row per (checkpoint, test set)."""
    from ncl_plugin.data import loaders
    from ncl_plugin.engine.evaluation import evaluate, print_rows, test_datasets, write_rows
    from ncl_plugin.engine.metrics import evaluator_factory, parse_metrics
    from ncl_plugin.engine.runtime import build_model, is_main, setup

    device = setup(args)
    make_evaluators = evaluator_factory(parse_metrics(args.metrics))
    checkpoints = checkpoint_files(args.checkpoint)
    post = loaders.post_function(args.model)
    test_loaders = {
        name: loaders.test_loader(ds, args, args.distributed) for name, ds in test_datasets(args, post).items()
    }
    model, unwrapped = build_model(model_class, args, model_args, device)
    score = getattr(model_args, "image_score", None)
    rows, warned = [], set()
    for epoch, path in checkpoints:
        load_weights(unwrapped, path, args.trust_checkpoint)
        chosen, image_threshold = thresholds.chosen_for(path, score)
        for name, loader in test_loaders.items():
            evaluators = with_chosen_thresholds(make_evaluators, chosen, image_threshold, loader.dataset, name, path)
            evaluators = without_image_level(evaluators, loader.dataset, name, warned)
            with progress_session(enabled=is_main()) as progress:
                results = evaluate(model, {name: loader}, evaluators, device, epoch, args, progress=progress)
            rows.append(
                {
                    "checkpoint": os.path.basename(path),
                    "epoch": epoch,
                    "test set": name,
                    **imdlbenco_line.computed_in(args.precision),
                }
                | results[name]
            )
    if is_main():
        print_rows(
            rows, f"benco test: {args.model} ({amp.described(args.precision)})", ["checkpoint", "epoch", "test set"]
        )
        json_path, csv_path = write_rows(rows, results_stem(args, "test_results"))
        say(f"Wrote {json_path} and {csv_path}")
    return rows


def main(argv: List[str]) -> int:
    args, model_args, model_class = flags.parse_command(parser(), argv, from_checkpoint=True)
    # a missing checkpoint, or an image threshold chosen for another score, is named before anything is read
    for _, path in checkpoint_files(args.checkpoint):
        thresholds.chosen_for(path, getattr(model_args, "image_score", None))
    with command_log(os.path.dirname(os.path.abspath(results_stem(args, "test_results"))), NAME, args.verbose):
        test(args, model_args, model_class)
    return 0

"""``benco test-robust``: IMDL-BenCo's robustness grid (JPEG, blur, noise) plus the NCL paper's resize factors."""

import os
from typing import Dict, List, Tuple

from ncl_plugin.commands import flags
from ncl_plugin.commands.test import results_stem
from ncl_plugin.config import Parser
from ncl_plugin.engine import imdlbenco_line
from ncl_plugin.engine.checkpoints import best_checkpoint, load_weights
from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import command_log, progress_session, say

NAME = "test-robust"
SUMMARY = "IMDL-BenCo's JPEG / blur / noise grid plus resize factors"
TAKES_CONFIG = True


def parser() -> Parser:
    p = Parser(
        prog="benco test-robust", description="IMDL-BenCo's robustness grid plus the NCL paper's resize factors."
    )
    flags.common(p)
    flags.evaluation(p)
    flags.verbose(p, "test-robust.log beside the results")
    flags.checkpoint(p, "a checkpoint file, or a training folder (its best epoch)")
    p.add_argument("--test_data_path", required=True, help="a dataset folder, or a JSON map {name: path} of test sets")
    p.add_argument("--jpeg", default="50,60,70,80,90,100", help="JPEG qualities")
    p.add_argument("--blur", default="0,3,7,11,15,19,23", help="Gaussian blur kernel sizes (0: none)")
    p.add_argument("--noise", default="3,7,11,15,19,23", help="Gaussian noise variances")
    p.add_argument("--resize", default="0.78,0.25", help="resize factors (down and back up)")
    p.add_argument(
        "--out",
        default=None,
        help="results file stem (default: robustness-<test data name> in the checkpoint's folder)",
    )
    return p


def _numbers(text: str, flag: str, kind=float) -> List:
    try:
        return [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text}: expected a comma list of numbers") from None


def perturbations(args) -> Dict[str, List[Tuple[float, object]]]:
    """{perturbation: [(parameter, albumentations transform or None)]}.

    IMDL-BenCo's robustness grid (JPEG, blur, noise) and a resize (down by the factor, back up to the
    original size), built in the installed albumentations' terms (data/augmentations.py): IMDL-BenCo's
    own wrappers fail or ignore their levels under albumentations 2.
    """
    from ncl_plugin.data import augmentations

    grid = {
        name: [(p, augmentations.perturbation(name, p)) for p in _numbers(text, flag, int)]
        for name, text, flag in (
            ("jpeg", args.jpeg, "--jpeg"),
            ("blur", args.blur, "--blur"),
            ("noise", args.noise, "--noise"),
        )
    }
    grid["resize"] = []
    for factor in _numbers(args.resize, "--resize"):
        if not 0 < factor <= 1:
            raise UsageError(f"--resize {args.resize}: factors must be in (0, 1]")
        grid["resize"].append(
            (factor, None if factor == 1 else augmentations.compose([augmentations.downscale(factor, p=1.0)]))
        )
    return {name: params for name, params in grid.items() if params}


def test_robust(args, model_args, model_class) -> List[Dict]:
    from ncl_plugin.data import loaders
    from ncl_plugin.engine.evaluation import evaluate, print_rows, test_datasets, write_rows
    from ncl_plugin.engine.metrics import evaluator_factory, parse_metrics
    from ncl_plugin.engine.runtime import build_model, is_main, setup

    device = setup(args)
    make_evaluators = evaluator_factory(parse_metrics(args.metrics))
    path = best_checkpoint(args.checkpoint)
    grid = perturbations(args)
    model, unwrapped = build_model(model_class, args, model_args, device)
    load_weights(unwrapped, path, args.trust_checkpoint)
    post = loaders.post_function(args.model)
    rows = []
    for name, params in grid.items():
        for param, transform in params:
            datasets = test_datasets(args, post, transform)
            test_loaders = {k: loaders.test_loader(ds, args, args.distributed) for k, ds in datasets.items()}
            with progress_session(enabled=is_main()) as progress:
                results = evaluate(model, test_loaders, make_evaluators, device, 0, args, progress=progress)
            for test_set, metrics in results.items():
                rows.append(
                    {
                        "perturbation": name,
                        "parameter": param,
                        "test set": test_set,
                        **imdlbenco_line.computed_in(args.precision),
                    }
                    | metrics
                )
    if is_main():
        for name in grid:
            print_rows(
                [r for r in rows if r["perturbation"] == name],
                f"{name} ({os.path.basename(path)})",
                ["parameter", "test set"],
            )
        json_path, csv_path = write_rows(rows, results_stem(args, "robustness"))
        say(f"Wrote {json_path} and {csv_path}")
    return rows


def main(argv: List[str]) -> int:
    args, model_args, model_class = flags.parse_command(parser(), argv, from_checkpoint=True)
    best_checkpoint(args.checkpoint)  # a missing checkpoint is named before any folder is written
    with command_log(os.path.dirname(os.path.abspath(results_stem(args, "robustness"))), NAME, args.verbose):
        test_robust(args, model_args, model_class)
    return 0

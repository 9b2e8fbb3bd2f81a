"""``benco calibrate``: pixel and image thresholds chosen on a validation list, kept beside the checkpoint."""

import os
from typing import Dict, List

from ncl_plugin.commands import flags
from ncl_plugin.config import Parser
from ncl_plugin.engine.checkpoints import best_checkpoint, load_weights
from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import command_log, progress_session, say

NAME = "calibrate"
SUMMARY = "choose the pixel and image thresholds on a validation list, for test and predict"
TAKES_CONFIG = True


def parser() -> Parser:
    p = Parser(
        prog="benco calibrate",
        description="Choose, on a validation list, the pixel threshold that maximises IMDL-BenCo's pixel F1 and the "
        "image threshold that maximises image-level F1; record them in threshold.json (and summary.json) beside "
        "the checkpoint. benco test then reports F1 at them beside F1 at 0.5, on images they were not chosen on, "
        "and benco predict draws its overlays and verdicts with them.",
    )
    flags.common(p)
    flags.evaluation(p, test_batch_size=8)
    flags.verbose(p, "calibrate.log beside the checkpoint")
    flags.checkpoint(p, "a checkpoint file, or a training folder (the checkpoint benco predict uses: its best epoch)")
    p.add_argument(
        "--val_data_path",
        required=True,
        help="the validation list (a JsonDataset list or a Tp/ Gt/ folder), never the test list: with authentic "
        "images too for the image threshold",
    )
    return p


def calibrate(args, model_args, model_class) -> Dict:
    from ncl_plugin.data import loaders
    from ncl_plugin.engine import thresholds
    from ncl_plugin.engine.evaluation import evaluate, test_datasets
    from ncl_plugin.engine.runtime import build_model, setup, single_process

    device = setup(args)
    single_process(args, NAME)
    checkpoint = best_checkpoint(args.checkpoint)
    args.test_data_path = args.val_data_path
    datasets = test_datasets(args, loaders.post_function(args.model))
    if len(datasets) != 1:
        raise UsageError(f"--val_data_path {args.val_data_path}: give one list, not a map of {len(datasets)} test sets")
    ((name, dataset),) = datasets.items()
    loader = loaders.test_loader(dataset, args, False)
    model, unwrapped = build_model(model_class, args, model_args, device)
    load_weights(unwrapped, checkpoint, args.trust_checkpoint)
    sweep = thresholds.ThresholdSweep()
    with progress_session() as progress:
        evaluate(model, {name: loader}, lambda: [sweep], device, 0, args, progress=progress)
    if sweep.images_with_tampering == 0:
        raise UsageError(
            f"--val_data_path {args.val_data_path}: no image with tampered pixels; a pixel threshold needs some"
        )
    pixel = thresholds.best_pixel_threshold(sweep.pixel_f1)
    image = thresholds.best_image_threshold(sweep.scores, sweep.labels)
    names = thresholds.image_names(dataset)
    compared = thresholds.compare_image_scores(sweep.candidates, sweep.labels)
    entry = {
        "pixel_threshold": pixel["threshold"],
        "pixel_f1": pixel["f1"],
        "pixel_f1_at_0.5": pixel["f1_at_0.5"],
        "image_threshold": image["threshold"] if image else None,
        "image_f1": image["f1"] if image else None,
        "image_f1_at_0.5": image["f1_at_0.5"] if image else None,
        "image_score": getattr(model_args, "image_score", None),
        "image_scores": compared,
        "chosen_on": args.val_data_path,
        "tampered_images": sweep.images_with_tampering,
        "images": names,
    }
    path = thresholds.write_record(checkpoint, entry)
    say(
        f"pixel threshold {pixel['threshold']:.2f}: pixel F1 {pixel['f1']:.4f} on {name} "
        f"({sweep.images_with_tampering} tampered images; {pixel['f1_at_0.5']:.4f} at 0.5)"
    )
    if image:
        say(f"image threshold {image['threshold']:.4f}: image F1 {image['f1']:.4f} ({image['f1_at_0.5']:.4f} at 0.5)")
    else:
        say(f"no image threshold: {name} does not hold both tampered and authentic images")
    if compared:
        used = entry["image_score"]
        said = [f"{kind}{' (used)' if kind == used else ''} {v['auc']:.3f}" for kind, v in compared.items()]
        say(f"image-level AUC of each --image_score on {name}: {', '.join(said)}")
    say(f"Wrote {path} (for {os.path.basename(checkpoint)}; chosen on {len(names)} images, never to be tested on)")
    return entry


def main(argv: List[str]) -> int:
    args, model_args, model_class = flags.parse_command(parser(), argv, from_checkpoint=True)
    checkpoint = best_checkpoint(args.checkpoint)  # a missing checkpoint is named before anything is written
    with command_log(os.path.dirname(os.path.abspath(checkpoint)), NAME, args.verbose):
        calibrate(args, model_args, model_class)
    return 0

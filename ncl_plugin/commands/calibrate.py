"""``benco calibrate``: pixel and image thresholds chosen on a validation list, kept beside the checkpoint."""

import os
from typing import Dict, List

from ncl_plugin.commands import flags
from ncl_plugin.config import Parser
from ncl_plugin.engine import imdlbenco_line, thresholds
from ncl_plugin.engine.checkpoints import best_checkpoint, load_weights
from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import command_log, progress_session, say, warn

NAME = "calibrate"
SUMMARY = "choose the pixel and image thresholds on a validation list, for test and predict"
TAKES_CONFIG = True


def parser() -> Parser:
    p = Parser(
        prog="benco calibrate",
        description="Choose, on a validation list, the pixel threshold with the best IMDL-BenCo pixel F1 over the "
        "tampered images among those that flag at most --max_authentic_fpr of an authentic image's pixels, and for "
        "every image score the image threshold that maximises image-level F1; record them in threshold.json (and "
        "summary.json) beside the checkpoint. benco test then reports F1 at them beside F1 at 0.5, on images they "
        "were not chosen on, and benco predict draws its overlays and verdicts with them.",
    )
    flags.common(p)
    flags.evaluation(p, test_batch_size=8)
    flags.verbose(p, "calibrate.log beside the checkpoint")
    flags.checkpoint(p, "a checkpoint file, or a training folder (the checkpoint benco predict uses: its best epoch)")
    p.add_argument(
        "--val_data_path",
        required=True,
        help="the validation list (a JsonDataset list or a Tp/ Gt/ folder), never the test list: with authentic "
        "images too for the image threshold and to bound what the pixel threshold flags on authentic photographs",
    )
    p.add_argument(
        "--max_authentic_fpr",
        default=thresholds.MAX_AUTHENTIC_FPR,
        type=float,
        help="the share of an authentic validation image's pixels the pixel threshold may flag, on average "
        "(default %(default)s); needs authentic images on the list, else the tampered images alone choose",
    )
    return p


def calibrate(args, model_args, model_class) -> Dict:
    from ncl_plugin.data import loaders
    from ncl_plugin.engine.evaluation import evaluate, test_datasets
    from ncl_plugin.engine.runtime import build_model, setup, single_process

    if not 0 <= args.max_authentic_fpr <= 1:
        raise UsageError(f"--max_authentic_fpr {args.max_authentic_fpr}: give a share between 0 and 1, e.g. 0.05")
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
    pixel = thresholds.best_pixel_threshold(sweep.pixel_f1, sweep.authentic_fpr, args.max_authentic_fpr)
    image = thresholds.best_image_threshold(sweep.scores, sweep.labels)
    names = thresholds.image_names(dataset)
    compared = thresholds.compare_image_scores(sweep.candidates, sweep.labels)
    score = getattr(model_args, "image_score", None)
    entry = {
        "pixel_threshold": pixel["threshold"],
        "pixel_rule": pixel["rule"],
        "max_authentic_fpr": pixel["max_authentic_fpr"],
        "pixel_f1": pixel["f1"],
        "pixel_f1_at_0.5": pixel["f1_at_0.5"],
        "authentic_fpr": pixel["authentic_fpr"],
        "authentic_fpr_at_0.5": pixel["authentic_fpr_at_0.5"],
        "tampered_only": pixel["tampered_only"],
        # every threshold of the sweep, so that what another threshold flags can be read without a new pass
        "curves": {
            "threshold": [round(float(t), 4) for t in thresholds.GRID],
            "pixel_f1": [round(float(v), 6) for v in sweep.pixel_f1],
            "authentic_fpr": None if sweep.authentic_fpr is None else [round(float(v), 6) for v in sweep.authentic_fpr],
        },
        "image_threshold": image["threshold"] if image else None,
        "image_f1": image["f1"] if image else None,
        "image_f1_at_0.5": image["f1_at_0.5"] if image else None,
        "image_score": score,
        # one threshold per score, for a model whose score is the --image_score of its mask
        "image_thresholds": compared if score is not None else {},
        "image_scores": compared,
        "chosen_on": args.val_data_path,
        **imdlbenco_line.computed_in(args.precision),  # what the validation predictions were computed in
        "tampered_images": sweep.images_with_tampering,
        "authentic_images": sweep.images_without_tampering,
        "images": names,
    }
    path = thresholds.write_record(checkpoint, entry)
    said = f"pixel F1 {pixel['f1']:.4f} over {sweep.images_with_tampering} tampered images of {name}"
    if pixel["authentic_fpr"] is None:
        say(
            f"pixel threshold {pixel['threshold']:.2f}: {said} ({pixel['f1_at_0.5']:.4f} at 0.5); {name} holds no "
            f"authentic image, so what it flags on authentic photographs is not known"
        )
    else:
        say(
            f"pixel threshold {pixel['threshold']:.2f}: {said}, flags {pixel['authentic_fpr']:.1%} of the pixels of "
            f"its {sweep.images_without_tampering} authentic images (at 0.5: F1 {pixel['f1_at_0.5']:.4f}, "
            f"{pixel['authentic_fpr_at_0.5']:.1%})"
        )
        free = pixel["tampered_only"]
        if free["threshold"] != pixel["threshold"]:
            say(
                f"without the --max_authentic_fpr {args.max_authentic_fpr:g} ceiling: {free['threshold']:.2f}, "
                f"F1 {free['f1']:.4f}, flagging {free['authentic_fpr']:.1%} of an authentic image"
            )
        if not pixel["ceiling_met"]:
            warn(
                f"no threshold up to {thresholds.GRID[-1]:.2f} flags at most {args.max_authentic_fpr:.1%} of an "
                f"authentic image's pixels: the one that flags the least was chosen"
            )
    if image:
        which = f"--image_score {score}" if score else "the model's image score"
        say(
            f"image threshold ({which}) {image['threshold']:.4f}: image F1 {image['f1']:.4f} ({image['f1_at_0.5']:.4f} at 0.5)"
        )
    else:
        say(f"no image threshold: {name} does not hold both tampered and authentic images")
    if compared:
        said = [f"{kind}{' (used)' if kind == score else ''} {v['auc']:.3f}" for kind, v in compared.items()]
        say(f"image-level AUC of each --image_score on {name}: {', '.join(said)}")
        if score is not None:
            say("each score's own image threshold is recorded: predict and test use the one of the score in use")
    say(f"Wrote {path} (for {os.path.basename(checkpoint)}; chosen on {len(names)} images, never to be tested on)")
    return entry


def main(argv: List[str]) -> int:
    args, model_args, model_class = flags.parse_command(parser(), argv, from_checkpoint=True)
    checkpoint = best_checkpoint(args.checkpoint)  # a missing checkpoint is named before anything is written
    with command_log(os.path.dirname(os.path.abspath(checkpoint)), NAME, args.verbose):
        calibrate(args, model_args, model_class)
    return 0

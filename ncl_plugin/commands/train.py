"""``benco train``: any IMDL-BenCo model on IMDL-BenCo's datasets, loop and evaluators."""

import os
from typing import List

from ncl_plugin.commands import flags
from ncl_plugin.config import Parser
from ncl_plugin.engine.checkpoints import KEEP_BEST_AFTER_EPOCH
from ncl_plugin.terminal import command_log, say

NAME = "train"
SUMMARY = "train any IMDL-BenCo model (ncl, deeplabv3plus, unet, ...); no data: the synthetic quickstart"
TAKES_CONFIG = True


def parser() -> Parser:
    p = Parser(
        prog="benco train", description="Train any IMDL-BenCo model with IMDL-BenCo's loop, datasets and evaluators."
    )
    flags.common(p)
    flags.evaluation(p)
    flags.verbose(p, "train.log in --output_dir")
    p.add_argument(
        "--data_path",
        default=None,
        help="training set: a ManiDataset folder, a JsonDataset list or a BalancedDataset list (default: the embedded synthetic set)",
    )
    p.add_argument(
        "--test_data_path",
        default=None,
        help="a dataset folder, a JsonDataset list, or a JSON map {name: path} of test sets",
    )
    p.add_argument(
        "--tampered_only",
        action="store_true",
        help="train on the tampered images of a --data_path list only, as IMDL-BenCo's pixel-level protocols do "
        '(its authentic "Negative" entries are left out of training; test sets keep theirs)',
    )
    p.add_argument(
        "--if_predict_label", action="store_true", help="models that can predict a label also train that head"
    )
    p.add_argument(
        "--augment",
        default="imdlbenco",
        help="training augmentations: imdlbenco (IMDL-BenCo train.py's, with resampling, blur and JPEG), lossless (flips and quarter turns only) or none",
    )
    p.add_argument("--batch_size", default=1, type=int, help="batch size per process")
    p.add_argument("--epochs", default=200, type=int)
    p.add_argument("--test_period", default=4, type=int, help="test every N epochs (and after the last)")
    p.add_argument(
        "--save_period",
        default=25,
        type=int,
        help=f"save a checkpoint every N epochs (and the last; the best after epoch {KEEP_BEST_AFTER_EPOCH})",
    )
    p.add_argument("--log_per_epoch_count", default=20, type=int, help="TensorBoard loss points per epoch")
    p.add_argument("--find_unused_parameters", action="store_true", help="DDP's find_unused_parameters")
    p.add_argument("--accum_iter", default=16, type=int, help="gradient accumulation steps")
    p.add_argument("--weight_decay", default=0.05, type=float)
    p.add_argument("--lr", default=None, type=float, help="absolute learning rate")
    p.add_argument("--blr", default=1e-3, type=float, help="base learning rate: lr = blr * effective batch / 256")
    p.add_argument("--min_lr", default=0.0, type=float, help="floor of the cosine schedule")
    p.add_argument("--warmup_epochs", default=4, type=int)
    p.add_argument("--output_dir", default="./output_dir", help="checkpoints, log.txt, summary.json, train.log")
    p.add_argument("--log_dir", default=None, help="TensorBoard folder (default: --output_dir)")
    p.add_argument(
        "--resume", default="", help="a checkpoint to continue from, or 'auto' for the newest in --output_dir"
    )
    p.add_argument("--start_epoch", default=0, type=int)
    p.add_argument(
        "--max_nonfinite_steps",
        default=20,
        type=int,
        help="stop after this many consecutive steps with a non-finite loss (each is skipped)",
    )
    p.add_argument(
        "--synthetic_images", default=300, type=int, help="size of the embedded synthetic set used without --data_path"
    )
    p.add_argument("--synthetic_size", default=256, type=int, help="side of its images")
    p.add_argument(
        "--synthetic_post",
        default="",
        metavar="SPEC",
        help="its post-processing, as `benco synth --post` (e.g. jpeg:60-95,resize:0.5-0.9); default none",
    )
    return p


def with_default_config(argv: List[str]) -> List[str]:
    """Without data and without a config, `benco train` is the quickstart on the synthetic set."""
    given = {a.split("=")[0] for a in argv}
    if "--data_path" not in given and "--config" not in given:
        if not given & {"-h", "--help"}:
            say("No --data_path and no --config: training on the embedded synthetic set with configs/quickstart.yaml")
        return ["--config", "quickstart", *argv]
    return argv


def main(argv: List[str]) -> int:
    from ncl_plugin.engine.training import train

    args, model_args, model_class = flags.parse_command(parser(), with_default_config(argv))
    refuse_another_run(args.output_dir, args.resume)
    with command_log(args.output_dir, NAME, args.verbose):
        train(args, model_args, model_class)
    return 0


def refuse_another_run(output_dir: str, resume: str) -> None:
    """A folder that holds a run is continued (--resume) or left alone: training afresh into it would
    overwrite its checkpoints and summary and append a second epoch 0 to its log."""
    from ncl_plugin.engine.checkpoints import INTERRUPTED_NAME, list_checkpoints
    from ncl_plugin.engine.training_log import KEPT_LOG_NAME, LOG_NAME, SUMMARY_NAME
    from ncl_plugin.errors import UsageError

    if resume or not output_dir or not os.path.isdir(output_dir):
        return
    held = [
        n
        for n in (LOG_NAME, KEPT_LOG_NAME, SUMMARY_NAME, INTERRUPTED_NAME)
        if os.path.isfile(os.path.join(output_dir, n))
    ]
    held += [os.path.basename(p) for _, p in list_checkpoints(output_dir)][-1:]
    if held:
        raise UsageError(
            f"--output_dir {output_dir} holds another run ({', '.join(held)}): continue it with --resume auto, "
            f"or give another --output_dir"
        )

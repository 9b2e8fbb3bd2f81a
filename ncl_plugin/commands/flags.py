"""Flag groups that several commands share, and parsing with a --config file."""

import argparse
from typing import List

from ncl_plugin.config import parse
from ncl_plugin.engine import amp


def common(parser: argparse.ArgumentParser) -> None:
    """Flags of every command that builds a model."""
    parser.add_argument(
        "--config",
        default=None,
        help="YAML file (or a packaged config name such as quickstart) whose keys are flag names; flags given here override it",
    )
    parser.add_argument("--model", default=None, help="a name in IMDL-BenCo's MODELS, e.g. ncl, deeplabv3plus, unet")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    parser.add_argument(
        "--image_size", default=512, type=int, help="side of the square the images are resized or padded to"
    )
    parser.add_argument("--if_padding", action="store_true", help="zero-pad images to --image_size")
    parser.add_argument(
        "--if_resizing", action="store_true", help="resize images to --image_size (the default when neither is given)"
    )
    parser.add_argument(
        "--edge_mask_width", default=None, type=int, help="also build IMDL-BenCo's edge mask of this width"
    )
    parser.add_argument(
        "--num_workers",
        default=None,
        type=int,
        help="data-loading processes per training process (default: none on 2 cores or fewer, else half the cores, at most 8)",
    )
    parser.add_argument("--pin_mem", action="store_true", help="pin loader memory (CUDA only)")
    parser.add_argument("--no_pin_mem", action="store_false", dest="pin_mem")
    parser.set_defaults(pin_mem=True)
    parser.add_argument("--seed", default=42, type=int)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument(
        "--channels_last",
        action="store_true",
        help="channels-last memory format (the quickstart's default: faster convolutions on a CPU; often faster with AMP on GPUs)",
    )
    parser.add_argument("--no_channels_last", action="store_false", dest="channels_last")
    parser.add_argument("--if_not_amp", action="store_true", help=amp.FLAG_HELP)
    parser.set_defaults(channels_last=False)
    parser.add_argument(
        "--trust_checkpoint",
        action="store_true",
        help="allow a full unpickle of a checkpoint that is not plain tensors (runs code from the file)",
    )


def verbose(parser: argparse.ArgumentParser, log: str) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help=f"also show in the terminal what IMDL-BenCo prints (it always goes to {log})",
    )


def evaluation(parser: argparse.ArgumentParser, test_batch_size: int = 2) -> None:
    """Flags of every command that runs IMDL-BenCo's test loop."""
    parser.add_argument("--test_batch_size", default=test_batch_size, type=int)
    parser.add_argument(
        "--metrics",
        default="pixel-f1",
        help="comma list of pixel-f1 (IMDL-BenCo's fixed 0.5 threshold: the one to cite), pixel-f1-best (each image's best threshold, an upper bound), pixel-auc, pixel-iou, pixel-acc, image-f1, image-auc, image-acc (image-level: the test set needs authentic images)",
    )
    parser.add_argument("--no_model_eval", action="store_true", help="do not call model.eval() before testing")
    parser.add_argument("--dist_url", default="env://", help="url used to set up distributed runs")
    parser.add_argument(
        "--skip_bad_samples",
        action="store_true",
        help="leave out missing, unreadable or mismatched images and masks (counted and reported) instead of stopping",
    )
    parser.add_argument(
        "--pair_by_order",
        action="store_true",
        help="a Tp/ Gt/ folder whose masks are not named after their images: pair the n-th file of Tp/ with the "
        "n-th of Gt/, both in sorted order (IMDL-BenCo's ManiDataset rule; by default a folder pairs by name)",
    )


def checkpoint(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--checkpoint", "--checkpoint_path", dest="checkpoint", required=True, help=what)


def parse_command(parser: argparse.ArgumentParser, argv: List[str], from_checkpoint: bool = False):
    """(args, model_args, model_class); with ``from_checkpoint``, the model and its flags default to the checkpoint's."""
    from ncl_plugin.commands import config_keys

    return parse(parser, argv, config_keys(), inherit=_inherit_from_checkpoint if from_checkpoint else None)


def _inherit_from_checkpoint(early):
    from ncl_plugin.engine.checkpoints import checkpoint_defaults

    return checkpoint_defaults(early.checkpoint, early.trust_checkpoint) if early.checkpoint else (None, {})

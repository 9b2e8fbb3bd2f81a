"""``benco``: IMDL-BenCo's command, extended with train, test, test-robust, complexity, predict and synth.

``benco init``, ``benco env`` and ``benco -v`` are handed to IMDL-BenCo's own
CLI unchanged. ``python -m ncl_plugin`` takes the same arguments (and is what
torchrun runs: ``torchrun --nproc_per_node=N -m ncl_plugin train ...``).
"""
import argparse
import contextlib
import io
import os
import sys
import warnings
from typing import Callable, Dict, List, Optional

from .config import Parser, closest, parse
from .errors import Interrupted, ReportedError

IMDLBENCO_COMMANDS = ("init", "env", "-v", "--version")


# ---------------------------------------------------------------- flags
def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML file (or a packaged config name such as quickstart) whose keys are flag names; flags given here override it")
    parser.add_argument("--model", default=None, help="a name in IMDL-BenCo's MODELS, e.g. ncl, deeplabv3plus, unet")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    parser.add_argument("--image_size", default=512, type=int, help="side of the square the images are resized or padded to")
    parser.add_argument("--if_padding", action="store_true", help="zero-pad images to --image_size")
    parser.add_argument("--if_resizing", action="store_true", help="resize images to --image_size (the default when neither is given)")
    parser.add_argument("--edge_mask_width", default=None, type=int, help="also build IMDL-BenCo's edge mask of this width")
    parser.add_argument("--num_workers", default=None, type=int, help="data-loading processes per training process (default: half the cores, 1 to 8)")
    parser.add_argument("--pin_mem", action="store_true", help="pin loader memory (CUDA only)")
    parser.add_argument("--no_pin_mem", action="store_false", dest="pin_mem")
    parser.set_defaults(pin_mem=True)
    parser.add_argument("--seed", default=42, type=int)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("--channels_last", action="store_true", help="channels-last memory format (often faster with AMP on GPUs)")
    parser.add_argument("--trust_checkpoint", action="store_true", help="allow a full unpickle of a checkpoint that is not plain tensors (runs code from the file)")


def _evaluation(parser: argparse.ArgumentParser, test_batch_size: int = 2) -> None:
    parser.add_argument("--test_batch_size", default=test_batch_size, type=int)
    parser.add_argument("--metrics", default="pixel-f1", help="comma list of pixel-f1 (IMDL-BenCo's fixed 0.5 threshold: the one to cite), pixel-f1-best (each image's best threshold, an upper bound), pixel-auc, pixel-iou, pixel-acc, image-f1, image-auc, image-acc (image-level: the test set needs authentic images)")
    parser.add_argument("--no_model_eval", action="store_true", help="do not call model.eval() before testing")
    parser.add_argument("--if_not_amp", action="store_true", help="no automatic mixed precision (always off on CPU)")
    parser.add_argument("--dist_url", default="env://", help="url used to set up distributed runs")
    parser.add_argument("--skip_bad_samples", action="store_true", help="leave out missing, unreadable or mismatched images and masks (counted and reported) instead of stopping")


def train_parser() -> argparse.ArgumentParser:
    p = Parser(prog="benco train", description="Train any IMDL-BenCo model with IMDL-BenCo's loop, datasets and evaluators.")
    _common(p)
    _evaluation(p)
    p.add_argument("--data_path", default=None, help="training set: a ManiDataset folder, a JsonDataset list or a BalancedDataset list (default: the embedded synthetic set)")
    p.add_argument("--test_data_path", default=None, help="a dataset folder, or a JSON map {name: path} of test sets")
    p.add_argument("--if_predict_label", action="store_true", help="models that can predict a label also train that head")
    p.add_argument("--augment", default="imdlbenco", help="training augmentations: imdlbenco (IMDL-BenCo train.py's, with resampling, blur and JPEG), lossless (flips and quarter turns only) or none")
    p.add_argument("--batch_size", default=1, type=int, help="batch size per process")
    p.add_argument("--epochs", default=200, type=int)
    p.add_argument("--test_period", default=4, type=int, help="test every N epochs (and after the last)")
    p.add_argument("--save_period", default=25, type=int, help="save a checkpoint every N epochs (and the last; the best after epoch 20)")
    p.add_argument("--log_per_epoch_count", default=20, type=int, help="TensorBoard loss points per epoch")
    p.add_argument("--find_unused_parameters", action="store_true", help="DDP's find_unused_parameters")
    p.add_argument("--accum_iter", default=16, type=int, help="gradient accumulation steps")
    p.add_argument("--weight_decay", default=0.05, type=float)
    p.add_argument("--lr", default=None, type=float, help="absolute learning rate")
    p.add_argument("--blr", default=1e-3, type=float, help="base learning rate: lr = blr * effective batch / 256")
    p.add_argument("--min_lr", default=0.0, type=float, help="floor of the cosine schedule")
    p.add_argument("--warmup_epochs", default=4, type=int)
    p.add_argument("--output_dir", default="./output_dir", help="checkpoints, log.txt, summary.json")
    p.add_argument("--log_dir", default=None, help="TensorBoard folder (default: --output_dir)")
    p.add_argument("--resume", default="", help="a checkpoint to continue from, or 'auto' for the newest in --output_dir")
    p.add_argument("--start_epoch", default=0, type=int)
    p.add_argument("--max_nonfinite_steps", default=20, type=int, help="stop after this many consecutive steps with a non-finite loss (each is skipped)")
    p.add_argument("--synthetic_images", default=300, type=int, help="size of the embedded synthetic set used without --data_path")
    p.add_argument("--synthetic_size", default=256, type=int, help="side of its images")
    p.add_argument("--world_size", default=1, type=int, help="set by torchrun")
    p.add_argument("--local_rank", default=-1, type=int, help="set by torchrun")
    return p


def test_parser() -> argparse.ArgumentParser:
    p = Parser(prog="benco test", description="Test one checkpoint, or every checkpoint of a folder, on every test set.")
    _common(p)
    _evaluation(p)
    p.add_argument("--checkpoint", "--checkpoint_path", dest="checkpoint", required=True, help="a checkpoint file, or a folder of checkpoint-<epoch>.pth")
    p.add_argument("--test_data_path", required=True, help="a dataset folder, or a JSON map {name: path} of test sets")
    p.add_argument("--out", default=None, help="results file stem (default: test_results in the checkpoint's folder); .json and .csv are written")
    return p


def robust_parser() -> argparse.ArgumentParser:
    p = Parser(prog="benco test-robust", description="IMDL-BenCo's robustness grid plus the NCL paper's resize factors.")
    _common(p)
    _evaluation(p)
    p.add_argument("--checkpoint", "--checkpoint_path", dest="checkpoint", required=True, help="a checkpoint file, or a training folder (its best epoch)")
    p.add_argument("--test_data_path", required=True, help="a dataset folder, or a JSON map {name: path} of test sets")
    p.add_argument("--jpeg", default="50,60,70,80,90,100", help="JPEG qualities")
    p.add_argument("--blur", default="0,3,7,11,15,19,23", help="Gaussian blur kernel sizes (0: none)")
    p.add_argument("--noise", default="3,7,11,15,19,23", help="Gaussian noise variances")
    p.add_argument("--resize", default="0.78,0.25", help="resize factors (down and back up)")
    p.add_argument("--out", default=None, help="results file stem (default: robustness in the checkpoint's folder)")
    return p


def complexity_parser() -> argparse.ArgumentParser:
    p = Parser(prog="benco complexity", description="Parameters and FLOPs (fvcore), as IMDL-BenCo's test_complexity.py counts them.")
    _common(p)
    p.add_argument("--test_batch_size", default=1, type=int)
    p.add_argument("--table_depth", default=2, type=int, help="module depth of the fvcore table")
    return p


def predict_parser() -> argparse.ArgumentParser:
    p = Parser(prog="benco predict", description="Predicted masks and overlays for images of any size.")
    _common(p)
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--checkpoint", "--checkpoint_path", dest="checkpoint", required=True, help="a checkpoint file, or a training folder (its best epoch)")
    p.add_argument("--out", default="predictions", help="output folder")
    p.add_argument("--threshold", default=0.5, type=float, help="mask threshold of the overlay")
    p.add_argument("--full_resolution", action="store_true", help="predict at the image's own size (padded to a multiple of 32) instead of --image_size")
    return p


def synth_parser() -> argparse.ArgumentParser:
    p = Parser(prog="benco synth", description="Build the synthetic manipulation set (ManiDataset folders and JsonDataset lists).")
    p.add_argument("out", help="output folder")
    p.add_argument("--n", default=500, type=int, help="number of images, train and test together")
    p.add_argument("--size", default=256, type=int, help="image side, a multiple of 32")
    p.add_argument("--seed", default=0, type=int)
    p.add_argument("--test_fraction", default=0.2, type=float)
    p.add_argument("--authentic_fraction", default=0.1, type=float)
    p.add_argument("--kinds", default="splice,copymove,removal", help="comma list of the manipulations to draw from, each equally likely")
    p.add_argument("--holdout", default="test", choices=["test", "validation"],
                   help="test: hold out the test photographs; validation: never touch them, hold out some training photographs instead (for choosing settings)")
    p.add_argument("--debug", action="store_true")
    return p


def compare_parser() -> argparse.ArgumentParser:
    p = Parser(prog="benco compare", description="Runs side by side: one row per run (seeds pooled), one column per test set and metric.")
    p.add_argument("runs", nargs="+", help="benco train output folders, or benco test results (test_results.json)")
    p.add_argument("--format", default="markdown", choices=["markdown", "latex", "csv"])
    p.add_argument("--metric", default=None, help="comma list of metrics to show, e.g. pixel-F1,pixel-AUC (default: all)")
    p.add_argument("--select", default="best", choices=["best", "last"], help="which epoch of each run: best (IMDL-BenCo's rule) or last")
    p.add_argument("--out", default=None, help="also write the table to this file")
    p.add_argument("--plot", default=None, help="draw the table as grouped bars into this PNG")
    p.add_argument("--debug", action="store_true")
    return p


PARSERS: Dict[str, Callable[[], argparse.ArgumentParser]] = {
    "train": train_parser,
    "test": test_parser,
    "test-robust": robust_parser,
    "complexity": complexity_parser,
    "predict": predict_parser,
    "synth": synth_parser,
    "compare": compare_parser,
}


def config_keys() -> set:
    """Keys a --config file may hold: the flags of the commands that take one."""
    commands = ("train", "test", "test-robust", "complexity", "predict")
    return {a.dest for name in commands for a in PARSERS[name]()._actions} - {"help"}


# ---------------------------------------------------------------- commands
def _inherit_from_checkpoint(early):
    from .testing import checkpoint_defaults

    return checkpoint_defaults(early.checkpoint, early.trust_checkpoint) if early.checkpoint else (None, {})


def cmd_train(argv: List[str]) -> int:
    from .engine import train

    args, model_args, model_class = parse(train_parser(), _with_default_config(argv), config_keys())
    train(args, model_args, model_class)
    return 0


def _with_default_config(argv: List[str]) -> List[str]:
    """Without data and without a config, `benco train` is the quickstart on the synthetic set."""
    given = {a.split("=")[0] for a in argv}
    if "--data_path" not in given and "--config" not in given:
        if not given & {"-h", "--help"}:
            print("No --data_path and no --config: training on the embedded synthetic set with configs/quickstart.yaml")
        return ["--config", "quickstart", *argv]
    return argv


def cmd_test(argv: List[str]) -> int:
    from .testing import test

    test(*parse(test_parser(), argv, config_keys(), inherit=_inherit_from_checkpoint))
    return 0


def cmd_test_robust(argv: List[str]) -> int:
    from .testing import test_robust

    test_robust(*parse(robust_parser(), argv, config_keys(), inherit=_inherit_from_checkpoint))
    return 0


def cmd_complexity(argv: List[str]) -> int:
    from .testing import complexity

    complexity(*parse(complexity_parser(), argv, config_keys()))
    return 0


def cmd_predict(argv: List[str]) -> int:
    from .predict import predict

    predict(*parse(predict_parser(), argv, config_keys(), inherit=_inherit_from_checkpoint))
    return 0


def cmd_synth(argv: List[str]) -> int:
    from . import synthetic

    args = synth_parser().parse_args(argv)
    folder = synthetic.build(args.out, args.n, args.size, args.seed, args.test_fraction, args.authentic_fraction,
                             holdout=args.holdout, kinds=synthetic.parse_kinds(args.kinds))
    held = synthetic.held_split(args.holdout)
    print(
        f"Wrote {args.n} images to {folder}:\n"
        f"  ManiDataset folders  {folder / 'train'}  {folder / held} (manipulated images only)\n"
        f"  JsonDataset lists    {folder / 'train.json'}  {folder / f'{held}.json'}\n"
        f"  test-set map         {folder / f'{held}_datasets.json'}\n"
        f"  with authentic       {folder / f'{held}_with_authentic.json'} (for image-level metrics)"
    )
    return 0


def cmd_compare(argv: List[str]) -> int:
    from .report import compare

    args = compare_parser().parse_args(argv)
    metrics = [m for m in args.metric.split(",") if m] if args.metric else None
    print(compare(args.runs, args.format, metrics, args.select, args.out, args.plot), end="")
    return 0


COMMANDS: Dict[str, Callable[[List[str]], int]] = {
    "train": cmd_train,
    "test": cmd_test,
    "test-robust": cmd_test_robust,
    "complexity": cmd_complexity,
    "predict": cmd_predict,
    "synth": cmd_synth,
    "compare": cmd_compare,
}

HELP = """usage: benco <command> [flags]

IMDL-BenCo's command line, with NCL and a CPU/GPU/torchrun workflow added.

commands:
  train        train any IMDL-BenCo model (ncl, deeplabv3plus, unet, ...); no data: the synthetic quickstart
  test         test checkpoints on test sets; a table, JSON and CSV
  test-robust  IMDL-BenCo's JPEG / blur / noise grid plus resize factors
  complexity   parameters and FLOPs (fvcore)
  predict      masks and overlays for your own images
  synth        build the synthetic manipulation dataset
  compare      runs side by side: Markdown, LaTeX or CSV tables, grouped bars
  init         (IMDL-BenCo) write IMDL-BenCo's scripts into this folder
  env          (IMDL-BenCo) show environment information
  -v           (IMDL-BenCo) show IMDL-BenCo's version

`benco <command> --help` lists a command's flags; with --model it adds the model's own flags.
"""


def _delegate_to_imdlbenco(argv: List[str]) -> int:
    from IMDLBenCo.cli import main as imdlbenco_main

    saved = sys.argv
    sys.argv = ["benco", *argv]
    try:
        imdlbenco_main()
    finally:
        sys.argv = saved
    return 0


def quiet_imports() -> None:
    """IMDL-BenCo, timm and torch warn about their own deprecations at import, and IMDL-BenCo
    prints the torch version; none of it concerns the user of this command."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="HOPE YOU TO READ")
    with contextlib.redirect_stdout(io.StringIO()):
        import IMDLBenCo  # noqa: F401
        import IMDLBenCo.training_scripts.trainer  # noqa: F401


def one_line(err: Exception) -> str:
    """The message alone. A DataLoader worker's exception comes back with the worker's traceback
    folded into its text; its last line is the original message."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_imports()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP)
        return 0
    if argv[0] in IMDLBENCO_COMMANDS:
        return _delegate_to_imdlbenco(argv)
    command = argv[0]
    if command not in COMMANDS:
        print(f"benco: unknown command {command!r}{closest(command, list(COMMANDS) + ['init', 'env'])}\n\n{HELP}", file=sys.stderr)
        return 2
    debug = "--debug" in argv or os.environ.get("NCL_DEBUG") == "1"
    try:
        return COMMANDS[command](argv[1:])
    except ReportedError as err:
        if debug:
            raise
        label = "" if isinstance(err, Interrupted) else "error: "
        print(f"benco {command}: {label}{one_line(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"benco {command}: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    sys.exit(main())

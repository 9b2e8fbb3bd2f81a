"""The floor a localizer must clear: pixel F1 of marking every pixel tampered, on one test list.

    python benchmarks/all_tampered.py --config casia-cpu --list casiav1_split/test.json

A model whose threshold falls below all of its probabilities marks every pixel tampered; a threshold
chosen on validation does that when nothing the model ranks pays more. That mask's per-image pixel F1,
2 t / (1 + t) for an image whose share t of pixels is tampered, averaged over the tampered images as the
tables average pixel F1 (an authentic image has no tampered pixel to find and counts in the image-level
metrics only), is the figure a run's F1 at its validation threshold must beat to have localised
anything. The masks are read as the recipe tests them: IMDL-BenCo's dataset, resized or padded to the
config's image size, padding left out. Its pixel AUC is 0.5 whatever the list. A few seconds for
CASIA v1.0's test side on 2 CPU cores.
"""

import argparse

import torch

from ncl_plugin.commands.flags import common
from ncl_plugin.config import read_config
from ncl_plugin.data.loaders import build_test_datasets, choose_resizing
from ncl_plugin.errors import ReportedError


def tampered_share(mask: torch.Tensor, shape_mask=None) -> float:
    """(1, H, W) mask -> the share t of the image's (unpadded) pixels that are tampered; marking every pixel
    tampered then scores per-image F1 2t / (1 + t), and 0 where t is 0, as IMDL-BenCo's PixelF1 scores it."""
    valid = torch.ones_like(mask, dtype=torch.bool) if shape_mask is None else shape_mask > 0
    return float(((mask > 0.5) & valid).sum()) / float(valid.sum())


def measure(list_path: str, config: str = None) -> dict:
    """{test set: {"f1": mean over tampered images, "tampered": their count, "share": mean tampered share}}."""
    shared = argparse.ArgumentParser()
    common(shared)  # benco test's own defaults where the config leaves a key out
    values = {**vars(shared.parse_args([])), **(read_config(config) if config else {})}
    args = argparse.Namespace(**values)
    choose_resizing(args)  # resized unless padding is asked for, as benco test does
    measured = {}
    for name, dataset in build_test_datasets(list_path, args, None, flag="--list").items():
        items = (dataset[index] for index in range(len(dataset)))
        shares = [t for t in (tampered_share(item["mask"], item.get("shape_mask")) for item in items) if t]
        scores = [2 * t / (1 + t) for t in shares]
        if not scores:
            raise SystemExit(f"--list {list_path}: {name} holds no tampered image; pixel F1 has nothing to average")
        measured[name] = {"f1": sum(scores) / len(scores), "tampered": len(scores), "share": sum(shares) / len(shares)}
    return measured


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", required=True, help="a test list (JsonDataset list, folder, or test-set map)")
    parser.add_argument("--config", default=None, help="the recipe whose image size and resizing or padding "
                        "the masks are read at (e.g. casia-cpu); default: benco test's, resized to 512")
    args = parser.parse_args(argv)
    try:
        measured = measure(args.list, args.config)
    except ReportedError as err:  # a missing list or config, or a bad one: one line, as benco says it
        raise SystemExit(f"all_tampered.py: error: {err}") from None
    for name, figures in measured.items():
        print(f"{name}: every pixel tampered scores pixel-F1 {figures['f1']:.3f} over its {figures['tampered']} "
              f"tampered images (mean tampered share {figures['share']:.3f}); pixel AUC 0.5")


if __name__ == "__main__":
    main()

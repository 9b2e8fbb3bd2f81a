"""Why training from scratch stopped at the label prior: the CPU recipe, and one change at a time back.

    python benchmarks/recipe.py --out runs/recipe                    # about 70 minutes on a 2-core CPU
    python benchmarks/recipe.py --only recipe,head_prior=0.5 --seeds 0,1

Every run is `benco train --config quickstart` (NCL, the quickstart's recipe) on a
*validation* split: a synthetic set built from the training photographs only
(`benco synth --holdout validation`), scored on four of them held out. The
test photographs are never used, so the recipe was chosen without them.
Each variant undoes one element of the recipe, i.e. puts back what the
project did before:

  recipe                  configs/quickstart.yaml as shipped
  former                  the former quickstart, all of it: resnet18, 256-wide decoder, heads at 0.5,
                          IMDL-BenCo's augmentations, lr 2.5e-3, 240 training images, 6 epochs
  backbone=resnet18       the former encoder (7x7-conv stem), same epochs
  decoder_channels=256    DeepLabV3+'s 256-wide ASPP and decoder, same epochs (about 2.5x slower)
  head_prior=0.5          heads start at p = 0.5 instead of about the share of tampered pixels
  augment=imdlbenco       IMDL-BenCo train.py's augmentations (resampling, blur, JPEG) instead of lossless ones
  lr=2.5e-3               the former learning rate
  contour_weight=0        no pivot-consistent weighting: plain deep-supervised BCE (NCL's contrastive terms kept)
  train_images=240        as many training images as the former embedded set (300 images, 240 for training)
  synthetic_size=256      images generated at 256 and resized to 128 (train and validation alike)
"""
import argparse
import json
from pathlib import Path

from ncl_plugin.bench.sweep import (
    VALIDATION_IMAGES,
    add_budget_flags,
    chosen_variants,
    compare,
    resolve_budget,
    run_all,
    validation_set,
)

# name -> (flags, training images (None: all), side the images are generated at (None: the training size))
VARIANTS = {
    "recipe": ([], None, None),
    "former": (["--backbone", "resnet18", "--decoder_channels", "256", "--head_prior", "0.5", "--augment", "imdlbenco",
                "--lr", "2.5e-3", "--epochs", "6"], 240, None),
    "backbone=resnet18": (["--backbone", "resnet18"], None, None),
    "decoder_channels=256": (["--decoder_channels", "256"], None, None),
    "head_prior=0.5": (["--head_prior", "0.5"], None, None),
    "augment=imdlbenco": (["--augment", "imdlbenco"], None, None),
    "lr=2.5e-3": (["--lr", "2.5e-3"], None, None),
    "contour_weight=0": (["--contour_weight", "0"], None, None),
    "train_images=240": ([], 240, None),
    "synthetic_size=256": ([], None, 256),
}
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="comma list of variant names")
    add_budget_flags(parser)
    parser.set_defaults(seeds="0", out="runs/recipe")
    args = parser.parse_args(argv)
    if args.data_path:
        parser.error("--data_path: the recipe is measured on its own validation split")
    resolve_budget(args)
    size = args.recipe["image_size"]
    out = Path(args.out)
    names = chosen_variants(parser, args.only, VARIANTS)
    jobs = []
    for name in names:
        flags, train_images, synthetic_size = VARIANTS[name]
        folder = validation_set(out, VALIDATION_IMAGES, synthetic_size or size)
        train = folder / "train"
        if train_images:  # the first images of the same training set, scored on the same validation split
            train = folder / f"train{train_images}.json"
            train.write_text(json.dumps(json.loads((folder / "train.json").read_text())[:train_images]))
        data = ["--data_path", str(train), "--test_data_path", str(folder / "val_datasets.json")]
        jobs.append({"name": name, "model": "ncl", "flags": [*data, *flags]})
    folders = run_all(jobs, args)
    compare(folders, str(out), f"The CPU recipe and one change at a time, on the validation split (seeds {args.seeds})", by_job=True)


if __name__ == "__main__":
    main()

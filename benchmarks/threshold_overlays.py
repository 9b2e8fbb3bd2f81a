"""What `benco predict` tints at the former pixel threshold and at the one that weighs authentic photographs.

`benco calibrate` records both for a checkpoint (threshold.json): the threshold with the best pixel F1
over the tampered validation images alone (``tampered_only``, the former rule), and the best such
threshold among those that flag at most --max_authentic_fpr of an authentic validation image's pixels
(``pixel_threshold``, the rule now). This draws one authentic and one tampered photograph, the
tampered one's ground truth, and `benco predict`'s overlay at each threshold, with the share of the
photograph's pixels each tints.

    python benchmarks/threshold_overlays.py --checkpoint RUN_FOLDER --out benchmarks/results/threshold-overlays.jpg

By default the photographs are ones a user could hold, not a dataset's: an authentic photograph from
the packages the synthetic generator reads (scikit-image, scikit-learn, matplotlib) and a splice the
generator makes from two others (its ground truth known), so that the figure holds no dataset's
pixels. --authentic IMAGE and --tampered IMAGE --mask MASK draw your own instead. Seconds on 2 cores.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ncl_plugin import cli
from ncl_plugin.commands.predict import overlay
from ncl_plugin.data import synthetic
from ncl_plugin.engine.checkpoints import best_checkpoint
from ncl_plugin.engine.thresholds import read_record


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a run folder or checkpoint that benco calibrate has calibrated")
    p.add_argument("--authentic", default=None, help="an authentic photograph (default: one of the packages')")
    p.add_argument("--tampered", default=None, help="a tampered photograph (default: a splice the generator makes)")
    p.add_argument("--mask", default=None, help="--tampered's ground-truth mask (white = tampered)")
    p.add_argument("--size", type=int, default=384, help="side of the default photographs (default 384)")
    p.add_argument("--seed", type=int, default=3, help="which default photographs (default 3)")
    p.add_argument("--out", required=True, help="the figure (.jpg or .png)")
    return p.parse_args(argv)


def default_photographs(folder: Path, size: int, seed: int):
    """An authentic photograph and a splice from the generator's test photographs, saved as PNG."""
    photos = synthetic.load_photographs("test")["test"]
    rng = np.random.default_rng(seed)
    authentic = synthetic.make_sample(photos, size, rng, authentic_fraction=1.0)
    tampered = synthetic.make_sample(photos, size, rng, authentic_fraction=0.0, kinds=("splice",))
    paths = folder / "authentic.png", folder / "tampered.png", folder / "tampered_gt.png"
    Image.fromarray(authentic.image).save(paths[0])
    Image.fromarray(tampered.image).save(paths[1])
    Image.fromarray(tampered.mask.astype(np.uint8) * 255).save(paths[2])
    return paths


def probabilities(images, checkpoint: str, folder: Path):
    """`benco predict`'s probability maps of ``images``, as it writes them (0-255 PNG, read back in [0, 1])."""
    out = folder / "predicted"
    code = cli.main(["predict", *map(str, images), "--checkpoint", checkpoint, "--out", str(out), "--num_workers", "0"])
    if code != 0:
        raise SystemExit(f"benco predict failed (exit {code})")
    found = json.loads((out / "predictions.json").read_text())
    return [np.asarray(Image.open(found[str(image)]["mask"]), dtype=np.float32) / 255 for image in images]


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args = parse_args(argv)
    checkpoint = best_checkpoint(args.checkpoint)
    record = read_record(checkpoint)
    if not record or "tampered_only" not in record:
        raise SystemExit(f"{checkpoint}: no threshold.json of this version beside it; run benco calibrate first")
    former, now = record["tampered_only"]["threshold"], record["pixel_threshold"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.authentic and args.tampered and args.mask:
            authentic, tampered, mask = Path(args.authentic), Path(args.tampered), Path(args.mask)
        elif args.authentic or args.tampered or args.mask:
            raise SystemExit("give --authentic, --tampered and --mask together, or none of them")
        else:
            authentic, tampered, mask = default_photographs(folder, args.size, args.seed)
        maps = probabilities([authentic, tampered], checkpoint, folder)
        pictures = [np.asarray(Image.open(p).convert("RGB")) for p in (authentic, tampered)]
        truths = [np.zeros(pictures[0].shape[:2], bool), np.asarray(Image.open(mask).convert("L")) > 127]
    columns = [
        "photograph",
        "ground truth",
        f"former rule: {former:.2f}\n(tampered images alone)",
        f"now: {now:.2f}\n(at most {record['max_authentic_fpr']:.0%} of authentic pixels)",
    ]
    figure, axes = plt.subplots(2, 4, figsize=(12, 6.8), layout="constrained")
    for row, (name, picture, truth, probability) in enumerate(
        zip(("authentic", "tampered"), pictures, truths, maps)
    ):
        panels = [picture, truth, overlay(picture, probability, former), overlay(picture, probability, now)]
        shares = [None, truth.mean(), (probability > former).mean(), (probability > now).mean()]
        for col, (panel, share) in enumerate(zip(panels, shares)):
            axis = axes[row, col]
            axis.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1 if panel.ndim == 2 else None)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(columns[col], fontsize=10)
            if share is not None:
                axis.set_xlabel(f"{share:.0%} of its pixels {'tampered' if col == 1 else 'tinted'}", fontsize=9)
        axes[row, 0].set_ylabel(name, fontsize=10)
    figure.suptitle(
        f"benco predict's overlays (red: above the pixel threshold), checkpoint {Path(checkpoint).parent.name}/"
        f"{Path(checkpoint).name}, thresholds chosen on {Path(str(record.get('chosen_on'))).name}",
        fontsize=10,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    # photographs: as JPEG a tenth of the PNG's bytes
    jpeg = Path(args.out).suffix.lower() in (".jpg", ".jpeg")
    figure.savefig(args.out, dpi=80, **({"pil_kwargs": {"quality": 85}} if jpeg else {}))
    print(f"former threshold {former:.2f}: authentic {shares_line(maps[0], former)}, tampered {shares_line(maps[1], former)}")
    print(f"threshold now {now:.2f}: authentic {shares_line(maps[0], now)}, tampered {shares_line(maps[1], now)}")
    print(f"Wrote {args.out}")
    return 0


def shares_line(probability: np.ndarray, threshold: float) -> str:
    return f"{(probability > threshold).mean():.1%} of pixels tinted"


if __name__ == "__main__":
    sys.exit(main())

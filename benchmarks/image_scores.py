"""How an image's tampering score should come from its mask: every candidate's image-level AUC on one list.

`benco calibrate` compares the four `--image_score` choices on a validation list. This script asks the
wider question behind that choice: from the same predicted masks (`benco predict` of one checkpoint,
at the size it trained at), the image-level AUC and best image-level F1 of

  max                 the highest pixel (IMDL-BenCo's convention for models without a classifier)
  top P%              the mean of the image's top P % of pixels, P = 0.1, 1, 5, 10, 25, 50
  mean                the mean pixel probability (top 100 %)
  area > T            the share of pixels above T, T = 0.5 and the pixel thresholds 0.1 to 0.4

so that the choice is made on validation images, never on the test side.

    python benchmarks/image_scores.py --checkpoint RUN/checkpoint-11.pth --list casiav1_split/val.json

About a minute for CASIA v1.0's 275 validation images on 2 CPU cores.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from ncl_plugin.engine.thresholds import best_image_threshold

TOP_SHARES = (0.001, 0.01, 0.05, 0.10, 0.25, 0.50)
AREA_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


def candidates(probability: np.ndarray) -> dict:
    """Every candidate image score of one (H, W) probability map."""
    flat = np.sort(probability.ravel())[::-1]
    scores = {"max": float(flat[0])}
    for share in TOP_SHARES:
        k = max(1, round(len(flat) * share))
        scores[f"top {100 * share:g}%"] = float(flat[:k].mean())
    scores["mean"] = float(flat.mean())
    for t in AREA_THRESHOLDS:
        scores[f"area > {t:g}"] = float((flat > t).mean())
    return scores


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint file (or run folder) trained on real photographs")
    p.add_argument("--list", required=True, help="a JsonDataset list with tampered and authentic images (validation)")
    args = p.parse_args(argv)
    entries = json.loads(Path(args.list).read_text())
    labels = np.array([mask != "Negative" for _, mask in entries])
    if labels.all() or not labels.any():
        raise SystemExit(f"--list {args.list}: needs tampered and authentic images")
    with tempfile.TemporaryDirectory() as scratch:
        photos, out = Path(scratch) / "photos", Path(scratch) / "predictions"
        photos.mkdir()
        for image, _ in entries:
            (photos / Path(image).name).symlink_to(Path(image).resolve())
        command = [sys.executable, "-m", "ncl_plugin", "predict", str(photos), "--checkpoint", args.checkpoint,
                   "--out", str(out), "--num_workers", "0"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"benco predict failed:\n{done.stderr[-2000:]}")
        rows = [candidates(np.asarray(Image.open(out / f"{Path(image).stem}_mask.png"), np.float32) / 255)
                for image, _ in entries]  # fmt: skip
    print(f"\n{labels.sum()} tampered and {(~labels).sum()} authentic images of {args.list}; {args.checkpoint}\n")
    print("| image score | image-level AUC | best image-level F1 |")
    print("| --- | ---: | ---: |")
    for name in rows[0]:
        scores = np.array([r[name] for r in rows])
        best = best_image_threshold(torch.from_numpy(scores), torch.from_numpy(labels).long())["f1"]
        print(f"| {name} | {roc_auc_score(labels, scores):.3f} | {best:.3f} |")
    share = labels.mean()
    print(f"\n(calling every image tampered gives image-level F1 {2 * share / (1 + share):.3f})")


if __name__ == "__main__":
    main()

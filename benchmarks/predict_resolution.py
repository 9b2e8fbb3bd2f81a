"""`benco predict` at the training size (the default) against `--full_resolution`, on real photographs.

Both modes run, one after the other, on the same images of a JsonDataset list (tampered and
authentic ones), with the same checkpoint, each in a fresh process (its peak memory is its own).
For every mode it prints seconds per image (the command's own figure, model loading excluded), the
process's peak memory, and against the ground truth: mean per-image pixel-F1 at 0.5, best-threshold
F1 and AUC over the tampered images, and the share of pixels called tampered on tampered and on
authentic images (what a user sees in the overlays).

    python benchmarks/predict_resolution.py --checkpoint RUN_FOLDER --list test.json --images 40

About 2 minutes for 40 + 40 CASIA v1.0 images on 2 CPU cores.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ncl_plugin.bench.probes import image_scores

MODES = {"default (resized to the training size)": [], "--full_resolution": ["--full_resolution"]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a run folder or checkpoint trained on real photographs")
    p.add_argument("--list", required=True, help="a JsonDataset list with tampered and authentic images")
    p.add_argument("--images", type=int, default=40, help="tampered images, and as many authentic ones (default 40)")
    p.add_argument("--out", default=None, help="where the predictions go (default: a temporary folder)")
    return p.parse_args(argv)


def chosen(entries, n: int):
    tampered = [e for e in entries if e[1] != "Negative"][:n]
    authentic = [e for e in entries if e[1] == "Negative"][:n]
    return tampered, authentic


def run_predict(folder: Path, out: Path, checkpoint: str, flags) -> dict:
    """One `benco predict` process: its seconds per image and peak memory (MB)."""
    command = [sys.executable, "-m", "ncl_plugin", "predict", str(folder), "--checkpoint", checkpoint,
               "--out", str(out), "--num_workers", "0", *flags]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benco predict failed:\n{output[-2000:]}")
    each = re.search(r"([\d.]+) s an image", output)
    return {"seconds": float(each.group(1)) if each else float("nan"), "peak_mb": usage.ru_maxrss / 1024}


def scores(out: Path, tampered, authentic) -> dict:
    f1, best, auc, called_tampered, called_authentic = [], [], [], [], []
    for image, mask in tampered:
        probability = np.asarray(Image.open(out / f"{Path(image).stem}_mask.png"), dtype=np.float32) / 255
        truth = np.asarray(Image.open(mask).convert("L"), dtype=np.float32) / 255
        got = image_scores(torch.from_numpy(probability)[None], torch.from_numpy(truth)[None])
        if got is not None:
            f1.append(got[0]), best.append(got[1]), auc.append(got[2])
        called_tampered.append(float((probability > 0.5).mean()))
    for image, _ in authentic:
        probability = np.asarray(Image.open(out / f"{Path(image).stem}_mask.png"), dtype=np.float32) / 255
        called_authentic.append(float((probability > 0.5).mean()))
    return {
        "pixel_f1": float(np.mean(f1)),
        "pixel_f1_best": float(np.mean(best)),
        "pixel_auc": float(np.mean(auc)),
        "called_tampered_on_tampered": float(np.mean(called_tampered)),
        "called_tampered_on_authentic": float(np.mean(called_authentic)),
    }


def main(argv=None):
    args = parse_args(argv)
    entries = json.loads(Path(args.list).read_text())
    tampered, authentic = chosen(entries, args.images)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        photos = scratch / "photos"
        photos.mkdir()
        for image, _ in tampered + authentic:
            (photos / Path(image).name).symlink_to(Path(image).resolve())
        out_root = Path(args.out) if args.out else scratch / "predictions"
        rows = {}
        for label, flags in MODES.items():
            out = out_root / ("full" if flags else "default")
            rows[label] = {**run_predict(photos, out, args.checkpoint, flags), **scores(out, tampered, authentic)}
    print(
        f"\n{len(tampered)} tampered and {len(authentic)} authentic images of {args.list}, checkpoint {args.checkpoint}\n"
    )
    print("| mode | s / image | peak memory (MB) | pixel-F1 @0.5 | best-threshold F1 | pixel-AUC "
          "| pixels called tampered, tampered images | pixels called tampered, authentic images |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, r in rows.items():
        print(f"| {label} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {r['pixel_f1']:.3f} | {r['pixel_f1_best']:.3f} "
              f"| {r['pixel_auc']:.3f} | {100 * r['called_tampered_on_tampered']:.1f}% "
              f"| {100 * r['called_tampered_on_authentic']:.1f}% |")  # fmt: skip


if __name__ == "__main__":
    main()

"""What IMDL-BenCo's end-of-epoch TensorBoard images cost: seconds and bytes an epoch.

    python benchmarks/probes/tensorboard_images.py                      # batch 8 at 256x256, the CASIA recipe's
    python benchmarks/probes/tensorboard_images.py --batch_size 8 --size 512

IMDL-BenCo's ``train_one_epoch`` ends every epoch by logging the last batch to TensorBoard: the
images, the ground-truth masks, the predicted masks, the predictions cut at 0.5 and the model's
``visual_image`` (NCL's predicted mask again). `benco train` keeps them on tested epochs only
(``engine.training.WithoutImages``). This script makes exactly those five ``add_images`` calls for
a batch of generated photographs and masks (the embedded generator's, so that PNG compresses them as
it compresses real ones), ``--repeats`` times, and prints the median seconds and the event bytes of
one epoch's images (set them against the seconds per step `benco compare --costs` reads from a run).
"""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter


def batch(size: int, batch_size: int, folder: Path):
    """Images (B, 3, H, W) in [0, 1], masks (B, 1, H, W), predictions: the masks blurred, as probabilities."""
    from ncl_plugin.data import synthetic

    root = synthetic.build(str(folder), n=batch_size * 2, size=size, seed=0, show_progress=False)
    pairs = [p for p in json.loads((root / "train.json").read_text()) if p[1] != "Negative"][:batch_size]
    images = np.stack([cv2.imread(str(Path(root) / i))[:, :, ::-1] / 255.0 for i, _ in pairs])
    masks = np.stack([cv2.imread(str(Path(root) / m), cv2.IMREAD_GRAYSCALE) / 255.0 for _, m in pairs])
    predicted = np.stack([cv2.GaussianBlur(m, (31, 31), 8) for m in masks])
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()  # noqa: E731
    return as_tensor(images).permute(0, 3, 1, 2), as_tensor(masks)[:, None], as_tensor(predicted)[:, None]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default=256, type=int)
    parser.add_argument("--batch_size", default=8, type=int)
    parser.add_argument("--repeats", default=10, type=int)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        images, masks, predicted = batch(args.size, args.batch_size, Path(tmp) / "data")
        logs = Path(tmp) / "events"
        writer = SummaryWriter(str(logs))
        seconds = []
        for epoch in range(args.repeats):
            started = time.perf_counter()
            writer.add_images("train/image", images, epoch)
            writer.add_images("train/predict", predicted, epoch)
            writer.add_images("train/predict_thresh_0.5", (predicted > 0.5) * 1.0, epoch)
            writer.add_images("train/gt_mask", masks, epoch)
            writer.add_images("train/pred_mask", predicted, epoch)
            writer.flush()
            seconds.append(time.perf_counter() - started)
        writer.close()
        size = sum(f.stat().st_size for f in logs.iterdir())
    print(
        f"batch {args.batch_size} at {args.size}x{args.size}: {statistics.median(seconds):.2f} s "
        f"(min {min(seconds):.2f}, max {max(seconds):.2f}) and {size / args.repeats / 1e6:.2f} MB of events "
        f"an epoch, over {args.repeats} epochs"
    )


if __name__ == "__main__":
    main()

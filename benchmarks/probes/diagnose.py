"""What a trained NCL or DeepLabV3+ checkpoint has learned, head by head, where metrics alone do not say.

    python benchmarks/probes/diagnose.py runs/quickstart --data ~/.cache/ncl_plugin/<set>/test

Prints, on the tampered images of --data (a ManiDataset folder or a JsonDataset list):
  - each deep-supervision head (1/8, 1/4, 1/2, 1/1, upsampled): F1 at 0.5, best-threshold F1 and
    AUC, with BatchNorm's running statistics (as tested) and with the batch's own statistics
    (a large gap would mean the running statistics do not describe test images);
  - the final head per manipulation kind (from file names ..._splice.png etc.);
  - the probabilities on tampered and authentic pixels;
  - NCL's patch features (block 1, as the sampler pools them): the mean cosine similarity of
    tampered-tampered, tampered-authentic and authentic-authentic patch pairs of an image, i.e.
    whether the contrastive features separate the classes at all.
Per-image means over tampered images, the convention of IMDL-BenCo's pixel metrics.
"""
import argparse
import collections
import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ncl_plugin.bench.probes import image_scores, load


def patch_similarity(block1: torch.Tensor, masks: torch.Tensor, patch_size: int):
    """Mean cosine similarity of tampered-tampered, tampered-authentic and authentic-authentic patch pairs."""
    from ncl_plugin.method.sampler import TriClassPatchSampler

    sample = TriClassPatchSampler(patch_size)(block1, masks)
    pairs = collections.defaultdict(list)
    for features, tampered, authentic in zip(sample.features, sample.tampered, sample.authentic):
        if tampered.sum() < 2 or authentic.sum() < 2:
            continue
        sim = features @ features.T
        off_diagonal = ~torch.eye(len(sim), dtype=torch.bool)
        for key, rows, cols in (("t-t", tampered, tampered), ("t-a", tampered, authentic), ("a-a", authentic, authentic)):
            keep = rows[:, None] & cols[None, :] & off_diagonal
            pairs[key].append(sim[keep].mean().item())
    return pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint file, or a benco train folder (its best epoch)")
    parser.add_argument("--data", required=True, help="a ManiDataset folder or JsonDataset list to diagnose on")
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args(argv)

    from ncl_plugin.data import loaders

    model, size = load(args.checkpoint)
    # A copy whose BatchNorm layers normalise with each batch's statistics; momentum 0 keeps
    # their running statistics (those of the checkpoint) untouched.
    batch_stats = copy.deepcopy(model)
    for module in batch_stats.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.train()
            module.momentum = 0.0
    options = argparse.Namespace(if_padding=False, if_resizing=True, image_size=size, edge_mask_width=None)
    dataset = loaders.build_dataset(args.data, options, loaders.test_transform(), None, flag="--data")
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size)
    patch_size = getattr(model, "patch_size", 32)

    heads = {mode: collections.defaultdict(list) for mode in ("running", "batch")}
    kinds = collections.defaultdict(list)
    probabilities = collections.defaultdict(list)
    similarity = collections.defaultdict(list)
    with torch.no_grad():
        for batch in loader:
            for mode, net in (("running", model.net), ("batch", batch_stats.net)):
                logits, block1 = net(batch["image"])
                size_hw = batch["image"].shape[-2:]
                for stage, stage_logits in enumerate(logits):
                    prob = torch.sigmoid(F.interpolate(stage_logits.float(), size=size_hw, mode="bilinear", align_corners=False))
                    for p, m, name in zip(prob, batch["mask"], batch["name"]):
                        scores = image_scores(p, m)
                        if scores is None:
                            continue
                        heads[mode][stage].append(scores)
                        if mode == "running" and stage == len(logits) - 1:
                            kinds[Path(name).stem.split("_")[-1]].append(scores)
                            truth = m > 0.5
                            probabilities["tampered"].append(p[truth].mean().item())
                            probabilities["authentic"].append(p[~truth].mean().item())
                            probabilities["max>0.5"].append(float(p.max().item() > 0.5))
                if mode == "running":
                    for key, values in patch_similarity(block1.float(), batch["mask"], patch_size).items():
                        similarity[key] += values

    def row(label, values):
        values = np.array(values)
        print(f"{label:<26} {len(values):>5} {values[:, 0].mean():>8.3f} {values[:, 1].mean():>8.3f} {values[:, 2].mean():>8.3f}")

    names = ["1/8", "1/4", "1/2", "1/1 (pred_mask)"]
    print(f"{'head (BatchNorm stats)':<26} {'images':>5} {'F1@0.5':>8} {'F1 best':>8} {'AUC':>8}")
    for mode in ("running", "batch"):
        for stage, values in sorted(heads[mode].items()):
            row(f"{names[stage]} ({mode})", values)
    print(f"\n{'manipulation (1/1 head)':<26} {'images':>5} {'F1@0.5':>8} {'F1 best':>8} {'AUC':>8}")
    for kind, values in sorted(kinds.items()):
        row(kind, values)
    print(f"\nmean probability on tampered pixels {np.mean(probabilities['tampered']):.3f}, "
          f"on authentic pixels {np.mean(probabilities['authentic']):.3f}; "
          f"images with any pixel above 0.5: {np.mean(probabilities['max>0.5']):.0%}")
    if similarity:
        print("patch-feature cosine similarity (block 1, per image, mean): "
              + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in sorted(similarity.items()))
              + f" over {len(similarity['t-t'])} images with >= 2 tampered and >= 2 authentic patches")


if __name__ == "__main__":
    main()

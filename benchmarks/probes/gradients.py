"""Why NCL's contrastive terms cost accuracy: what each loss sends into the features it acts on, and
how much the decoder relies on those features.

    python benchmarks/probes/gradients.py runs/bench/ncl-seed0 runs/bench/deeplabv3plus-seed0 --train DIR --test DIR

For every run (a `benco train` folder; its first and last checkpoints, i.e. early and late in
training) prints, over --batches training batches (BatchNorm in training mode, as in training):
  - |dL_PC/dF| and |d(w L_NCL)/dF|: the norms of the gradients the pivot-consistent loss and the
    weighted contrastive loss send into the contrasted features F (encoder block 1 by default),
    per image, and the cosine between the two gradients (below 0: the losses pull F apart);
    for a run trained without the contrastive terms, a fresh contrastive loss (w 0.5, random
    branches) says what it would have sent;
and on the tampered images of --test (inference, running statistics):
  - pixel AUC and best-threshold F1 as trained, and with F's spatial detail removed from the
    decoder's skip input (each channel replaced by its mean over the image): the drop is how much
    the decoder uses block 1 (the encoder's own path to ASPP is left as it is).
Per-image means; the figures of a run are those of one seed.
"""
import argparse
import copy
from pathlib import Path

import numpy as np
import torch

import ncl_plugin.cli  # noqa: F401  (imports IMDL-BenCo without its version banner)
from ncl_plugin.bench.probes import image_scores


def load(checkpoint: Path):
    from ncl_plugin.config import get_model_class, model_parameters
    from ncl_plugin.engine.checkpoints import checkpoint_defaults, load_weights

    name, defaults = checkpoint_defaults(str(checkpoint))
    model_class = get_model_class(name)
    params = model_parameters(model_class)
    model = model_class(**{k: v for k, v in defaults.items() if k in params})
    load_weights(model, str(checkpoint))
    return model, defaults


def contrastive_parts(model, defaults):
    """(sampler, loss, weight, projection) of the run's model, or fresh ones for a run without them."""
    from ncl_plugin.method.losses import NCLContrastiveLoss
    from ncl_plugin.method.sampler import TriClassPatchSampler

    if getattr(model, "contrastive_loss", None) is not None:
        return model.sampler, model.contrastive_loss, model.contrast_weight, model.projection
    torch.manual_seed(0)
    loss = NCLContrastiveLoss(model.net.contrast_channels, temperature=0.1)
    return TriClassPatchSampler(model.patch_size), loss, 0.5, None


def gradients(model, defaults, loader, batches: int):
    from ncl_plugin.method.sampler import classify_patches

    sampler, contrastive, weight, projection = contrastive_parts(model, defaults)
    model.train()
    contrastive.train()
    rows = []
    for index, batch in enumerate(loader):
        if index == batches:
            break
        logits, features = model.net(batch["image"])
        mask = batch["mask"]
        classes = classify_patches(mask, model.patch_size)
        pc = model.segmentation_loss(logits, mask, classes)["loss"]
        projected = features if projection is None else projection(features)
        ncl = weight * contrastive(sampler(projected, mask, classes))["loss"]
        (g_pc,) = torch.autograd.grad(pc, features, retain_graph=True)
        (g_ncl,) = torch.autograd.grad(ncl, features, allow_unused=True)
        g_ncl = torch.zeros_like(g_pc) if g_ncl is None else g_ncl
        for a, b in zip(g_pc.flatten(1), g_ncl.flatten(1)):
            cosine = torch.nn.functional.cosine_similarity(a, b, dim=0).item() if b.norm() > 0 else float("nan")
            rows.append((a.norm().item(), b.norm().item(), cosine))
    return np.array(rows)


class WithoutSkipDetail:
    """Replaces the decoder's block-1 skip input by its per-channel spatial mean while active."""

    def __init__(self, model):
        self.module = model.net.decoder.project4
        self.handle = None

    def __enter__(self):
        self.handle = self.module.register_forward_pre_hook(
            lambda m, inputs: (inputs[0].mean(dim=(2, 3), keepdim=True).expand_as(inputs[0]),)
        )

    def __exit__(self, *exc):
        self.handle.remove()


def reliance(model, loader):
    model.eval()
    scores = {"as trained": [], "no block-1 detail": []}
    with torch.no_grad():
        for batch in loader:
            for label in scores:
                if label == "as trained":
                    probability = model(batch["image"])["pred_mask"]
                else:
                    with WithoutSkipDetail(model):
                        probability = model(batch["image"])["pred_mask"]
                for p, m in zip(probability, batch["mask"]):
                    result = image_scores(p, m)
                    if result is not None:
                        scores[label].append(result)
    return {label: np.array(values) for label, values in scores.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="benco train folders")
    parser.add_argument("--train", required=True, help="a ManiDataset folder of training images (gradients)")
    parser.add_argument("--test", required=True, help="a ManiDataset folder of test images (the decoder's reliance)")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args(argv)

    from ncl_plugin.data import loaders
    from ncl_plugin.engine.checkpoints import list_checkpoints

    torch.manual_seed(0)
    print(f"{'run':<34} {'checkpoint':<18} {'|dPC/dF|':>10} {'|dwNCL/dF|':>11} {'ratio':>7} {'cosine':>7}"
          f" | {'AUC':>6} {'-detail':>8} {'F1best':>7} {'-detail':>8}")
    for run in map(Path, args.runs):
        checkpoints = [Path(p) for _, p in list_checkpoints(str(run))]
        for checkpoint in (checkpoints[0], checkpoints[-1]) if len(checkpoints) > 1 else checkpoints:
            model, defaults = load(checkpoint)
            size = defaults.get("image_size", 512)
            options = argparse.Namespace(if_padding=False, if_resizing=True, image_size=size, edge_mask_width=None)
            train = loaders.build_dataset(args.train, options, loaders.test_transform(), None, flag="--train")
            test = loaders.build_dataset(args.test, options, loaders.test_transform(), None, flag="--test")
            train_loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True,
                                                       generator=torch.Generator().manual_seed(0))
            rows = gradients(copy.deepcopy(model), defaults, train_loader, args.batches)
            kept = reliance(model, torch.utils.data.DataLoader(test, batch_size=16))
            full, ablated = kept["as trained"], kept["no block-1 detail"]
            print(f"{run.name:<34} {checkpoint.name:<18} {rows[:, 0].mean():>10.2e} {rows[:, 1].mean():>11.2e} "
                  f"{rows[:, 1].mean() / rows[:, 0].mean():>7.2f} {np.nanmean(rows[:, 2]):>7.3f}"
                  f" | {full[:, 2].mean():>6.3f} {ablated[:, 2].mean():>8.3f} {full[:, 1].mean():>7.3f} {ablated[:, 1].mean():>8.3f}",
                  flush=True)


if __name__ == "__main__":
    main()

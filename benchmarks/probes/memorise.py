"""Which learning rate lets a zoo model learn at all: can it memorise one fixed batch?

    python benchmarks/probes/memorise.py --models IML_ViT,PSCC_Net --lrs 1e-3,1e-4,1e-5 --size 64 --steps 150

Every model is built as `benco bench` builds it (its recipe of `benco bench --list`, random
initialisation, no download) and trained on one fixed batch of manipulated images from the embedded
generator (the batch of tests/test_learning.py), with the optimiser of `benco train` (timm's AdamW,
weight decay 0.05), then evaluated on the same batch. A model that cannot overfit four images at a
learning rate will not learn the benchmark at it; the rate that memorises is the one its recipe
should carry where the shared rate does not. Prints, per model and rate, the training loss at the
start and the end and the pixel-F1 at IMDL-BenCo's fixed 0.5 threshold, after every --report steps:
in eval mode, as `benco test` scores, and with the batch's own BatchNorm statistics (what the weights
have learned, whether or not the running statistics have caught up).
"""
import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

import ncl_plugin.cli  # noqa: F401  (imports IMDL-BenCo without its version banner)


def fixed_batch(size: int, images: int, edge_mask_width):
    """``images`` manipulated images (5 to 50% tampered) as IMDL-BenCo's datasets hand them over."""
    from ncl_plugin.data import synthetic

    image, mask = synthetic.fixed_batch(size, images)
    data = {
        "image": torch.from_numpy(image),
        "mask": torch.from_numpy(mask),
        "label": torch.ones(images, dtype=torch.long),
        "shape": torch.tensor([[size, size]] * images),
        "origin_shape": torch.tensor([[size, size]] * images),
        "name": [f"memorise{i}.png" for i in range(images)],
    }
    if edge_mask_width:
        from IMDLBenCo.transforms import EdgeMaskGenerator

        edges = [EdgeMaskGenerator(edge_mask_width)(m[0])[0][0] for m in mask]
        data["edge_mask"] = torch.tensor(np.stack(edges)[:, None], dtype=torch.float32)
    return data


def pixel_f1(probabilities, masks) -> float:
    predicted = (probabilities > 0.5).float()
    hits = (predicted * masks).sum(dim=(1, 2, 3))
    return (2 * hits / (predicted.sum(dim=(1, 2, 3)) + masks.sum(dim=(1, 2, 3))).clamp(min=1e-8)).mean().item()


def evaluate(model, data) -> Tuple[float, float]:
    """Pixel-F1 on the batch as `benco test` sees it (eval mode: BatchNorm's running statistics), and
    with the batch's own statistics (train mode). They part where running statistics lag the weights:
    PSCC_Net's BatchNorm momentum is 0.01, so after 150 steps its running averages still hold a fifth
    of their initial values and eval mode reads nothing the weights have learned."""
    running = {k: v.clone() for k, v in model.named_buffers()}  # train mode updates them: put them back
    with torch.no_grad():
        model.eval()
        evaluated = pixel_f1(model(**data)["pred_mask"], data["mask"])
        model.train()
        batch_statistics = pixel_f1(model(**data)["pred_mask"], data["mask"])
    model.load_state_dict(running, strict=False)
    return evaluated, batch_statistics


def memorise(name: str, lr: float, size: int, steps: int, report: int, images: int, folder: Path):
    import timm.optim

    from ncl_plugin import zoo
    from ncl_plugin.commands import zoo_models

    os.environ.update(zoo.environment(name, folder))
    torch.manual_seed(0)
    model, _ = zoo_models.build(name, size, folder / "weights")  # adapted as benco train adapts it
    data = fixed_batch(size, images, zoo.recipe(name).edge_mask_width)
    optimizer = timm.optim.create_optimizer_v2(model, opt="adamw", lr=lr, weight_decay=0.05, betas=(0.9, 0.999))
    model.train()
    losses, started = [], time.perf_counter()
    for step in range(1, steps + 1):
        out = model(**data)
        optimizer.zero_grad()
        out["backward_loss"].backward()
        optimizer.step()
        losses.append(out["backward_loss"].item())
        if step % report == 0 or step == steps:
            f1, f1_batch = evaluate(model, data)
            print(f"  {name} lr {lr:g} step {step}: loss {np.mean(losses[-5:]):.4f} (first {np.mean(losses[:5]):.4f}), "
                  f"pixel-F1 {f1:.3f} (batch statistics {f1_batch:.3f})  [{time.perf_counter() - started:.0f} s]",
                  flush=True)
    return (np.mean(losses[:5]), np.mean(losses[-5:]), *evaluate(model, data))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="IML_ViT,PSCC_Net,Trufor,MVSSNet")
    parser.add_argument("--lrs", default="1e-3,1e-4")
    parser.add_argument("--size", type=int, default=64, help="image size (each model's legal size at least this)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--report", type=int, default=50)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from ncl_plugin import zoo

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            size = zoo.smallest_size(name, args.size)
            for lr in (float(v) for v in args.lrs.split(",")):
                print(f"{name} at {size}x{size}, lr {lr:g}:", flush=True)
                rows.append((name, size, lr, *memorise(name, lr, size, args.steps, args.report, args.images, Path(tmp))))
    print(f"\n| model | size | lr | loss, first 5 steps | loss, last 5 steps | pixel-F1 after {args.steps} steps "
          "| the same, batch statistics |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, size, lr, first, last, f1, f1_batch in rows:
        print(f"| {name} | {size} | {lr:g} | {first:.4f} | {last:.4f} | {f1:.3f} | {f1_batch:.3f} |")


if __name__ == "__main__":
    main()

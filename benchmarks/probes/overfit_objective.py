"""Can NCL's contrastive objective learn what real splices offer? Overfit a handful of real images.

    python benchmarks/probes/overfit_objective.py --data_path casiav1_split/train.json --images 8 --steps 300

NCL is built as ``--config`` builds it (casia-cpu by default: ResNet-10t, patch 16 at 256x256) and
trained on one fixed batch of ``--images`` tampered images of the list, resized as the recipe resizes
them, without augmentation, with the optimiser of `benco train` (AdamW, weight decay 0.05). Every
``--report`` steps it prints L_NCL and each term against its chance value (the loss when every
similarity is equal, for the batch's own patch counts): a term that cannot fall well below its chance
on eight images it sees every step has a wiring or capacity defect, not a data problem. Model flags
can be changed with ``--set name=value`` (e.g. ``--set pivot_norm=batch``).
"""

import argparse
import json
import time

import torch

import ncl_plugin.cli  # noqa: F401  (imports IMDL-BenCo without its version banner)
from ncl_plugin.config import model_parameters, read_config
from ncl_plugin.method.model import NCL, TERM_KEYS

LABELS = {"ncl_pn": "pn", "ncl_se_pos": "se+", "ncl_se_neg": "se-"}


def fixed_batch(data_path: str, images: int, size: int, seed: int):
    """``images`` tampered entries of a JsonDataset list (a seeded choice), as `benco train` loads them."""
    from ncl_plugin.data.loaders import build_dataset, test_transform

    entries = json.load(open(data_path, encoding="utf-8"))
    tampered = [i for i, (_, mask) in enumerate(entries) if mask != "Negative"]
    if len(tampered) < images:
        raise SystemExit(f"--data_path {data_path}: {len(tampered)} tampered images, --images asks for {images}")
    chosen = torch.randperm(len(tampered), generator=torch.Generator().manual_seed(seed))[:images]
    options = argparse.Namespace(if_padding=False, if_resizing=True, image_size=size, edge_mask_width=None)
    dataset = build_dataset(data_path, options, test_transform(), None)
    items = [dataset[tampered[i]] for i in chosen.tolist()]
    return torch.stack([x["image"] for x in items]), torch.stack([x["mask"] for x in items]).float()


def model_from(config: str, overrides):
    values = read_config(config)
    known = model_parameters(NCL)
    kwargs = {k: v for k, v in values.items() if k in known}
    for item in overrides:
        name, _, value = item.partition("=")
        if name not in known:
            raise SystemExit(f"--set {item}: {name} is not a flag of ncl")
        default = known[name].default
        kwargs[name] = type(default)(value) if default is not None and not isinstance(default, str) else value
    return NCL(**kwargs), kwargs, values


def report(step, losses, first, seconds):
    ratios = "  ".join(
        f"{LABELS[t]} {losses[t]:.3f}/{losses[t + '_chance']:.3f} = {ratio(losses, t):.2f}" for t in TERM_KEYS
    )
    return (
        f"step {step:4d}: L_NCL {losses['ncl']:.3f} ({losses['ncl'] / first:.2f} of step 1), "
        f"pc {losses['pc']:.3f}; term/chance: {ratios}  [{seconds:.0f} s]"
    )


def ratio(losses, term):
    chance = losses[f"{term}_chance"]
    return losses[term] / chance if chance else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_path", required=True, help="a JsonDataset list (benco data ... --out)")
    parser.add_argument("--config", default="casia-cpu")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--report", type=int, default=25)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a model flag")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, kwargs, config = model_from(args.config, args.set)
    image, mask = fixed_batch(args.data_path, args.images, config.get("image_size", 256), args.seed)
    changed = " ".join(args.set) or "none"
    print(f"# {args.images} images of {args.data_path}, {tuple(image.shape[-2:])}, --config {args.config}, --set {changed}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    model.train()
    start, first = time.time(), None
    for step in range(1, args.steps + 1):
        out = model(image, mask)
        optimizer.zero_grad()
        out["backward_loss"].backward()
        optimizer.step()
        losses = {k: float(v) for k, v in out["visual_loss"].items()}
        first = first or losses["ncl"]
        if step == 1 or step % args.report == 0:
            print(report(step, losses, first, time.time() - start), flush=True)
    below = {LABELS[t]: ratio(losses, t) for t in TERM_KEYS}
    print(f"# last step: term / chance {json.dumps({k: round(v, 3) for k, v in below.items()})}")


if __name__ == "__main__":
    main()

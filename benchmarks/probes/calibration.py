"""Why a model's pixel-F1 at the fixed 0.5 threshold reads (near) 0: where its probabilities sit.

    python benchmarks/probes/calibration.py runs/casia-bench/segformer-seed0 --data casiav1_split/test.json

Any model `benco test` can load (NCL, DeepLabV3+, IMDL-BenCo's zoo), on the tampered images of --data
(a folder, JsonDataset list or map, as --test_data_path): the mean probability on tampered and on
authentic pixels, the share of tampered pixels and of images with a pixel above 0.5, and pixel-F1 at
0.5 beside the F1 at the one threshold that is best over the whole set (chosen on these images, so an
upper bound, not a result). A model whose tampered pixels rank above its authentic ones but stay under
0.5 is under-confident at this budget: its fixed-threshold F1 says more about calibration than about
what it localizes.
"""
import argparse

import numpy as np
import torch

THRESHOLDS = np.linspace(0.05, 0.95, 19)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint file, or a benco train folder (its best epoch)")
    parser.add_argument("--data", required=True, help="the test set, as --test_data_path")
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args(argv)

    from ncl_plugin.commands import flags, test
    from ncl_plugin.data import loaders
    from ncl_plugin.engine.checkpoints import best_checkpoint, load_weights
    from ncl_plugin.engine.runtime import build_model

    options, model_args, model_class = flags.parse_command(
        test.parser(), ["--checkpoint", args.checkpoint, "--test_data_path", args.data, "--device", "cpu"],
        from_checkpoint=True)
    options.distributed = False
    model, _ = build_model(model_class, options, model_args, torch.device("cpu"))
    load_weights(model, best_checkpoint(args.checkpoint))
    model.eval()
    sets = loaders.build_test_datasets(args.data, options, loaders.post_function(options.model))
    tampered_p, authentic_p, crossed, hits = [], [], [], np.zeros((len(THRESHOLDS), 3))
    with torch.no_grad():
        for dataset in sets.values():
            for batch in torch.utils.data.DataLoader(dataset, batch_size=args.batch_size):
                output = model(**{k: v for k, v in batch.items() if isinstance(v, torch.Tensor)})
                for p, m in zip(output["pred_mask"].float(), batch["mask"]):
                    truth = m > 0.5
                    if not truth.any():
                        continue  # pixel metrics are over the tampered images
                    tampered_p.append(p[truth].mean().item())
                    authentic_p.append(p[~truth].mean().item())
                    crossed.append(((p > 0.5) & truth).sum().item() / truth.sum().item())
                    for i, t in enumerate(THRESHOLDS):
                        predicted = p > t
                        hits[i] += [(predicted & truth).sum().item(), predicted.sum().item(), truth.sum().item()]
    f1 = 2 * hits[:, 0] / np.maximum(hits[:, 1] + hits[:, 2], 1)  # pooled over the set's pixels
    best = int(np.argmax(f1))
    half = int(np.argmin(np.abs(THRESHOLDS - 0.5)))
    print(f"{args.checkpoint} on {args.data}: {len(tampered_p)} tampered images")
    print(f"mean probability on tampered pixels {np.mean(tampered_p):.3f}, on authentic pixels {np.mean(authentic_p):.3f}")
    print(f"tampered pixels above 0.5: {np.mean(crossed):.1%} (per-image mean)")
    print(f"pixel-F1 pooled over the set: {f1[half]:.3f} at 0.5, {f1[best]:.3f} at {THRESHOLDS[best]:.2f} (the set's best)")


if __name__ == "__main__":
    main()

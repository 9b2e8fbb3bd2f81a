"""NCL against the same network without it and IMDL-BenCo baselines, trained from scratch at an equal budget.

    python benchmarks/accuracy.py                      # about 45 minutes on a 2-core CPU
    python benchmarks/accuracy.py --models ncl,deeplabv3plus --seeds 0 --epochs 2   # a quick look
    python benchmarks/accuracy.py --backbone resnet101 --output_stride 8 --image_size 512 --batch_size 8 \\
        --epochs 200 --blr 0.0032 --data_path CASIAv2.json --test_data_path test_datasets.json --out runs/casiav2

Every run gets the same data, image size, epochs, batch, learning-rate rule
and seeds, and no pre-trained weight. Runs go through `benco train` (one
folder each, skipped when already finished, resumed when interrupted); the
table is `benco compare` over them: mean and standard deviation over seeds of
pixel F1, AUC and IoU at each run's best epoch.

Baselines by default: IMDL-BenCo's segformer, srm_segformer and
bayar_segformer (SegFormer alone, and behind its SRM and Bayar noise
extractors), each from an empty weight file, i.e. random initialisation.
Also runnable without downloads, but too slow for the CPU default (add them
with --models on a GPU): IML_ViT (no MAE weights; about 3 s per batch of 8 at
128x128 on 2 cores, 92M parameters) and PSCC_Net (about 8 s per batch).
Not runnable here: unet, resnet, swin, vit and MVSSNet download weights when
built; Mesorch and SparseViT take 512x512 inputs only; ObjectFormer's
prototypes fix its input size; MSCDI_Net's attention windows fail at 128x128;
SPAN needs its own pre-trained feature extractor; Cat_Net needs its own
config and JPEG data; MantraNet trains at about a minute per batch on a CPU.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from runs import MODEL_FLAGS, add_budget_flags, compare, run_all  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="ncl,deeplabv3plus,segformer,srm_segformer,bayar_segformer")
    add_budget_flags(parser)
    args = parser.parse_args(argv)
    jobs = []
    for model in [m for m in args.models.split(",") if m]:
        flags = MODEL_FLAGS.get(model, lambda a: [])(args)
        jobs.append({"name": model, "model": model, "flags": flags})
    folders = run_all(jobs, args)
    compare(folders, args.out, f"Accuracy at an equal budget ({args.epochs} epochs, {args.image_size}x{args.image_size}, "
                               f"batch {args.batch_size}, seeds {args.seeds}), from random initialisation")


if __name__ == "__main__":
    main()

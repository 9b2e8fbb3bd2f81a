"""NCL against the same network without it and IMDL-BenCo baselines, trained from scratch at an equal budget.

    python benchmarks/accuracy.py                      # the quickstart recipe, 3 seeds (ncl and deeplabv3plus: about 6 minutes a run on 2 CPU cores)
    python benchmarks/accuracy.py --models ncl,deeplabv3plus --seeds 0 --epochs 2   # a quick look
    python benchmarks/accuracy.py --config ncl --data_path CASIAv2.json --test_data_path test_datasets.json \\
        --out runs/casiav2                             # the paper's network at 512x512, on a GPU

Every run gets the same recipe (--config: the quickstart's by default, i.e.
the embedded set at 128x128 for 9 epochs), the same data, image size,
epochs, batch, learning rate and seeds, and no pre-trained weight; NCL and
deeplabv3plus share the recipe's network. Runs go through `benco train` (one
folder each, skipped when already finished, resumed when interrupted); the
table is `benco compare` over them: mean and standard deviation over seeds of
pixel F1 (fixed and best threshold), AUC and IoU at each run's best epoch.

Baselines by default: IMDL-BenCo's segformer, srm_segformer and
bayar_segformer. This script reproduces benchmarks/results/accuracy.* (tested
after every epoch); `benco bench` is the same runner for any model of the zoo,
with each model's offline recipe (`benco bench --list`) and a table with
parameters and seconds per step; its recipes apply here too.
"""
import argparse

from ncl_plugin.bench.sweep import add_budget_flags, compare, resolve_budget, run_all


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="ncl,deeplabv3plus,segformer,srm_segformer,bayar_segformer")
    add_budget_flags(parser)
    args = parser.parse_args(argv)
    resolve_budget(args)
    jobs = []
    for model in [m for m in args.models.split(",") if m]:
        jobs.append({"name": model, "model": model, "flags": []})
    folders = run_all(jobs, args)
    recipe = args.recipe
    compare(folders, args.out, f"Accuracy at an equal budget (--config {args.config}: {recipe.get('epochs')} epochs, "
                               f"{recipe['image_size']}x{recipe['image_size']}, batch {recipe.get('batch_size')}, "
                               f"seeds {args.seeds}), from random initialisation")


if __name__ == "__main__":
    main()

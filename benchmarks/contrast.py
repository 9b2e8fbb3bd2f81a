"""NCL's open choices, measured on the validation split: which settings of its contrastive terms help?

    python benchmarks/contrast.py --out runs/contrast                   # every variant, seed 0 (about 2 hours on 2 cores)
    python benchmarks/contrast.py --only omega=0.1,projection=mlp --seeds 0,1
    python benchmarks/contrast.py --out runs/contrast --no_train      # the table of every finished run, all seeds

Every run is `benco train --config quickstart` on the validation split of benchmarks/recipe.py
(a synthetic set built from the training photographs only, scored on four of them held out):
the test photographs are never used. Each variant changes one setting of NCL's contrastive
terms from configs/quickstart.yaml (omega 0.5, tau 0.1, 16-pixel patches, block 1, pooled patch
features, the mean pivot, no projection head, no ramp-up); `pc-only` (omega 0) and
`deeplabv3plus` (plain BCE) are the two references a setting must beat by more than the seed
spread to become NCL's default.
"""
import argparse
from pathlib import Path

from ncl_plugin.bench.sweep import (
    VALIDATION_IMAGES,
    add_budget_flags,
    chosen_variants,
    compare,
    resolve_budget,
    run_all,
    validation_set,
)

# name -> (model, flags)
VARIANTS = {
    "ncl": ("ncl", []),
    "pc-only": ("ncl", ["--contrast_weight", "0"]),
    "deeplabv3plus": ("deeplabv3plus", []),
    **{f"omega={w}": ("ncl", ["--contrast_weight", str(w)]) for w in (0.05, 0.1, 0.25, 1.0)},
    **{f"tau={t}": ("ncl", ["--temperature", str(t)]) for t in (0.05, 0.5)},
    **{f"patch_size={p}": ("ncl", ["--patch_size", str(p)]) for p in (8, 32)},
    "patch_space=cube": ("ncl", ["--patch_space", "cube"]),
    "pivot_input=each": ("ncl", ["--pivot_input", "each"]),
    "projection=mlp": ("ncl", ["--projection_head", "mlp"]),
    "rampup=300": ("ncl", ["--contrast_rampup", "300"]),  # a third of the 900 steps
    "block=2": ("ncl", ["--contrast_block", "2"]),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="comma list of variant names")
    parser.add_argument("--no_train", action="store_true",
                        help="tabulate every finished run in --out (each variant over the seeds it has); train nothing")
    add_budget_flags(parser)
    parser.set_defaults(seeds="0", out="runs/contrast")
    args = parser.parse_args(argv)
    if args.data_path:
        parser.error("--data_path: the choices are measured on the validation split")
    resolve_budget(args)
    names = chosen_variants(parser, args.only, VARIANTS)
    out = Path(args.out)
    if args.no_train:  # variants may have different seeds finished: each row is the mean over its own
        from ncl_plugin.bench.runner import finished_runs

        folders = [str(f) for n in names for f in finished_runs(out, n)]
        if not folders:
            raise SystemExit(f"--no_train: no finished run in {out}")
        compare(folders, str(out), "NCL's contrastive settings on the validation split", by_job=True)
        return
    folder = validation_set(out, VALIDATION_IMAGES, args.recipe["image_size"])
    data = ["--data_path", str(folder / "train"), "--test_data_path", str(folder / "val_datasets.json")]
    jobs = [{"name": n, "model": VARIANTS[n][0], "flags": [*data, *VARIANTS[n][1]]} for n in names]
    folders = run_all(jobs, args)
    compare(folders, str(out), f"NCL's contrastive settings on the validation split (seeds {args.seeds})", by_job=True)


if __name__ == "__main__":
    main()

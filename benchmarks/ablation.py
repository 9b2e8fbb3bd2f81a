"""Ablations of NCL: which parts matter, and the sensitivity to its four hyper-parameters.

    python benchmarks/ablation.py                      # one seed: about 100 minutes on 2 CPU cores
    python benchmarks/ablation.py --seeds 0,1,2 --only full,no_contrast,no_contour,one_branch,no_pc_weighting

Variants (each trained like benchmarks/accuracy.py trains NCL: the same recipe, --config):
  full               NCL with its defaults
  no_contrast        no contrastive terms at all (--contrast_weight 0): the pivot-consistent loss alone
  no_contour         contour patches dropped: tampered vs authentic only (--ncl_terms pn)
  one_branch         one pivot branch, se+ only (--ncl_terms pn,se_pos)
  no_pc_weighting    no pivot-consistent weighting (--contour_weight 0)
  patch_size=P, temperature=T, contrast_weight=W, contour_weight=M: one value changed at a time
"""
import argparse

from ncl_plugin.bench.sweep import add_budget_flags, compare, resolve_budget, run_all

# Around the defaults (patch 16 at 128x128 in the quickstart, tau 0.1, omega 0.5, mu 0.7); the first value of every
# sweep runs before the second ones, so that a run cut short still has one point on each side of
# the defaults it reached.
SWEEPS = {
    "contrast_weight": [1.0, 0.1],
    "temperature": [0.5, 0.05],
    "contour_weight": [0.3, 1.0],
    "patch_size": [8, 32],
}


def variants():
    out = [
        ("full", []),
        ("no_contrast", ["--contrast_weight", "0"]),
        ("no_contour", ["--ncl_terms", "pn"]),
        ("one_branch", ["--ncl_terms", "pn,se_pos"]),
        ("no_pc_weighting", ["--contour_weight", "0"]),
    ]
    for position in range(max(len(v) for v in SWEEPS.values())):
        for flag, values in SWEEPS.items():
            if position < len(values):
                out.append((f"{flag}={values[position]}", [f"--{flag}", str(values[position])]))
    return [{"name": name, "model": "ncl", "flags": flags} for name, flags in out]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="comma list of variant names to run")
    add_budget_flags(parser)
    parser.set_defaults(seeds="0", out="runs/ablation")
    args = parser.parse_args(argv)
    resolve_budget(args)
    jobs = variants()
    if args.only:
        wanted = set(args.only.split(","))
        jobs = [j for j in jobs if j["name"] in wanted]
    folders = run_all(jobs, args)
    recipe = args.recipe
    compare(folders, args.out, f"NCL ablations (--config {args.config}: {recipe.get('epochs')} epochs, "
                               f"{recipe['image_size']}x{recipe['image_size']}, seeds {args.seeds})")


if __name__ == "__main__":
    main()

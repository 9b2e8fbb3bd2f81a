"""Does the quickstart recipe learn on sets it was not chosen on?

    python benchmarks/generalization.py --out runs/generalization        # about 45 minutes on a 2-core CPU (size=256: 25 of them)

The recipe (configs/quickstart.yaml) was chosen on a validation split of the
embedded set. Here it trains, unchanged, on synthetic sets built differently
(`benco synth`), each scored on its own test photographs:

  seed=1, seed=2          the embedded set's recipe, other random draws
  size=256                images generated and trained at 256x256 (4x the pixels per step)
  kinds=copymove+removal  no splicing: only manipulations within one photograph
"""
import argparse
import subprocess
import sys
from pathlib import Path

from ncl_plugin.bench.sweep import add_budget_flags, compare, resolve_budget, run_all

SETS = {
    "seed=1": {"seed": 1},
    "seed=2": {"seed": 2},
    "size=256": {"size": 256},
    "kinds=copymove+removal": {"kinds": "copymove,removal"},
}


def build(out: Path, name: str, images: int, size: int, seed: int = 0, kinds: str = "splice,copymove,removal") -> Path:
    folder = out / "data" / name.replace("=", "-").replace(",", "+")
    if not (folder / "manifest.json").exists():
        subprocess.check_call([sys.executable, "-m", "ncl_plugin", "synth", str(folder), "--n", str(images),
                               "--size", str(size), "--seed", str(seed), "--kinds", kinds])
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="comma list of set names")
    add_budget_flags(parser)
    parser.set_defaults(seeds="0", out="runs/generalization")
    args = parser.parse_args(argv)
    if args.data_path or args.image_size:
        parser.error("the sets and their sizes are this harness's own")
    resolve_budget(args)
    out = Path(args.out)
    names = args.only.split(",") if args.only else list(SETS)
    unknown = [n for n in names if n not in SETS]
    if unknown:
        parser.error(f"--only: unknown set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    jobs = []
    for name in names:
        spec = {"size": args.recipe["image_size"], **SETS[name]}
        folder = build(out, name, args.images or args.recipe["synthetic_images"], **spec)
        flags = ["--data_path", str(folder / "train"), "--test_data_path", str(folder / "test_datasets.json"),
                 "--image_size", str(spec["size"])]
        jobs.append({"name": name, "model": "ncl", "flags": flags})
    folders = run_all(jobs, args)
    compare(folders, str(out), f"The quickstart recipe on synthetic sets it was not chosen on (training seeds {args.seeds})", by_job=True)


if __name__ == "__main__":
    main()

"""Does the embedded generator help on real photographs? Models trained on generated images only, scored on real ones.

    python benchmarks/synthetic_to_real.py --test_data_path casiav1_split/test.json --out runs/synthetic-to-real

NCL trains by the quickstart recipe (configs/quickstart.yaml) on the embedded set, as it is (`plain`) and
post-processed (`post`: JPEG 60-95 and resizing 0.5-0.9, the harder variant), and each finished run's last
checkpoint is tested, as it is, on --test_data_path (`benco test`, at the checkpoint's own image size, or
--test_image_size): the zero-real-data baseline a real-data recipe must beat. Finished runs and tests are
kept; each real list's tests and table go to `OUT/on-<list name>/`. Fine-tuning these checkpoints on real images against training from scratch, at equal steps:
data_efficiency.py --pretrained_path.

Traces closer to real splices, each measured on the real *validation* side (settings are chosen there):

    python benchmarks/synthetic_to_real.py --test_data_path casiav1_split/val.json \
        --variants jpeg,pasted-jpeg,pasted-colour,pasted-edge,pasted-all --out runs/synthetic-traces-val

`jpeg` publishes every image as JPEG 70-95; each `pasted-*` variant adds to it one change of the pasted
content (`benco synth --post`: an earlier JPEG on a shifted grid, a colour mismatch, a feathered edge),
`pasted-all` the three.
"""
import argparse
import subprocess
import sys
from pathlib import Path

from ncl_plugin.bench.sweep import add_budget_flags, chosen_variants, compare, resolve_budget, run_all

PUBLISHED = "jpeg:70-95"  # the final JPEG every trace variant shares, so each is measured against it alone
PASTED = {"jpeg": "pasted_jpeg:50-90", "colour": "pasted_colour:0.15", "edge": "pasted_edge:1.5"}
VARIANTS = {
    "plain": "",
    "post": "jpeg:60-95,resize:0.5-0.9",
    "jpeg": PUBLISHED,
    **{f"pasted-{name}": f"{step},{PUBLISHED}" for name, step in PASTED.items()},
    "pasted-all": ",".join([*PASTED.values(), PUBLISHED]),
}
METRICS = "pixel-f1,pixel-f1-best,pixel-auc,pixel-iou,image-auc"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test_image_size", type=int, default=None, help="test at this size (default: the checkpoint's)")
    parser.add_argument("--variants", default="plain,post", help=f"comma list of {', '.join(VARIANTS)}")
    add_budget_flags(parser)
    parser.set_defaults(seeds="0", out="runs/synthetic-to-real")
    args = parser.parse_args(argv)
    if not args.test_data_path or args.data_path:
        parser.error("give the real --test_data_path; the training data is the embedded set")
    real = args.test_data_path
    args.test_data_path = None  # training tests on the embedded set's own test images
    resolve_budget(args)
    out = Path(args.out)
    chosen = chosen_variants(parser, args.variants, VARIANTS, "--variants")
    jobs = [{"name": name, "model": "ncl", "flags": ["--synthetic_post", VARIANTS[name]] if VARIANTS[name] else []}
            for name in chosen]
    # one folder of tests and one table per real list (and test size): the same trained runs are scored on the
    # validation side to choose and on the test side to report
    tested = out / (f"on-{Path(real).stem}" + (f"-{args.test_image_size}" if args.test_image_size else ""))
    results = []
    for folder in map(Path, run_all(jobs, args)):
        if not (folder / "summary.json").exists():
            continue
        stem = tested / folder.name
        if not Path(f"{stem}.json").exists():
            size = ["--image_size", str(args.test_image_size)] if args.test_image_size else []
            subprocess.check_call([sys.executable, "-m", "ncl_plugin", "test", "--checkpoint", str(folder),
                                   "--test_data_path", real, "--metrics", METRICS, "--out", str(stem), *size])
        results.append(f"{stem}.json")
    compare(results, str(tested), f"Trained on generated images only, tested on {Path(real).name}", by_job=True,
            select="last")


if __name__ == "__main__":
    main()

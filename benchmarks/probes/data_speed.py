"""How fast the synthetic dataset is generated, on one CPU core.

    python benchmarks/probes/data_speed.py --n 300 --size 256

Pins itself to one core and turns OpenCV's threads off, builds the set into
a temporary folder (PNG files included) and prints images per second; the
target is at least 50 per second at 256x256. Also prints the loader workers
`benco train` uses by default on this machine.
"""
import argparse
import os
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default=300, type=int)
    parser.add_argument("--size", default=256, type=int)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import cv2

    cv2.setNumThreads(0)
    from ncl_plugin.data import synthetic
    from ncl_plugin.data.loaders import default_num_workers

    synthetic.load_photographs()  # loading the photographs once is not per-image work
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        synthetic.build(folder, n=args.n, size=args.size, seed=0, show_progress=False)
        seconds = time.perf_counter() - start
    rate = args.n / seconds
    print(f"synthetic set: {args.n} images at {args.size}x{args.size} in {seconds:.1f} s on one core: "
          f"{rate:.0f} images/s ({'ok' if rate >= 50 else 'under'} >= 50)")
    print(f"default --num_workers on this machine ({os.cpu_count()} cores): {default_num_workers()} per training process")


if __name__ == "__main__":
    main()

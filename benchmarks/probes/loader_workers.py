"""How many data-loader workers the CPU quickstart should use: seconds per training step and
per epoch for --num_workers 0, 1 and 2, measured side by side in one run.

    python benchmarks/probes/loader_workers.py                       # about 6 minutes on 2 cores
    python benchmarks/probes/loader_workers.py --workers 0,1 --repeats 3

Each measurement is one real `benco train --config quickstart` (NCL) of one epoch, so the
figures include what an epoch costs beyond its steps: starting the workers (IMDL-BenCo's loop
creates the loader's iterator, and with it the workers, at every epoch). Two regimes:

  full    the quickstart's 800 training images: 100 steps an epoch
  small   48 of them (6 steps an epoch, 8 epochs): where the worker start-up of every epoch weighs,
          as in the data-efficiency curve's smallest sets

The settings run interleaved (0 1 2 2 1 0 ...), so that each sees the same machine state; compare
the ratios within one run, not absolute times across machines. The last line names the fastest
setting per regime.
"""
import argparse

from ncl_plugin.bench.timing import compare_settings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="0,1,2", help="comma list of --num_workers values")
    parser.add_argument("--repeats", default=2, type=int, help="runs per setting and regime")
    parser.add_argument("--regimes", default="full,small")
    args = parser.parse_args(argv)
    settings = {f"--num_workers {w}": ["--num_workers", w] for w in args.workers.split(",")}
    compare_settings(settings, args.regimes.split(","), args.repeats, "workers")


if __name__ == "__main__":
    main()

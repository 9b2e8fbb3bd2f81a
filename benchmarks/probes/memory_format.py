"""Whether the CPU quickstart should train in the channels-last memory format: seconds per training
step and per epoch with --no_channels_last and --channels_last, measured side by side in one run.

    python benchmarks/probes/memory_format.py                        # about 3 minutes on 2 cores
    python benchmarks/probes/memory_format.py --repeats 3 --regimes full,small

Each measurement is one real `benco train --config quickstart` (NCL) of one epoch of the
quickstart's 800 training images (regime `full`; `small` is 8 epochs of 48 images, as in
`loader_workers.py`). The settings run interleaved (A B B A ...), so that each sees the same
machine state; compare the ratios within one run, not absolute times across machines. The
layout changes how the convolutions walk memory, not what they compute: the model's outputs
agree to float rounding (tests/test_model.py).
"""
import argparse

from ncl_plugin.bench.timing import compare_settings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", default=2, type=int, help="runs per setting and regime")
    parser.add_argument("--regimes", default="full")
    args = parser.parse_args(argv)
    settings = {"--no_channels_last": ["--no_channels_last"], "--channels_last": ["--channels_last"]}
    compare_settings(settings, args.regimes.split(","), args.repeats, "layout")


if __name__ == "__main__":
    main()

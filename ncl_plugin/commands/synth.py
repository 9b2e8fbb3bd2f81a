"""``benco synth``: the synthetic manipulation set as ManiDataset folders and JsonDataset lists."""

from typing import List

from ncl_plugin.config import Parser
from ncl_plugin.data import postprocess, synthetic

NAME = "synth"
SUMMARY = "build the synthetic manipulation dataset"
TAKES_CONFIG = False


def parser() -> Parser:
    p = Parser(
        prog="benco synth",
        description="Build the synthetic manipulation set (ManiDataset folders and JsonDataset lists).",
    )
    p.add_argument("out", help="output folder")
    p.add_argument("--n", default=500, type=int, help="number of images, train and test together")
    p.add_argument("--size", default=256, type=int, help="image side, a multiple of 32")
    p.add_argument("--seed", default=0, type=int)
    p.add_argument("--test_fraction", default=0.2, type=float)
    p.add_argument("--authentic_fraction", default=0.1, type=float)
    p.add_argument(
        "--kinds",
        default="splice,copymove,removal",
        help="comma list of the manipulations to draw from, each equally likely",
    )
    p.add_argument(
        "--holdout",
        default="test",
        choices=["test", "validation"],
        help="test: hold out the test photographs; validation: never touch them, hold out some training photographs instead (for choosing settings)",
    )
    p.add_argument(
        "--post",
        default="",
        metavar="SPEC",
        help="post-process every whole image after its manipulation, as published datasets are: a comma list of "
        "resize:LOW-HIGH (resampled down by a factor in the range and back), noise:SIGMA (Gaussian, sigma up to "
        "SIGMA), jpeg:LOW-HIGH (quality in the range, applied last), e.g. jpeg:60-95,resize:0.5-0.9,noise:2; and, "
        "first, steps on the changed region only, as real splices differ: pasted_jpeg:LOW-HIGH (an earlier JPEG on "
        "a shifted 8x8 grid), pasted_colour:GAIN (channel gains within 1 +/- GAIN), pasted_edge:SIGMA (its boundary "
        "blurred, sigma up to SIGMA)",
    )
    p.add_argument("--debug", action="store_true")
    return p


def main(argv: List[str]) -> int:
    args = parser().parse_args(argv)
    folder = synthetic.build(
        args.out,
        args.n,
        args.size,
        args.seed,
        args.test_fraction,
        args.authentic_fraction,
        holdout=args.holdout,
        kinds=synthetic.parse_kinds(args.kinds),
        post=postprocess.parse(args.post),
    )
    held = synthetic.held_split(args.holdout)
    print(
        f"Wrote {args.n} images to {folder}:\n"
        f"  ManiDataset folders  {folder / 'train'}  {folder / held} (manipulated images only)\n"
        f"  JsonDataset lists    {folder / 'train.json'}  {folder / f'{held}.json'}\n"
        f"  test-set map         {folder / f'{held}_datasets.json'}\n"
        f"  with authentic       {folder / f'{held}_with_authentic.json'} (for image-level metrics)"
    )
    return 0

"""``benco compare``: runs side by side as Markdown, LaTeX or CSV tables and grouped bars (printed to stdout)."""

from typing import List

from ncl_plugin.config import Parser

NAME = "compare"
SUMMARY = "runs side by side: Markdown, LaTeX or CSV tables, grouped bars"
TAKES_CONFIG = False


def parser() -> Parser:
    p = Parser(
        prog="benco compare",
        description="Runs side by side: one row per run (seeds pooled), one column per test set and metric.",
    )
    p.add_argument("runs", nargs="+", help="benco train output folders, or benco test results (test_results.json)")
    p.add_argument("--format", default="markdown", choices=["markdown", "latex", "csv"])
    p.add_argument(
        "--metric", default=None, help="comma list of metrics to show, e.g. pixel-F1,pixel-AUC (default: all)"
    )
    p.add_argument(
        "--select",
        default="best",
        choices=["best", "last"],
        help="which epoch of each run: best (IMDL-BenCo's rule) or last",
    )
    p.add_argument(
        "--costs",
        action="store_true",
        help="also show each row's parameters (millions) and seconds per optimiser step (median epoch of its log.txt)",
    )
    p.add_argument(
        "--objective",
        action="store_true",
        help="instead: NCL's contrastive objective per run, each term against its chance value, first and last epoch",
    )
    p.add_argument("--out", default=None, help="also write the table to this file")
    p.add_argument("--plot", default=None, help="draw the table as grouped bars into this PNG")
    p.add_argument("--debug", action="store_true")
    return p


def main(argv: List[str]) -> int:
    from ncl_plugin.bench.report import compare

    args = parser().parse_args(argv)
    if args.objective:
        from ncl_plugin.bench.objective import objective_table

        text = objective_table(args.runs)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as handle:
                handle.write(text)
        print(text, end="")
        return 0
    metrics = [m for m in args.metric.split(",") if m] if args.metric else None
    print(compare(args.runs, args.format, metrics, args.select, args.out, args.plot, costs=args.costs), end="")
    return 0

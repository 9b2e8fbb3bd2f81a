"""``benco forensichub``: ForensicHub's own training script, with NCL in its MODELS (ncl_plugin.forensichub)."""

from typing import List

NAME = "forensichub"
SUMMARY = "train with ForensicHub's own train.py and YAML, NCL registered in its MODELS"
TAKES_CONFIG = False


def parser():
    from ncl_plugin.forensichub.launcher import parser

    return parser()


def main(argv: List[str]) -> int:
    from ncl_plugin.forensichub.launcher import main

    return main(argv)

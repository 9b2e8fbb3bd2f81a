"""``python -m ncl_plugin.forensichub --config X.yaml``: what torchrun runs (``torchrun -m ncl_plugin.forensichub``)."""

import sys

from ncl_plugin.cli import main

sys.exit(main(["forensichub", *sys.argv[1:]]))

"""The public IML datasets, indexed from the way their publishers distribute them.

One module a dataset (its layout and traps in the docstring); the checks
every dataset goes through are in :mod:`.indexing`, the protocols in
:mod:`.protocols`.
"""

from ncl_plugin.datasets.casia import CASIAV1, CASIAV2
from ncl_plugin.datasets.cocoglide import COCOGLIDE
from ncl_plugin.datasets.columbia import COLUMBIA
from ncl_plugin.datasets.coverage import COVERAGE
from ncl_plugin.datasets.defacto import DEFACTO
from ncl_plugin.datasets.imd2020 import IMD2020
from ncl_plugin.datasets.nist16 import NIST16

DATASETS = {d.name: d for d in (CASIAV1, CASIAV2, COLUMBIA, COVERAGE, NIST16, IMD2020, DEFACTO, COCOGLIDE)}

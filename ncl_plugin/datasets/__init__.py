"""The public IML datasets, indexed from the way their publishers distribute them.

One module a dataset (its layout and traps in the docstring); the checks
every dataset goes through are in :mod:`.indexing`, the protocols in
:mod:`.protocols`.
"""

from .casia import CASIAV1, CASIAV2
from .cocoglide import COCOGLIDE
from .columbia import COLUMBIA
from .coverage import COVERAGE
from .defacto import DEFACTO
from .imd2020 import IMD2020
from .nist16 import NIST16

DATASETS = {d.name: d for d in (CASIAV1, CASIAV2, COLUMBIA, COVERAGE, NIST16, IMD2020, DEFACTO, COCOGLIDE)}

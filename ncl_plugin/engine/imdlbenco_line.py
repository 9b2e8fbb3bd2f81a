"""Which IMDL-BenCo computes the figures: its line, its version, and how its pixel metrics average.

IMDL-BenCo ships the same ``IMDLBenCo`` module in two distributions:

- ``imdlbenco`` (0.1.x, numpy 1): each pixel evaluator's ``batch_update``
  returns one value per image and the loop averages them over *every* test
  image, an authentic image scoring 0 in F1, IoU and AUC. IMDL-BenCo's
  published numbers were computed this way.
- ``imdlbenco13`` (0.2.x, numpy 2, the one Python 3.13 can install): the
  evaluators keep their own sums, ``batch_update`` returns None, and
  ``epoch_update`` gives the mean over the images whose mask holds tampered
  pixels only. It adds PixelAUPRC and PixelFPR.

On a test set of tampered images the two agree to the last digit; two tampered
images predicted perfectly beside two authentic ones read pixel-F1 0.5 under
the first and 1.0 under the second. This plugin's pixel metrics are means over
the tampered images under either line (:class:`ncl_plugin.engine.metrics.OverTamperedImages`),
and every summary, test result and table records the line and that convention,
so that a figure says how it was computed.
"""

import functools
from dataclasses import dataclass
from importlib import metadata
from typing import Dict, Optional

NUMPY1_LINE, NUMPY2_LINE = "imdlbenco", "imdlbenco13"
# How a pixel metric is averaged over a test set
TAMPERED_IMAGES = "tampered images"  # the mean over the images with tampered pixels
ALL_IMAGES = "all images, an authentic one at 0"  # the mean over every image, an authentic one scoring 0
# The plugin's own convention, on either line
PIXEL_MEAN = TAMPERED_IMAGES


@dataclass(frozen=True)
class Line:
    distribution: str  # NUMPY1_LINE or NUMPY2_LINE
    version: str  # the distribution's (0.2.9; IMDLBenCo.__version__ spells it 0.2.09)
    numpy: str
    albumentations: str
    keeps_sums: bool  # its pixel evaluators keep their own sums (batch_update returns None)

    @property
    def native_pixel_mean(self) -> str:
        """How IMDL-BenCo's own scripts of this line average a pixel metric."""
        return TAMPERED_IMAGES if self.keeps_sums else ALL_IMAGES

    @property
    def name(self) -> str:
        """'imdlbenco 0.1.45': what a record and a table name."""
        return f"{self.distribution} {self.version}"

    def described(self) -> str:
        """One line for a command's start and ``benco env``."""
        numpy_line = "numpy-2 line" if self.distribution == NUMPY2_LINE else "numpy-1 line"
        return (
            f"IMDL-BenCo {self.version} ({self.distribution}, the {numpy_line}; numpy {self.numpy}, "
            f"albumentations {self.albumentations}); pixel metrics: means over {PIXEL_MEAN}"
        )

    def record(self) -> Dict[str, str]:
        """What summary.json, test results and bench.json keep."""
        return {"imdlbenco": self.name, "numpy": self.numpy, "pixel_mean": PIXEL_MEAN}


def computed_in(precision: Optional[str]) -> Dict[str, Optional[str]]:
    """What a result row of benco test, test-robust or calibrate records of how its figures were computed:
    the precision its predictions ran in, then the installed line's record."""
    return {"precision": precision, **installed().record()}


def _distribution() -> str:
    """The distribution that installed the IMDLBenCo module (both names install the same one)."""
    owners = metadata.packages_distributions().get("IMDLBenCo", [])
    for name in (NUMPY2_LINE, NUMPY1_LINE):
        if any(owner.lower() == name for owner in owners):
            return name
    return NUMPY1_LINE


NOT_INSTALLED = "not installed"


def version_of(distribution: str) -> str:
    """An installed distribution's version, or NOT_INSTALLED."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


@functools.lru_cache(maxsize=None)
def installed() -> Line:
    import IMDLBenCo
    from IMDLBenCo.evaluation import PixelF1

    from ncl_plugin.engine.metrics import keeps_sums

    distribution = _distribution()
    version = version_of(distribution)
    return Line(
        distribution=distribution,
        version=str(IMDLBenCo.__version__) if version == NOT_INSTALLED else version,
        numpy=version_of("numpy"),
        albumentations=version_of("albumentations"),
        # asked of IMDL-BenCo itself: does its PixelF1 give per-image values, or keep sums?
        keeps_sums=keeps_sums(PixelF1(threshold=0.5, mode="origin")),
    )


def environment() -> str:
    """What ``benco env`` adds to IMDL-BenCo's own lines: the plugin, the line and how each averages."""
    import sys

    import ncl_plugin

    line = installed()
    forensichub = version_of("forensichub")
    return "\n".join(
        [
            f"NCL plugin: {ncl_plugin.__version__} (Python {sys.version.split()[0]})",
            line.described(),
            f"IMDL-BenCo's own train.py/test.py under this line: pixel metrics are means over {line.native_pixel_mean}",
            f"ForensicHub: {forensichub}"
            + (
                ""
                if forensichub == NOT_INSTALLED
                else " (NCL joins its MODELS by ncl_plugin.forensichub.register(); its train.py: benco forensichub)"
            ),
        ]
    )

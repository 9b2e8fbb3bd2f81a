"""COVERAGE, a copy-move dataset of similar but genuine objects (Wen et al., ICIP 2016).

Distributed on GitHub (wenbihan/coverage) as ``image/`` with 100 pairs,
``<n>.tif`` the original and ``<n>t.tif`` the forgery, and ``mask/`` with
three masks per forgery: ``<n>copy.tif`` (the source region),
``<n>paste.tif`` (where it was pasted) and ``<n>forged.tif``. The list uses
``<n>forged.tif``, as the field's Coverage results do; a forgery without it
is skipped rather than given another mask. The correction repository's
revised masks for 9 forgeries (``--corrections DIR``) replace theirs by name.
"""

import re
from pathlib import Path
from typing import Optional

from ncl_plugin.datasets.layout import (
    Dataset,
    Found,
    Options,
    Published,
    Sample,
    files_under,
    group_by,
    pair_masks,
    split_images,
)

_IMAGE = re.compile(r"^(\d+)(t?)$", re.IGNORECASE)
_MASK = re.compile(r"^(\d+)(forged|copy|paste)$", re.IGNORECASE)


def find(root: Path, options: Options) -> Found:
    found = Found()
    forged, masks = [], []
    for path in split_images(files_under(root), found):
        mask, image = _MASK.match(path.stem), _IMAGE.match(path.stem)
        if mask:
            if mask.group(2).lower() == "forged":
                masks.append(path)  # copy and paste masks describe the operation, not the test target
        elif image and image.group(2):
            forged.append(path)
        elif image:
            found.samples.append(Sample(path, tampered=False))
        else:
            found.skip(path, "not a COVERAGE name", "neither <n>.tif, <n>t.tif nor <n>forged|copy|paste.tif")
    pair_masks(
        group_by(forged, lambda p: _IMAGE.match(p.stem).group(1)),
        group_by(masks, lambda p: _MASK.match(p.stem).group(1)),
        found,
    )
    return found


def mask_key(path: Path, top: Path) -> Optional[str]:
    """The forgery number of a ``<n>forged`` mask; copy and paste masks are not the list's."""
    match = _MASK.match(path.stem)
    return match.group(1) if match and match.group(2).lower() == "forged" else None


COVERAGE = Dataset(
    name="coverage",
    title="Coverage",
    folders=("COVERAGE", "Coverage", "coverage"),
    published=Published(tampered=100, authentic=100),
    layout="image/<n>.tif, image/<n>t.tif, mask/<n>forged.tif",
    find=find,
    mask_key=mask_key,
)

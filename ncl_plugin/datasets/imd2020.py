"""IMD2020's real-life set (Novozámský, Mahdian and Saic, WACV workshops 2020).

Distributed by UTIA (Czech Academy of Sciences) as ``IMD2020/`` with one
folder per original photograph: the original ``<id>_orig.<ext>``, and the
manipulated versions found on the Internet, ``<name>.<ext>`` each with its
mask ``<name>_mask.png`` in the same folder. Extensions vary (jpg, png, jpeg);
a manipulated image is paired only with the mask in its own folder. The
correction repository's revised mask for ``z14/00030_fake`` (``--corrections
DIR``) replaces the published one.
"""

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

MASK = "_mask"


def find(root: Path, options: Options) -> Found:
    found = Found()
    manipulated, masks = [], []
    for path in split_images(files_under(root), found):
        if path.stem.endswith(MASK):
            masks.append(path)
        elif path.stem.endswith("_orig"):
            found.samples.append(Sample(path, tampered=False))
        else:
            manipulated.append(path)
    # keyed by folder and name: the same name in two folders is two images
    pair_masks(
        group_by(manipulated, lambda p: str(p.with_suffix(""))),
        group_by(masks, lambda p: str(p.with_suffix(""))[: -len(MASK)]),
        found,
    )
    return found


def mask_key(path: Path, top: Path) -> Optional[str]:
    """The image name a ``<name>_mask`` file belongs to (its folder is matched apart)."""
    return path.stem[: -len(MASK)] if path.stem.endswith(MASK) else None


IMD2020 = Dataset(
    name="imd2020",
    title="IMD2020",
    folders=("IMD2020", "imd2020", "IMD2020_Real-Life_Manipulated_Images", "IMD2020_real_life"),
    published=Published(tampered=2010, authentic=None),
    layout="<id>/<id>_orig.<ext>, <id>/<name>.<ext> with <id>/<name>_mask.png",
    find=find,
    mask_key=mask_key,
)

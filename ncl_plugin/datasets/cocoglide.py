"""CocoGlide (Guillaro, Cozzolino, Sud, Dufour and Verdoliva, TruFor, CVPR 2023): COCO regions re-drawn by GLIDE.

Distributed by GRIP (University of Naples) as ``CocoGlide.zip`` with
``fake/`` (512 inpainted 256x256 crops of MS-COCO 2017 validation images,
``glide_inpainting_val2017_<COCO id>_up.png``), ``mask/``
(``<category>_<COCO id>_mask.png``, white on black) and ``real/`` (512
crops, ``<category>_<COCO id>.png``). A fake image and its mask do not
share a name: they are paired by the COCO id, as TruFor's own test lists
pair them. Category names hold spaces (``dining table_114871_mask.png``).
Whether the zip has a top ``CocoGlide/`` folder does not matter: the
folders are found wherever they are below ROOT.
"""

import re
from pathlib import Path

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

_FAKE = re.compile(r"^glide_inpainting_val2017_(\d+)_up$")
_MASK = re.compile(r"^.+_(\d+)_mask$")
_REAL = re.compile(r"^.+_(\d+)$")


def find(root: Path, options: Options) -> Found:
    found = Found()
    fakes, masks = [], []
    for path in split_images(files_under(root), found):
        folder = path.parent.name.lower()
        if folder == "fake" and _FAKE.match(path.stem):
            fakes.append(path)
        elif folder == "mask" and _MASK.match(path.stem):
            masks.append(path)
        elif folder == "real" and _REAL.match(path.stem):
            found.samples.append(Sample(path, tampered=False))
        else:
            found.skip(
                path,
                "not a CocoGlide name",
                "fake/glide_inpainting_val2017_<id>_up, mask/<category>_<id>_mask or real/<category>_<id>",
            )
    # keyed by folder and COCO id: two copies of the set below ROOT stay apart
    pair_masks(
        group_by(fakes, lambda p: f"{p.parent.parent}/{_FAKE.match(p.stem).group(1)}"),
        group_by(masks, lambda p: f"{p.parent.parent}/{_MASK.match(p.stem).group(1)}"),
        found,
    )
    return found


COCOGLIDE = Dataset(
    name="cocoglide",
    title="CocoGlide",
    folders=("CocoGlide", "cocoglide", "COCOGLIDE"),
    published=Published(tampered=512, authentic=512),
    layout="fake/glide_inpainting_val2017_<id>_up.png, mask/<category>_<id>_mask.png, real/<category>_<id>.png",
    find=find,
)

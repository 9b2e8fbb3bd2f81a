"""DEFACTO (Mahfoudi, Tajini, Retraint, Morain-Nicolier, Dugelay and Pic, EUSIPCO 2019): manipulations of MS-COCO.

Distributed as one folder pair per part: images in ``<part>_img/img/*.tif``
and annotations in ``<part>_annotations/``, for the splicing parts
``splicing_1`` to ``splicing_7`` (about 105,000 images), ``copymove``
(about 19,000) and ``inpainting`` (about 25,000); the first release names
them ``Splicing-images-1``/``Splicing-annotations-1``, ``Copy-Move-images``,
``Inpainting-images``, and both spellings are read. The test target is
``probe_mask/<image name>.jpg`` (``.tif`` for inpainting), white on black;
its JPEG noise is thresholded at mid-grey as IMDL-BenCo reads every mask.
``donor_mask/``, ``inpaint_mask/`` and ``graph/`` describe where a region
came from: they are passed over, never used as masks. The face parts
(morphing, swapping) are not indexed. An image name (``0_000000195755``, a
running number and the COCO id) repeats across parts for different images,
so an image is paired only with the probe mask of its own part.

DEFACTO has no authentic images of its own. The field tests on a subset:
MVSS-Net's DEFACTO-12k (``DEFACTO12k-test.txt``: 2,000 copy-move, 2,000
inpainting and 2,000 splicing images, plus 6,000 authentic MS-COCO images
that are not DEFACTO's). ``--subset FILE`` keeps the images such a list
names (``img_path mask_path label`` lines, in either release's folder
names); its COCO lines are counted, not indexed.
"""

import re
from pathlib import Path
from typing import List, Optional, Set, Tuple

from ncl_plugin.datasets.layout import (
    NOT_AN_IMAGE,
    Dataset,
    Found,
    Options,
    Published,
    files_under,
    is_image,
    pair_masks,
)
from ncl_plugin.errors import UsageError

# splicing_1_img, splicing_1_annotations, copymove_img, Copy-Move-images, Splicing-annotations-2, ...
_PART = re.compile(
    r"^(splicing|copy-?move|inpainting)[_-](?:(\d+)[_-])?(img|images|annotations)(?:-(\d+))?$", re.IGNORECASE
)
_FACE = re.compile(r"^(morphing|swapping)[_-]|^reference$", re.IGNORECASE)
PROBE_MASK = "probe_mask"
NOT_TARGETS = {"donor_mask", "inpaint_mask", "graph"}
PUBLISHED = Published(tampered=105_000 + 19_000 + 25_000, authentic=None, approximate=True)
# DEFACTO-12k names the first release's folders; the list's manipulated lines each have a mask path
_SUBSET_LINE = re.compile(r"^(\S+)\s+(\S+)\s+(\d+)$")


def _part(folder: str) -> Optional[Tuple[str, str, str]]:
    """(kind, number, role) of a part folder's name, e.g. ("copymove", "", "img"); None for another folder."""
    match = _PART.match(folder)
    if match is None:
        return None
    kind, number, role, number_after = match.groups()
    role = "annotations" if role.lower() == "annotations" else "img"
    return kind.lower().replace("-", ""), number or number_after or "", role


def _locate(path: Path, root: Path) -> Optional[Tuple[str, str, List[str]]]:
    """(part, role, folders below the part folder) of a file; None outside every part."""
    folders = path.relative_to(root).parent.parts
    for depth in range(len(folders) - 1, -1, -1):
        part = _part(folders[depth])
        if part is not None:
            kind, number, role = part
            return kind + number, role, [f.lower() for f in folders[depth + 1 :]]
    return None


def _subset(path: Path) -> Tuple[Set[Tuple[str, str]], int]:
    """(part, image name) of each DEFACTO image a subset list names, and how many other lines it has."""
    if not path.is_file():
        raise UsageError(f"--subset {path}: no such file")
    wanted, others = set(), 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = _SUBSET_LINE.match(line.strip())
        if fields is None:
            raise UsageError(
                f"--subset {path}, line {number}: not 'img_path mask_path label' (MVSS-Net's list format): {line[:80]!r}"
            )
        image = Path(fields.group(1).replace("\\", "/"))
        part = next((_part(folder) for folder in reversed(image.parent.parts) if _part(folder)), None)
        if part is None:
            others += 1  # an authentic MS-COCO image, or another dataset's
            continue
        wanted.add((part[0] + part[1], image.stem))
    if not wanted:
        raise UsageError(
            f"--subset {path}: none of its lines names a DEFACTO image (e.g. .../Copy-Move-images/img/X.tif)"
        )
    return wanted, others


def find(root: Path, options: Options) -> Found:
    found = Found()
    wanted, others = _subset(options.subset) if options.subset is not None else (None, 0)
    images, masks = {}, {}
    for path in files_under(root):
        place = _locate(path, root)
        if place is None:
            face = any(_FACE.match(folder) for folder in path.relative_to(root).parent.parts)
            reason = "a face part (not indexed)" if face else "outside DEFACTO's part folders"
            found.skip(path, reason)
            continue
        part, role, below = place
        if role == "annotations" and (NOT_TARGETS & set(below)):
            continue  # donor and inpainting masks, source graphs: DEFACTO's own files, not test targets
        if not is_image(path):
            found.skip(path, NOT_AN_IMAGE)
        elif role == "img":
            images.setdefault((part, path.stem), []).append(path)
        elif PROBE_MASK in below:
            masks.setdefault((part, path.stem), []).append(path)
        else:
            found.skip(path, "not a probe mask", f"an annotation outside {PROBE_MASK}/")
    if wanted is not None:
        _keep(images, masks, wanted, others, found, options.subset)
    pair_masks({"/".join(k): v for k, v in images.items()}, {"/".join(k): v for k, v in masks.items()}, found)
    return found


def _keep(images: dict, masks: dict, wanted: set, others: int, found: Found, subset: Path) -> None:
    """Only the subset's images, and their masks; the subset's count becomes the one to check against."""
    for key in set(images) - wanted:
        del images[key]
    for key in set(masks) - wanted:
        del masks[key]
    missing = sorted(wanted - set(images))
    if missing:
        names = ", ".join("/".join(k) for k in missing[:3]) + (", ..." if len(missing) > 3 else "")
        found.warnings.append(f"DEFACTO: {len(missing)} image(s) of --subset {subset} not found below ROOT ({names})")
    if others:
        found.warnings.append(
            f"DEFACTO: {others} line(s) of --subset {subset} name no DEFACTO image (DEFACTO-12k's authentic "
            f"MS-COCO images): not in this list; index them apart if the protocol needs them"
        )
    found.published = Published(tampered=len(wanted), authentic=None)


DEFACTO = Dataset(
    name="defacto",
    title="DEFACTO",
    folders=("DEFACTO", "Defacto", "defacto"),
    published=PUBLISHED,
    layout="<part>_img/img/*.tif, <part>_annotations/probe_mask/* (splicing_1-7, copymove, inpainting); --subset LIST",
    find=find,
)

"""Columbia Uncompressed Image Splicing Detection Evaluation Dataset (Hsu and Chang, ICME 2006).

Distributed by Columbia's DVMM lab as ``4cam_auth/`` (183 authentic TIFFs)
and ``4cam_splc/`` (180 spliced TIFFs), each image named after the cameras of
its two sources (``canong3_canonxt_sub_01.tif``). The masks are colour-coded
JPEGs in ``4cam_splc/edgemask/`` (``<image name>_edgemask.jpg``): one region
red, the other green. The spliced region is the green one by default
(``--columbia_spliced red`` chooses the other); the list points to
white-on-black PNGs written from them. The authentic folder has edge masks
too: they mark regions, not tampering, and are never used.
"""

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

SUFFIX = "_edgemask"


def find(root: Path, options: Options) -> Found:
    found = Found()
    spliced, edge_masks = [], []
    for path in split_images(files_under(root), found):
        folders = {part.lower() for part in path.relative_to(root).parent.parts}
        if path.stem.endswith(SUFFIX):
            if "4cam_splc" in folders:
                edge_masks.append(path)  # the authentic images' edge masks are left out silently
        elif "4cam_splc" in folders:
            spliced.append(path)
        elif "4cam_auth" in folders:
            found.samples.append(Sample(path, tampered=False))
        else:
            found.skip(path, "outside 4cam_auth/ and 4cam_splc/")
    pair_masks(
        group_by(spliced, lambda p: p.stem),
        group_by(edge_masks, lambda p: p.stem[: -len(SUFFIX)]),
        found,
        rule=options.columbia_spliced,  # GREEN or RED, the flag's choices
    )
    return found


COLUMBIA = Dataset(
    name="columbia",
    title="Columbia",
    folders=("Columbia", "columbia", "4cam", "ColumbiaUncompressed", "Columbia Uncompressed", "authsplcuncmp"),
    published=Published(tampered=180, authentic=183),
    layout="4cam_auth/*.tif, 4cam_splc/*.tif, 4cam_splc/edgemask/<image>_edgemask.jpg (red/green)",
    find=find,
)

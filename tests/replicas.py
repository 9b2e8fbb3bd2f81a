"""Miniature replicas of the public datasets: a few tiny files named and laid out as the publishers ship them,
with each dataset's traps. Every builder returns the folder and what a correct index of it holds."""
import csv
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (48, 32)  # width, height of the replicas' images


def image(path, size=SIZE, seed=0):
    """A random RGB image (random: no two replicas' files are the same bytes unless copied)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def box_mask(size=SIZE, box=(4, 4, 20, 16)):
    """(H, W) bool with True inside ``box`` = (left, top, right, bottom)."""
    mask = np.zeros((size[1], size[0]), bool)
    left, top, right, bottom = box
    mask[top:bottom, left:right] = True
    return mask


def save_mask(path, mask, tampered=255, untouched=0):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, tampered, untouched).astype(np.uint8)).save(path)
    return path


def other_file(path, text="not an image"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def casiav2(root):
    """CASIA2.0_revised with the corrected ground truth unpacked inside it."""
    root = Path(root) / "CASIA2.0_revised"
    gt = root / "CASIA 2 Groundtruth"
    tampered, authentic, skipped = {}, [], {}
    authentic += [image(root / "Au" / "Au_ani_00001.jpg", seed=1), image(root / "Au" / "Au_sec_00002.bmp", seed=2)]
    other = other_file(root / "Au" / "Thumbs.db")
    skipped[other] = "not an image file"
    for n, folder in ((1, "Tp"), (2, "Tp"), (3, "Au")):  # Tp_ in Au/: mixed folders, the name decides
        name = f"Tp_D_NRN_S_N_ani0000{n}_sec0000{n}_0001{n}"
        tampered[image(root / folder / f"{name}.{'tif' if n == 2 else 'jpg'}", seed=10 + n)] = box_mask()
        save_mask(gt / f"{name}_gt.png", box_mask())
    authentic.append(image(root / "Tp" / "Au_nat_00003.jpg", seed=3))  # an authentic image in Tp/
    skipped[image(root / "Tp" / "Tp_S_NRN_S_N_arc00004_arc00004_00014.jpg", seed=14)] = "no mask"
    skipped[save_mask(gt / "Tp_S_NRN_S_N_arc00009_arc00009_00019_gt.png", box_mask())] = "mask without an image"
    name = "Tp_D_CRN_M_N_txt00005_txt00006_00015"  # a transposed mask
    skipped[image(root / "Tp" / f"{name}.jpg", seed=15)] = "mask size differs"
    save_mask(gt / f"{name}_gt.png", box_mask((SIZE[1], SIZE[0]), (2, 2, 10, 30)))
    name = "Tp_D_NRD_S_N_cha00006_cha00007_00016"  # a mask at half the size: --fix resize rescales it
    skipped[image(root / "Tp" / f"{name}.jpg", seed=16)] = "mask size differs"
    save_mask(gt / f"{name}_gt.png", box_mask((SIZE[0] // 2, SIZE[1] // 2), (2, 2, 10, 8)))
    name = "Tp_S_NRN_S_N_pla00007_pla00007_00017"  # an empty mask
    skipped[image(root / "Tp" / f"{name}.jpg", seed=17)] = "empty mask"
    save_mask(gt / f"{name}_gt.png", box_mask(box=(0, 0, 0, 0)))
    copy = root / "Au" / "Au_ani_00008.jpg"  # the same photograph twice
    shutil.copy(authentic[0], copy)
    skipped[copy] = "duplicate image"
    skipped[image(root / "Au" / "IMG_0001.jpg", seed=18)] = "not a CASIA name"
    return root, tampered, authentic, skipped


def casiav1(root):
    """CASIA1.0 with the ground truth kept apart (``--masks``), in CM/ and Sp/ as the repository has it."""
    root, gt = Path(root) / "CASIA1.0", Path(root) / "CASIA 1.0 groundtruth"
    tampered, authentic, skipped = {}, [], {}
    authentic.append(image(root / "Au" / "Au_ani_0001.jpg", seed=21))
    for folder, name in (("CM", "Sp_S_CND_A_pla0016_pla0016_0196"), ("Sp", "Sp_D_CND_A_pla0005_pla0023_0281")):
        tampered[image(root / "Tp" / folder / f"{name}.jpg", seed=len(tampered) + 22)] = box_mask()
        save_mask(gt / folder / f"{name}_gt.png", box_mask())
    name = "Sp_D_NRN_A_sce0011_cha0011_0542"  # one name in CM/ and in Sp/: which mask is whose cannot be told
    for folder, seed in (("CM", 24), ("Sp", 25)):
        skipped[image(root / "Tp" / folder / f"{name}.jpg", seed=seed)] = "ambiguous name"
    save_mask(gt / "Sp" / f"{name}_gt.png", box_mask())
    return root, gt, tampered, authentic, skipped


def columbia(root):
    """Columbia's uncompressed set: TIFFs, and JPEG edge masks with a red and a green region."""
    root = Path(root) / "Columbia"
    tampered, authentic, skipped = {}, [], {}
    authentic.append(image(root / "4cam_auth" / "canong3_02_sub_01.tif", seed=31))
    edge_mask(root / "4cam_auth" / "edgemask" / "canong3_02_sub_01_edgemask.jpg", green=box_mask())  # not tampering
    name = "canong3_canonxt_sub_01"
    image(root / "4cam_splc" / f"{name}.tif", seed=32)
    green = box_mask(box=(24, 0, 48, 32))  # the right half came from the second camera
    edge_mask(root / "4cam_splc" / "edgemask" / f"{name}_edgemask.jpg", green=green)
    tampered[root / "4cam_splc" / f"{name}.tif"] = green
    skipped[image(root / "4cam_splc" / "canong3_nikond70_sub_02.tif", seed=33)] = "no mask"
    skipped[other_file(root / "README.txt")] = "not an image file"
    return root, tampered, authentic, skipped


def edge_mask(path, green):
    """Red where ``green`` is False, green where it is True, saved as a JPEG (its colours blur at the border)."""
    pixels = np.zeros(green.shape + (3,), np.uint8)
    pixels[~green, 0] = 255
    pixels[green, 1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)


def coverage(root):
    """COVERAGE: <n>.tif and <n>t.tif in image/, three masks per forgery in mask/."""
    root = Path(root) / "COVERAGE"
    tampered, authentic, skipped = {}, [], {}
    for n in (1, 2):
        authentic.append(image(root / "image" / f"{n}.tif", seed=40 + n))
        forgery = image(root / "image" / f"{n}t.tif", seed=50 + n)
        save_mask(root / "mask" / f"{n}copy.tif", box_mask(box=(0, 0, 8, 8)))
        save_mask(root / "mask" / f"{n}paste.tif", box_mask(box=(30, 20, 38, 28)))
        if n == 1:
            save_mask(root / "mask" / f"{n}forged.tif", box_mask(box=(30, 20, 38, 28)))
            tampered[forgery] = box_mask(box=(30, 20, 38, 28))
        else:  # no forged mask: skipped, never given its copy or paste mask instead
            skipped[forgery] = "no mask"
    skipped[other_file(root / "image" / "Thumbs.db")] = "not an image file"
    return root, tampered, authentic, skipped


def nist16(root):
    """NC2016_Test0613: probes, masks named otherwise (black = manipulated), the reference table that links them."""
    root = Path(root) / "NIST16" / "NC2016_Test0613"
    tampered, authentic, skipped = {}, [], {}
    rows = []

    def row(probe, mask, target):
        rows.append({"TaskID": "manipulation", "ProbeFileID": Path(probe).stem, "ProbeFileName": probe,
                     "ProbeMaskFileName": mask, "DonorFileID": "", "DonorFileName": "", "DonorMaskFileName": "",
                     "IsTarget": target, "ProbePostProcessed": "", "DonorPostProcessed": ""})

    probe = image(root / "probe" / "NC2016_1187.jpg", seed=61)
    save_mask(root / "mask" / "NC2016_7342.png", box_mask(), tampered=0, untouched=255)
    tampered[probe] = box_mask()
    row("probe/NC2016_1187.jpg", "mask/NC2016_7342.png", "Y")
    row("probe/NC2016_1187.jpg", "mask/NC2016_7342.png", "Y")  # listed twice: one sample
    authentic.append(image(root / "probe" / "NC2016_2034.jpg", seed=62))
    row("probe/NC2016_2034.jpg", "", "N")
    skipped[image(root / "probe" / "NC2016_3050.jpg", seed=63)] = "no mask"
    row("probe/NC2016_3050.jpg", "mask/NC2016_0000.png", "Y")  # its mask is missing
    image(root / "world" / "NC2016_9999.jpg", seed=64)  # not a probe: not listed, not counted
    table = root / "reference" / "manipulation" / "NC2016-manipulation-ref.csv"
    table.parent.mkdir(parents=True)
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="|")
        writer.writeheader()
        writer.writerows(rows)
    return root.parent, tampered, authentic, skipped


def imd2020(root):
    """IMD2020's real-life set: a folder per original, manipulated versions beside it with <name>_mask.png."""
    root = Path(root) / "IMD2020"
    tampered, authentic, skipped = {}, [], {}
    for folder, seed in (("1a1ogs", 70), ("1a3oag", 80)):
        authentic.append(image(root / folder / f"{folder}_orig.jpg", seed=seed))
        manipulated = image(root / folder / "c8tq2j0_0.jpg", seed=seed + 1)  # one name in two folders: two images
        save_mask(root / folder / "c8tq2j0_0_mask.png", box_mask(box=(0, 0, 12, 12 if folder == "1a1ogs" else 6)))
        tampered[manipulated] = box_mask(box=(0, 0, 12, 12 if folder == "1a1ogs" else 6))
    png = image(root / "1a1ogs" / "c8tq2j0_1.png", seed=72)  # another extension
    rgb = np.repeat(box_mask()[..., None], 3, axis=2).astype(np.uint8) * 255  # an RGB mask
    Image.fromarray(rgb).save(root / "1a1ogs" / "c8tq2j0_1_mask.png")
    tampered[png] = box_mask()
    skipped[image(root / "1a3oag" / "c8tq2j0_2.jpg", seed=82)] = "no mask"
    return root, tampered, authentic, skipped


def spreadsheet(path, header, rows, formulas=()):
    """An .xlsx as the ground-truth maintainers save theirs: a header row, blank and note rows between the renames.

    ``formulas`` are (cell, formula, cached value) triples: the cell holds the formula and, as a spreadsheet
    program saves it, the value it computed (cached value None: a formula saved without its value, as
    programs that do not compute formulas write it). openpyxl writes no cached values, so they are put into
    the sheet's XML afterwards.
    """
    import openpyxl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    for cell, formula, _ in formulas:
        sheet[cell] = formula
    book.save(path)
    cached = {cell: value for cell, _, value in formulas if value is not None}
    if cached:
        _cache_values(path, cached)
    return path


def _cache_values(path, cached):
    import re
    import zipfile

    with zipfile.ZipFile(path) as book:
        parts = {name: book.read(name) for name in book.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    for cell, value in cached.items():
        sheet, count = re.subn(rf'<c r="{cell}"([^>]*)><f>(.*?)</f><v ?/>', rf'<c r="{cell}"\1 t="str"><f>\2</f><v>{value}</v>', sheet)
        assert count == 1, cell
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        for name, data in parts.items():
            book.writestr(name, data)


CASIA1_HEADER = ["Note", "Original file name", "Corrected file name", "Rename command", "Move command"]


def casiav1_as_first_distributed(root):
    """CASIA 1.0 with its images named as first published, its ground truth (masks named after the corrected
    names) beside it with the rename spreadsheet inside, as the ground-truth archive unpacks."""
    root, gt = Path(root) / "CASIA1.0", Path(root) / "CASIA 1.0 groundtruth"
    tampered, renamed, skipped = {}, {}, {}
    image(root / "Au" / "Au_ani_0001.jpg", seed=101)
    kept = "Sp_D_CND_A_pla0005_pla0023_0281"  # named right from the start
    tampered[image(root / "Tp" / "Sp" / f"{kept}.jpg", seed=102)] = box_mask()
    save_mask(gt / "Sp" / f"{kept}_gt.png", box_mask())
    renames = [  # (as first published, corrected): a class change, a source fix, the name with a dot
        ("Sp_D_NND_A_nat0054_nat0054_0189", "Sp_S_NND_A_nat0054_nat0054_0189"),
        ("Sp_D_NNN_A_sec0049_sec0049_0117", "Sp_D_NNN_A_sec0049_sec0050_0117"),
        ("Sp_S_NRD_A_ani0040_ani0054.0257", "Sp_D_NRD_A_ani0040_ani0054_0257"),
    ]
    for n, (old, new) in enumerate(renames):
        path = image(root / "Tp" / "Sp" / f"{old}.jpg", seed=110 + n)
        tampered[path] = box_mask(box=(2 + n, 2, 12 + n, 12))
        renamed[path] = new
        save_mask(gt / ("CM" if "_S_" in new else "Sp") / f"{new}_gt.png", box_mask(box=(2 + n, 2, 12 + n, 12)))
    # a rename whose corrected name is also an image here (a copy renamed by hand, the old file kept):
    # two images for one mask, both left out
    by_hand = ("Sp_S_CRN_A_arc0007_arc0005_0228", "Sp_D_CRN_A_arc0007_arc0005_0228")
    skipped[image(root / "Tp" / "CM" / f"{by_hand[0]}.jpg", seed=120)] = "ambiguous name"
    skipped[image(root / "Tp" / "Sp" / f"{by_hand[1]}.jpg", seed=121)] = "ambiguous name"
    save_mask(gt / "Sp" / f"{by_hand[1]}_gt.png", box_mask())
    rows = [[None] * 5]
    for n, (old, new) in enumerate(renames + [by_hand]):
        rows.append(["Rename ..." if n == 0 else None, f"{old}.jpg", f"{new}.jpg", f'ren "{old}.jpg" "{new}.jpg"', None])
    rows += [[None] * 5, [None, "At first, there are 470 copy-move images (CM folder) and 451 spliced images.", None, None, None]]
    sheet = spreadsheet(gt / "FileNameCorrection.xlsx", CASIA1_HEADER, rows)
    other_file(gt / "Splicing_groundtruth_list.txt", "\n".join(p.stem for p in tampered))
    return root, gt, sheet, tampered, renamed, skipped


CASIA1_NAMES = Path(__file__).parent / "fixtures" / "casia1-names.json"


def casiav1_kaggle(root, size=(24, 16)):
    """CASIA 1.0 as its Kaggle copy ships it, from the real file names (fixtures/casia1-names.json), with
    generated pixels: every tampered image in one Sp/ folder, names that differ from the ground truth's
    (published renames, source ids swapped, one misspelt), one image stored a quarter turn against its mask,
    one image without a mask; the ground truth unpacked beside it with its rename spreadsheet.

    Returns the folder, the ground truth's, {image: its mask as it must be listed}, the authentic images,
    and {image: correction} for the images paired by another name or a turned mask."""
    import json

    names = json.loads(CASIA1_NAMES.read_text())
    root, gt = Path(root) / "CASIA1.0", Path(root) / "CASIA 1.0 groundtruth"
    width, height = size
    boxes = {}  # ground-truth name -> its mask: a box of its own, so that a wrong pairing shows
    for folder in ("CM", "Sp"):
        for number, name in enumerate(names["groundtruth"][folder]):
            n = number + 1000 * (folder == "Sp")
            left, top = n % (width - 4), (n // (width - 4)) % (height - 4)
            boxes[name] = box_mask(size, (left, top, left + 3 + n % 2, top + 3))
    authentic = [image(root / "Au" / name, size, seed=n) for n, name in enumerate(names["kaggle"]["Au"])]
    turned = set(names["turned"])
    tampered, corrections = {}, {}
    for n, name in enumerate(names["kaggle"]["Sp"]):
        mask_name = names["paired"].get(name, Path(name).stem + "_gt.png")
        if mask_name not in boxes:
            image(root / "Sp" / name, size, seed=5000 + n)  # the one image no release has a mask for
            continue
        if name in turned:
            # made from its first source photograph, as CASIA's spliced images are: the mask is where they differ
            background = root / "Au" / f"Au_{name.split('_')[4][:3]}_{name.split('_')[4][3:]}.jpg"
            grey = np.linspace(40, 200, width * height, dtype=np.float32).reshape(height, width)
            Image.fromarray(np.repeat(grey[..., None], 3, 2).astype(np.uint8)).save(background, quality=95)
            spliced = np.where(boxes[mask_name], 255 - grey, grey)
            Image.fromarray(np.repeat(spliced[..., None], 3, 2).astype(np.uint8)).save(root / "Sp" / name, quality=95)
            corrections[root / "Sp" / name] = "mask turned"
        else:
            image(root / "Sp" / name, size, seed=5000 + n)
        tampered[root / "Sp" / name] = boxes[mask_name]
        if mask_name != Path(name).stem + "_gt.png":
            corrections[root / "Sp" / name] = "respelt"
    for folder in ("CM", "Sp"):
        for name in names["groundtruth"][folder]:
            # the turned image's mask is stored a quarter turn clockwise against it
            mask = np.rot90(boxes[name], 3) if name[: -len("_gt.png")] + ".jpg" in turned else boxes[name]
            save_mask(gt / folder / name, mask)
    rows = [[None] * 5] + [[None, f"{old}", f"{new}", None, None] for old, new in names["renames"]]
    spreadsheet(gt / "FileNameCorrection.xlsx", CASIA1_HEADER, rows)
    return root, gt, tampered, authentic, corrections


def jpeg_mask(path, mask):
    """A white-on-black mask saved as JPEG, as DEFACTO's probe masks are: grey noise around the region's edge."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path, quality=75)
    return path


def defacto(root):
    """DEFACTO as Kaggle distributes it: <part>_img/img and <part>_annotations/{probe_mask,donor_mask,graph}."""
    root = Path(root) / "DEFACTO"
    tampered, authentic, skipped = {}, [], {}
    name = "0_000000195755"  # one name in two parts: two different images, each with its own mask
    for part, box, mask_suffix in (("copymove", (4, 4, 20, 16), "jpg"), ("inpainting", (24, 8, 40, 24), "tif")):
        path = image(root / f"{part}_img" / "img" / f"{name}.tif", seed=len(tampered) + 201)
        tampered[path] = box_mask(box=box)
        probe = root / f"{part}_annotations" / "probe_mask" / f"{name}.{mask_suffix}"
        (jpeg_mask if mask_suffix == "jpg" else save_mask)(probe, box_mask(box=box))
    save_mask(root / "copymove_annotations" / "donor_mask" / f"{name}.tif", box_mask(box=(30, 4, 46, 16)))  # passed over
    save_mask(root / "inpainting_annotations" / "inpaint_mask" / f"{name}.tif", box_mask())  # passed over
    other_file(root / "copymove_annotations" / "graph" / f"{name}.json", "{}")  # passed over
    spliced = image(root / "splicing_1_img" / "img" / "3_000000000139.tif", seed=210)
    tampered[spliced] = box_mask(box=(8, 8, 24, 24))
    jpeg_mask(root / "splicing_1_annotations" / "probe_mask" / "3_000000000139.jpg", box_mask(box=(8, 8, 24, 24)))
    skipped[image(root / "splicing_1_img" / "img" / "5_000000000285.tif", seed=211)] = "no mask"
    name = "7_000000000632"  # the first release's folder names
    tampered[image(root / "Splicing-images-2" / "img" / f"{name}.tif", seed=212)] = box_mask()
    jpeg_mask(root / "Splicing-annotations-2" / "probe_mask" / f"{name}.jpg", box_mask())
    name = "9_000000000724"  # a probe mask of another size
    skipped[image(root / "splicing_1_img" / "img" / f"{name}.tif", seed=213)] = "mask size differs"
    jpeg_mask(root / "splicing_1_annotations" / "probe_mask" / f"{name}.jpg", box_mask((24, 16), (2, 2, 8, 8)))
    skipped[image(root / "morphing_img" / "img" / "1_000000000776.tif", seed=214)] = "a face part (not indexed)"
    skipped[other_file(root / "README.txt")] = "outside DEFACTO's part folders"
    return root, tampered, authentic, skipped


def cocoglide(root):
    """CocoGlide's zip: fake/, mask/ and real/, the fake and its mask named otherwise (paired by the COCO id)."""
    root = Path(root) / "CocoGlide"
    tampered, authentic, skipped = {}, [], {}
    for number, (category, coco) in enumerate((("dining table", "114871"), ("dog", "000139"))):
        fake = image(root / "fake" / f"glide_inpainting_val2017_{coco}_up.png", seed=300 + number)
        box = (4 + 8 * number, 4, 20 + 8 * number, 20)
        save_mask(root / "mask" / f"{category}_{coco}_mask.png", box_mask(box=box))
        tampered[fake] = box_mask(box=box)
        authentic.append(image(root / "real" / f"{category}_{coco}.png", seed=310 + number))
    skipped[image(root / "fake" / "glide_inpainting_val2017_000285_up.png", seed=320)] = "no mask"
    skipped[save_mask(root / "mask" / "cat_000632_mask.png", box_mask())] = "mask without an image"
    skipped[other_file(root / "table.csv", "real,fake,mask,prompt\n")] = "not an image file"
    return root, tampered, authentic, skipped


def casiav1_split_lists(folder, sides=("train", "test")):
    """The project's CASIA v1.0 split (configs/splits/casiav1) as `benco data casiav1` and `benco data split
    --names casiav1` list it: the same image names, authentic (Au_) ones "Negative", the others with their
    ``_gt.png`` mask, all below ``folder``. Names only: no file is written but the lists, which is all a
    table rebuilt from kept runs (--no_train) reads of them."""
    import json

    names = Path(__file__).resolve().parents[1] / "configs" / "splits" / "casiav1"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lists = {}
    for side in sides:
        rows = []
        for name in (n.strip() for n in (names / f"{side}.txt").read_text().splitlines()):
            if not name or name.startswith("#"):
                continue
            authentic = name.startswith("Au_")
            image = folder / "CASIA1.0" / ("Au" if authentic else "Sp") / name
            mask = "Negative" if authentic else str(folder / "CASIA 1.0 groundtruth" / f"{Path(name).stem}_gt.png")
            rows.append([str(image), mask])
        lists[side] = folder / f"{side}.json"
        lists[side].write_text(json.dumps(rows, indent=0))
    return lists

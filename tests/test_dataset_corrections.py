"""`benco data` with the community's published corrections: CASIA's rename spreadsheets, and revised masks."""
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_datasets import check_index, index, read_mask

import replicas
from helpers import error_of

# The published files themselves (not part of the project), where this checkout has them beside it.
PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "dataset-corrections"


def reports(out):
    """{file: (correction, detail)} of <list>.corrections.tsv, and the summary's text."""
    out = Path(out)
    table = out.with_name(out.stem + ".corrections.tsv")
    rows = {}
    if table.exists():
        for line in table.read_text().splitlines()[1:]:
            path, kind, detail = line.split("\t")
            rows[Path(path).resolve()] = (kind, detail)
    return rows, out.with_name(out.stem + ".summary.txt").read_text()


def summary_row(summary, label):
    line = next(line for line in summary.splitlines() if label in line)
    return [cell.strip() for cell in line.strip()[1:-1].split("│")][1:]


# ---- CASIA renames -------------------------------------------------------------------------------------------


def test_casiav1_as_first_distributed_pairs_renamed_images_through_the_spreadsheet(tmp_path, capsys):
    root, gt, sheet, tampered, renamed, expected_skips = replicas.casiav1_as_first_distributed(tmp_path / "data")
    expected_skips[gt / "Splicing_groundtruth_list.txt"] = "not an image file"  # the spreadsheet is read, not skipped
    out = tmp_path / "v1.json"
    listed, skipped, err = index("casiav1", root, out, capsys, "--masks", gt)
    check_index(listed, skipped, tampered, [root / "Au" / "Au_ani_0001.jpg"], expected_skips)
    rows, summary = reports(out)
    assert {p: kind for p, (kind, _) in rows.items()} == {p.resolve(): "renamed" for p in renamed}
    for path, new in renamed.items():
        assert rows[path.resolve()][1] == f"paired as {new}, its corrected name in {sheet}"
    assert summary_row(summary, "paired by a published rename") == ["3", "3", ""]
    assert "published corrections:" in err

    # the same copy without the renames: what every index of it gave before, and why
    listed, skipped, _ = index("casiav1", root, tmp_path / "plain.json", capsys, "--masks", gt, "--renames", "none")
    by_hand = root / "Tp" / "Sp" / "Sp_D_CRN_A_arc0007_arc0005_0228.jpg"  # already named as corrected: its own mask
    assert set(listed) == {p.resolve() for p in tampered} - {p.resolve() for p in renamed} | {
        (root / "Au" / "Au_ani_0001.jpg").resolve(), by_hand.resolve()}
    for path in renamed:
        assert skipped[path.resolve()] == "no mask"
    assert sum(reason == "mask without an image" for reason in skipped.values()) == 3
    assert not (tmp_path / "plain.corrections.tsv").exists()


def test_a_mask_under_the_old_and_the_new_name_is_ambiguous_not_chosen(tmp_path, capsys):
    root, gt, _, _, renamed, _ = replicas.casiav1_as_first_distributed(tmp_path / "data")
    path, new = next(iter(renamed.items()))
    replicas.save_mask(gt / "Sp" / f"{path.stem}_gt.png", replicas.box_mask())  # a mask for the old name too
    listed, skipped, _ = index("casiav1", root, tmp_path / "v1.json", capsys, "--masks", gt)
    assert path.resolve() not in listed and skipped[path.resolve()] == "ambiguous name"


def test_corrected_names_that_are_formulas_are_read_as_their_saved_values(tmp_path, capsys):
    """CASIA 2.0's spreadsheet computes its corrected names with formulas: the saved values are what counts."""
    root = tmp_path / "CASIA2.0"
    old, new = "Tp_S_NRN_M_N_cha00085_ani10104_10029", "Tp_D_NRN_M_N_cha00085_ani10104_10029"
    stale, stale_new = "Tp_S_NRD_S_B_pla20089_nat20043_02353", "Tp_D_NRD_S_B_pla20089_nat20043_02353"
    renamed = replicas.image(root / "Tp" / f"{old}.tif", seed=1)
    unrenamed = replicas.image(root / "Tp" / f"{stale}.tif", seed=2)
    for name in (new, stale_new):
        replicas.save_mask(root / "Gt" / f"{name}_gt.png", replicas.box_mask())
    header = [None, "Original file name", "Correct file name", "Note", "Command"]
    rows = [[None] * 5, [1, f"{old}.tif", None, "S -> D", None], [2, f"{stale}.tif", None, "S -> D", None]]
    formula = '=CONCATENATE(LEFT(B{0},3),"D",RIGHT(B{0},36))'
    sheet = replicas.spreadsheet(tmp_path / "casia2groundtruth" / "Notes" / "fileNamesCorrection.xlsx", header, rows,
                                 formulas=[("C3", formula.format(3), f"{new}.tif"), ("C4", formula.format(4), None)])
    listed, skipped, err = index("casiav2", root, tmp_path / "v2.json", capsys, "--renames", sheet)
    assert set(listed) == {renamed.resolve()}
    assert listed[renamed.resolve()] == str((root / "Gt" / f"{new}_gt.png").resolve())
    assert skipped[unrenamed.resolve()] == "no mask"
    # the formula saved without a value is said, with its cell, rather than read as a name
    assert "1 corrected name(s) (C4) are formulas saved without their values" in err


@pytest.mark.parametrize("case, message", [
    ("missing", "--renames {tmp}/none.xlsx: no such file"),
    ("other version", "no rename of a CASIAv1 image (Sp_*) in it"),
    ("two found", "2 different rename spreadsheets"),
    ("damaged", "not a readable .xlsx spreadsheet"),
])
def test_rename_spreadsheet_problems_are_one_line(case, message, tmp_path, capsys):
    root, gt, sheet, *_ = replicas.casiav1_as_first_distributed(tmp_path / "data")
    flags = ["--masks", gt]
    if case == "missing":
        flags += ["--renames", tmp_path / "none.xlsx"]
    elif case == "other version":
        v2 = replicas.spreadsheet(tmp_path / "v2.xlsx", ["Original file name", "Correct file name"],
                                  [["Tp_S_NNN_S_N_a00001_a00001_00001.tif", "Tp_D_NNN_S_N_a00001_a00001_00001.tif"]])
        flags += ["--renames", v2]
    elif case == "two found":
        replicas.spreadsheet(root / "FileNameCorrection (1).xlsx", replicas.CASIA1_HEADER,
                             [[None, "Sp_D_NNN_A_x0001_x0001_0001.jpg", "Sp_S_NNN_A_x0001_x0001_0001.jpg", None, None]])
    else:
        damaged = tmp_path / "FileNameCorrection.xlsx"
        damaged.write_bytes(sheet.read_bytes()[:500])
        flags += ["--renames", damaged]
    code, err = error_of(["data", "casiav1", root, "--out", tmp_path / "v1.json", *flags], capsys)
    assert code == 2 and len(err) == 1 and message.format(tmp=tmp_path) in err[0], err
    assert not (tmp_path / "v1.json").exists()


def test_the_same_spreadsheet_twice_is_one(tmp_path, capsys):
    """The ground-truth archive unpacked inside ROOT and a copy of its spreadsheet beside the images: the same renames."""
    root, gt, sheet, tampered, renamed, _ = replicas.casiav1_as_first_distributed(tmp_path / "data")
    shutil.copy(sheet, root / "FileNameCorrection.xlsx")
    listed, _, _ = index("casiav1", root, tmp_path / "v1.json", capsys, "--masks", gt)
    assert {p.resolve() for p in renamed} <= set(listed)


def test_casiav1_kaggle_copy_pairs_every_image_that_has_a_mask(tmp_path, capsys):
    """The Kaggle copy's real names: 61 images with their source ids swapped against their masks, one with a
    misspelt id (ant0063 for nat0063), 29 renamed as published, one stored turned against its mask: all
    listed with the right mask; only the image no release has a mask for is left out, and said."""
    root, gt, tampered, authentic, kinds = replicas.casiav1_kaggle(tmp_path / "data")
    out = tmp_path / "v1.json"
    listed, skipped, err = index("casiav1", root, out, capsys, "--masks", gt)
    mine = {p: r for p, r in skipped.items() if r != "mask without an image" and gt.resolve() not in p.parents}
    assert mine == {(root / "Sp" / "Sp_D_NRN_A_sce0011_cha0011_0542.jpg").resolve(): "no mask"}
    check_index(listed, {}, tampered, authentic, {})
    assert len(tampered) == 736
    rows, summary = reports(out)
    counts = {}
    for kind, _ in rows.values():
        counts[kind] = counts.get(kind, 0) + 1
    assert counts == {"renamed": 29, "source ids swapped": 61, "source id misspelt": 1, "mask turned": 1}
    assert set(rows) == {p.resolve() for p in kinds}
    swapped = rows[(root / "Sp" / "Sp_D_NNN_A_nat0019_cha0039_0320.jpg").resolve()]
    assert swapped == ("source ids swapped", "paired with the mask of Sp_D_NNN_A_cha0039_nat0019_0320: "
                       "the same kind, flags, serial and source photographs")
    assert rows[(root / "Sp" / "Sp_D_NRN_A_ant0063_nat0065_0443.jpg").resolve()][1].startswith(
        "paired with the mask of Sp_D_NRN_A_nat0063_nat0065_0443:")
    kind, why = rows[(root / "Sp" / "Sp_D_CNN_A_sec0012_ani0007_0275.jpg").resolve()]
    assert kind == "mask turned" and "quarter anticlockwise" in why and "Au_sec_0012.jpg" in why
    assert summary_row(summary, "tampered images") == ["736", "737", "921"]
    assert summary_row(summary, "paired despite source ids swapped") == ["61", "61", ""]
    assert summary_row(summary, "paired despite source id misspelt") == ["1", "1", ""]
    assert summary_row(summary, "masks turned to fit") == ["1", "1", ""]


def test_a_respelt_name_with_two_candidate_masks_is_not_paired(tmp_path, capsys):
    """Two masks of one frame both name the image's sources otherwise: which is its own cannot be told."""
    root, gt = tmp_path / "CASIA1.0", tmp_path / "gt"
    replicas.image(root / "Sp" / "Sp_D_NRN_A_ani0001_arc0059_0404.jpg")
    replicas.save_mask(gt / "Sp" / "Sp_D_NRN_A_arc0059_ani0001_0404_gt.png", replicas.box_mask())
    replicas.save_mask(gt / "Sp" / "Sp_D_NRN_A_nia0001_arc0059_0404_gt.png", replicas.box_mask())
    replicas.image(root / "Sp" / "Sp_D_NRN_A_ani0002_arc0002_0405.jpg")
    replicas.save_mask(gt / "Sp" / "Sp_D_NRN_A_ani0002_arc0002_0405_gt.png", replicas.box_mask())
    listed, skipped, _ = index("casiav1", root, tmp_path / "v1.json", capsys, "--masks", gt)
    assert skipped[(root / "Sp" / "Sp_D_NRN_A_ani0001_arc0059_0404.jpg").resolve()] == "no mask"
    assert list(listed) == [(root / "Sp" / "Sp_D_NRN_A_ani0002_arc0002_0405.jpg").resolve()]


def test_a_transposed_mask_without_its_source_photograph_stays_left_out(tmp_path, capsys):
    """Which way to turn a mask is told only by the photograph the image was made from: without it, no guess."""
    root, gt, *_ = replicas.casiav1_kaggle(tmp_path / "data")
    (root / "Au" / "Au_sec_0012.jpg").unlink()
    _, skipped, _ = index("casiav1", root, tmp_path / "v1.json", capsys, "--masks", gt)
    assert skipped[(root / "Sp" / "Sp_D_CNN_A_sec0012_ani0007_0275.jpg").resolve()] == "mask size differs"


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason="the published correction files are not beside this checkout")
def test_the_published_casia1_ground_truth_pairs_all_920_of_a_copy_as_first_distributed(tmp_path, capsys):
    """The real CASIA 1.0 ground-truth archive (920 masks, its spreadsheet inside) beside 921 images named as the
    publisher first named them: 920 listed, 33 of them through the spreadsheet, the one without a mask named."""
    with zipfile.ZipFile(PUBLISHED / "casia1-groundtruth.zip") as archive:
        archive.extractall(tmp_path)
    gt = tmp_path / "CASIA 1.0 groundtruth"
    import openpyxl
    book = openpyxl.load_workbook(gt / "FileNameCorrection.xlsx", data_only=True, read_only=True)
    first_names = {Path(row[2]).stem: Path(row[1]).stem for row in book.worksheets[0].iter_rows(values_only=True)
                   if isinstance(row[1], str) and row[1].startswith("Sp_") and isinstance(row[2], str)}
    assert len(first_names) == 33
    root = tmp_path / "CASIA1.0"
    masks = sorted(gt.rglob("*_gt.png"))
    names = [m.stem[: -len("_gt")] for m in masks] + ["Sp_D_NRN_A_sce0011_cha0011_0542"]  # the image without a mask
    sizes = [Image.open(m).size for m in masks] + [(384, 256)]
    for number, (name, size) in enumerate(zip(names, sizes)):
        pixels = np.full((size[1], size[0], 3), 128, np.uint8)  # flat, with its number in 16x16 blocks: small, unique
        for bit in range(10):
            pixels[:16, 16 * bit: 16 * bit + 16] = 255 if number >> bit & 1 else 0
        folder = root / "Modified Tp" / "Tp" / ("CM" if name.startswith("Sp_S") else "Sp")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{first_names.get(name, name)}.jpg", quality=95)
    listed, skipped, err = index("casiav1", root, tmp_path / "v1.json", capsys, "--masks", gt, "--tampered_only")
    assert len(listed) == 920
    assert skipped[(root / "Modified Tp" / "Tp" / "Sp" / "Sp_D_NRN_A_sce0011_cha0011_0542.jpg").resolve()] == "no mask"
    assert "mask without an image" not in skipped.values()
    rows, summary = reports(tmp_path / "v1.json")
    assert sum(kind == "renamed" for kind, _ in rows.values()) == 33
    assert summary_row(summary, "paired by a published rename") == ["33", "33", ""]
    _, plain, _ = index("casiav1", root, tmp_path / "plain.json", capsys, "--masks", gt, "--renames", "none")
    assert sum(reason == "no mask" for reason in plain.values()) == 34  # 33 fewer without the renames


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason="the published correction files are not beside this checkout")
def test_the_published_casia2_spreadsheet_renames_its_141_images(tmp_path, capsys):
    """The real CASIA 2.0 spreadsheet (corrected names as formulas): each of its 141 renamed images, named as
    before 2021-04-20, is paired with the mask the revised ground truth names after its corrected name."""
    import openpyxl
    book = openpyxl.load_workbook(PUBLISHED / "casia2-fileNamesCorrection.xlsx", data_only=True, read_only=True)
    renames = {row[1]: row[2] for row in book.worksheets[0].iter_rows(values_only=True)
               if isinstance(row[1], str) and row[1].startswith("Tp_") and isinstance(row[2], str)}
    published = set((PUBLISHED / "casia2-notes" / "tp_list.txt").read_text().split())
    assert len(renames) == 141 and set(renames.values()) <= published
    root, gt = tmp_path / "CASIA2.0", tmp_path / "casia2groundtruth"
    for number, (old, new) in enumerate(sorted(renames.items())):
        replicas.image(root / "Tp" / old, size=(16, 12), seed=number)
        replicas.save_mask(gt / "CASIA2.0_Groundtruth" / f"{Path(new).stem}_gt.png", replicas.box_mask((16, 12), (1, 1, 5, 5)))
    shutil.copy(PUBLISHED / "casia2-fileNamesCorrection.xlsx", gt / "fileNamesCorrection.xlsx")
    listed, skipped, _ = index("casiav2", root, tmp_path / "v2.json", capsys, "--masks", gt)
    assert len(listed) == 141 and not skipped
    rows, _ = reports(tmp_path / "v2.json")
    assert {detail.split(",")[0] for _, detail in rows.values()} == {f"paired as {Path(n).stem}" for n in renames.values()}


# ---- revised masks -------------------------------------------------------------------------------------------


def test_a_revised_mask_replaces_a_mask_of_another_size(tmp_path, capsys):
    root, tampered, authentic, expected_skips = replicas.casiav2(tmp_path / "data")
    fixes = tmp_path / "CASIA2.0 revised masks"
    name = "Tp_D_CRN_M_N_txt00005_txt00006_00015"  # its own mask is transposed
    revised = replicas.save_mask(fixes / "Gt" / f"{name}_gt.png", replicas.box_mask(box=(10, 4, 30, 20)))
    replicas.image(fixes / "Tp" / f"{name}.jpg", seed=99)  # the download's images: not masks, passed over
    stray = replicas.save_mask(fixes / "Gt" / "Tp_S_NNN_S_N_xyz00001_xyz00001_00001_gt.png", replicas.box_mask())
    out = tmp_path / "v2.json"
    listed, skipped, err = index("casiav2", root, out, capsys, "--corrections", fixes)
    image = root / "Tp" / f"{name}.jpg"
    del expected_skips[image]
    tampered[image] = replicas.box_mask(box=(10, 4, 30, 20))
    check_index(listed, skipped, tampered, authentic, expected_skips)
    assert listed[image.resolve()] == str(revised.resolve())
    rows, summary = reports(out)
    assert rows[image.resolve()] == ("revised mask", f"{revised} replaces {root / 'CASIA 2 Groundtruth' / f'{name}_gt.png'}")
    assert rows[stray.resolve()][0] == "revised mask unused"
    assert summary_row(summary, "revised masks used") == ["1", "2", ""]
    assert "mask size mismatches" in summary and "published corrections:" in err


def test_coverage_takes_the_revised_forged_mask_and_passes_over_copy_and_paste(tmp_path, capsys):
    root, tampered, authentic, expected_skips = replicas.coverage(tmp_path / "data")
    fixes = tmp_path / "coverage_revised"
    for kind, box in (("copy", (0, 0, 4, 4)), ("paste", (40, 0, 44, 4)), ("forged", (28, 18, 40, 30))):
        replicas.save_mask(fixes / f"1{kind}.tif", replicas.box_mask(box=box))
    listed, skipped, _ = index("coverage", root, tmp_path / "cov.json", capsys, "--corrections", fixes)
    forgery = root / "image" / "1t.tif"
    tampered[forgery] = replicas.box_mask(box=(28, 18, 40, 30))
    check_index(listed, skipped, tampered, authentic, expected_skips)
    rows, summary = reports(tmp_path / "cov.json")
    assert list(rows) == [forgery.resolve()]  # copy and paste masks are not the list's: neither used nor unused
    assert summary_row(summary, "revised masks used") == ["1", "1", ""]


def test_imd2020_revised_mask_is_matched_by_its_folder_where_names_repeat(tmp_path, capsys):
    """IMD2020 repeats image names across folders: a revised mask laid flat is not given to either of them."""
    root, tampered, authentic, expected_skips = replicas.imd2020(tmp_path / "data")
    flat = tmp_path / "flat"
    loose = replicas.save_mask(flat / "images" / "c8tq2j0_0_mask.png", replicas.box_mask())
    listed, skipped, _ = index("imd2020", root, tmp_path / "a.json", capsys, "--corrections", flat)
    check_index(listed, skipped, tampered, authentic, expected_skips)
    rows, _ = reports(tmp_path / "a.json")
    assert rows[loose.resolve()][0] == "revised mask unused" and "(in 1a1ogs, 1a3oag)" in rows[loose.resolve()][1]

    placed = tmp_path / "placed"
    rgba = np.zeros(replicas.SIZE[::-1] + (4,), np.uint8)  # as the repository's 00030_fake_mask.png: RGBA, opaque
    rgba[..., 3] = 255
    rgba[20:30, 30:40, :3] = 255
    (placed / "1a3oag").mkdir(parents=True)
    Image.fromarray(rgba, "RGBA").save(placed / "1a3oag" / "c8tq2j0_0_mask.png")
    listed, skipped, _ = index("imd2020", root, tmp_path / "b.json", capsys, "--corrections", placed)
    expected = np.zeros(replicas.SIZE[::-1], bool)
    expected[20:30, 30:40] = True
    tampered[root / "1a3oag" / "c8tq2j0_0.jpg"] = expected
    check_index(listed, skipped, tampered, authentic, expected_skips)


def test_a_revised_mask_still_of_another_size_is_left_out_as_any_mask(tmp_path, capsys):
    root, *_ = replicas.casiav2(tmp_path / "data")
    fixes = tmp_path / "fixes"
    name = "Tp_D_NRN_S_N_ani00001_sec00001_00011"
    replicas.save_mask(fixes / f"{name}_gt.png", replicas.box_mask((20, 20), (2, 2, 8, 8)))
    listed, skipped, _ = index("casiav2", root, tmp_path / "v2.json", capsys, "--corrections", fixes)
    assert skipped[(root / "Tp" / f"{name}.jpg").resolve()] == "mask size differs"
    detail = (tmp_path / "v2.skipped.tsv").read_text()
    assert f"mask {name}_gt.png is 20x20, the image 48x32" in detail
    rows, _ = reports(tmp_path / "v2.json")
    assert rows[(root / "Tp" / f"{name}.jpg").resolve()][1].endswith("; the image is left out")


@pytest.mark.parametrize("argv, message", [
    (["data", "nist16", "{data}/NIST16", "--corrections", "{fixes}"], "revised masks are taken for CASIAv1, CASIAv2"),
    (["data", "coverage", "{data}/COVERAGE", "--corrections", "/no/fixes"], "--corrections /no/fixes: no such folder"),
    (["data", "coverage", "{data}/COVERAGE", "--corrections", "{data}/COVERAGE/mask"], "overlap"),
])
def test_corrections_problems_are_one_line(argv, message, tmp_path, capsys):
    replicas.coverage(tmp_path / "data")
    replicas.nist16(tmp_path / "data")
    (tmp_path / "fixes").mkdir()
    argv = [a.format(data=tmp_path / "data", fixes=tmp_path / "fixes") for a in argv]
    code, err = error_of([*argv, "--out", tmp_path / "x.json"], capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_protocol_applies_one_corrections_folder_to_each_dataset(tmp_path, capsys):
    """One folder of every revised mask (CASIA 2.0's, COVERAGE's): each dataset takes the masks named as its own."""
    data = tmp_path / "data"
    for build in (replicas.casiav2, replicas.columbia, replicas.coverage, replicas.nist16, replicas.imd2020):
        build(data)
    replicas.casiav1(data)
    fixes = tmp_path / "IML-Dataset-Corrections"
    name = "Tp_D_CRN_M_N_txt00005_txt00006_00015"
    revised = replicas.save_mask(fixes / "CASIAv2" / f"{name}_gt.png", replicas.box_mask(box=(10, 4, 30, 20)))
    forged = replicas.save_mask(fixes / "COVERAGE" / "1forged.tif", replicas.box_mask(box=(28, 18, 40, 30)))
    out = tmp_path / "lists"
    code, err = error_of(["data", "protocol", "casiav2", "--root", data, "--out", out, "--corrections", fixes], capsys)
    assert code == 0, err
    train = dict(json.loads((out / "CASIAv2.json").read_text()))
    assert train[str((data / "CASIA2.0_revised" / "Tp" / f"{name}.jpg").resolve())] == str(revised.resolve())
    coverage = dict(json.loads((out / "Coverage.json").read_text()))
    assert list(coverage.values()) == [str(forged.resolve())]
    assert (read_mask(forged) == replicas.box_mask(box=(28, 18, 40, 30))).all()
    # CASIAv1 and IMD2020 share the folder and find nothing of theirs in it: nothing to report for them
    assert not (out / "CASIAv1.corrections.tsv").exists() and not (out / "IMD2020.corrections.tsv").exists()

"""`benco data NAME ROOT`: each public dataset's miniature replica (tests/replicas.py), indexed and checked."""
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import replicas
from helpers import error_of

# the casiav1 replica keeps its ground truth apart; the others hold it inside ROOT
BUILDERS = {"casiav2": replicas.casiav2, "columbia": replicas.columbia, "coverage": replicas.coverage,
            "nist16": replicas.nist16, "imd2020": replicas.imd2020, "defacto": replicas.defacto,
            "cocoglide": replicas.cocoglide}


def index(name, root, out, capsys, *flags):
    code, err = error_of(["data", name, root, "--out", out, *flags], capsys)
    assert code == 0, err
    rows = json.loads(Path(out).read_text())
    report = Path(out).with_name(Path(out).stem + ".skipped.tsv")
    skipped = {}
    if report.exists():
        for line in report.read_text().splitlines()[1:]:
            path, reason, _ = line.split("\t")
            skipped[Path(path).resolve()] = reason
    return {Path(image): mask for image, mask in rows}, skipped, "\n".join(err)


def read_mask(path):
    return np.asarray(Image.open(path).convert("L")) > 127


def check_index(listed, skipped, tampered, authentic, expected_skips, agreement=1.0):
    assert set(listed) == {p.resolve() for p in tampered} | {p.resolve() for p in authentic}
    for path in authentic:
        assert listed[path.resolve()] == "Negative"
    for path, mask in tampered.items():
        assert (read_mask(listed[path.resolve()]) == mask).mean() >= agreement, path
    assert skipped == {p.resolve(): reason for p, reason in expected_skips.items()}


def digest_of(folder):
    return {p: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_replica_lists_every_pair_and_says_why_each_file_is_left_out(name, tmp_path, capsys):
    root, tampered, authentic, expected_skips = BUILDERS[name](tmp_path / "data")
    before = digest_of(root)
    listed, skipped, err = index(name, root, tmp_path / "out" / f"{name}.json", capsys)
    # Columbia's and DEFACTO's masks are JPEGs: only the pixels at the region border may differ
    check_index(listed, skipped, tampered, authentic, expected_skips,
                agreement=0.95 if name in ("columbia", "defacto") else 1.0)
    assert digest_of(root) == before  # nothing in the dataset's folder is written or changed
    assert f"Wrote {tmp_path / 'out' / name}.json ({len(listed)} image(s))" in err


def test_casiav1_with_its_ground_truth_apart(tmp_path, capsys):
    root, gt, tampered, authentic, expected_skips = replicas.casiav1(tmp_path / "data")
    listed, skipped, err = index("casiav1", root, tmp_path / "v1.json", capsys, "--masks", gt)
    check_index(listed, skipped, tampered, authentic, expected_skips)
    # without the masks no tampered image can be paired: an error, not an empty list
    code, err = error_of(["data", "casiav1", root, "--out", tmp_path / "none.json"], capsys)
    assert code == 2 and "none of the 4 tampered CASIAv1 images could be paired with a mask" in err[-1]
    assert not (tmp_path / "none.json").exists()


def test_casia_in_imdlbenco_tp_gt_layout_pairs_masks_named_like_their_images(tmp_path, capsys):
    """IMDL-BenCo's own CASIA copies: Tp/ and Gt/ holding <name>.png (no _gt): the Gt/ folder makes them masks."""
    root = tmp_path / "CASIA2.0"
    tp = replicas.image(root / "Tp" / "Tp_D_NRN_S_N_ani00001_sec00001_00011.jpg")
    replicas.save_mask(root / "Gt" / "Tp_D_NRN_S_N_ani00001_sec00001_00011.png", replicas.box_mask())
    listed, skipped, _ = index("casiav2", root, tmp_path / "v2.json", capsys)
    assert listed == {tp.resolve(): str((root / "Gt" / "Tp_D_NRN_S_N_ani00001_sec00001_00011.png").resolve())}
    assert skipped == {}


def test_fix_resize_rescales_a_scaled_mask_and_never_a_transposed_one(tmp_path, capsys):
    root, tampered, authentic, expected_skips = replicas.casiav2(tmp_path / "data")
    listed, skipped, err = index("casiav2", root, tmp_path / "v2.json", capsys, "--fix", "resize")
    halved = root / "Tp" / "Tp_D_NRD_S_N_cha00006_cha00007_00016.jpg"
    del expected_skips[halved]
    tampered[halved] = replicas.box_mask(box=(4, 4, 20, 16))  # the half-size (2, 2, 10, 8) box, doubled
    check_index(listed, skipped, tampered, authentic, expected_skips)
    written = Path(listed[halved.resolve()])
    assert written == (tmp_path / "v2_masks" / "Tp" / f"{halved.name}.mask.png").resolve()  # beside the list
    assert "1 resized" in err
    assert skipped[(root / "Tp" / "Tp_D_CRN_M_N_txt00005_txt00006_00015.jpg").resolve()] == "mask size differs"


def test_columbia_spliced_colour_can_be_chosen(tmp_path, capsys):
    root, tampered, _, _ = replicas.columbia(tmp_path / "data")
    listed, _, _ = index("columbia", root, tmp_path / "c.json", capsys, "--columbia_spliced", "red")
    (path, green), = tampered.items()
    assert (read_mask(listed[path.resolve()]) == ~green).mean() >= 0.95


def test_tampered_only_leaves_authentic_images_out(tmp_path, capsys):
    root, tampered, _, _ = replicas.coverage(tmp_path / "data")
    listed, _, err = index("coverage", root, tmp_path / "cov.json", capsys, "--tampered_only")
    assert set(listed) == {p.resolve() for p in tampered}
    assert "0 (--tampered_only)" in err


def test_counts_that_differ_from_the_published_ones_are_warned(tmp_path, capsys):
    root, *_ = replicas.coverage(tmp_path / "data")
    _, _, err = index("coverage", root, tmp_path / "cov.json", capsys)
    assert "coverage: 2 tampered image(s) found, the publisher counts 100" in err.replace("Coverage", "coverage")
    assert "authentic image(s) found, the publisher counts 100" in err
    summary = (tmp_path / "cov.summary.txt").read_text()
    assert "skipped: no mask" in summary and "published" in summary


def test_a_full_copy_gets_no_count_warning_but_its_skips_are_said(tmp_path, capsys, monkeypatch):
    from ncl_plugin.datasets import DATASETS
    from ncl_plugin.datasets.layout import Published

    root, *_ = replicas.coverage(tmp_path / "data")
    monkeypatch.setitem(DATASETS, "coverage", DATASETS["coverage"].__class__(
        **{**DATASETS["coverage"].__dict__, "published": Published(tampered=2, authentic=2)}))
    _, _, err = index("coverage", root, tmp_path / "cov.json", capsys)
    assert "publisher counts" not in err
    assert "1 of the 2 published tampered images are in the list (1 skipped)" in err.replace("Coverage", "coverage")


def test_lists_load_in_imdlbenco_json_dataset_with_the_right_masks(tmp_path, capsys):
    """The written list is read by IMDL-BenCo's own JsonDataset: the NIST mask it loads is the un-inverted one."""
    from IMDLBenCo.datasets import JsonDataset

    root, tampered, _, _ = replicas.nist16(tmp_path / "data")
    index("nist16", root, tmp_path / "nist.json", capsys)
    dataset = JsonDataset(str(tmp_path / "nist.json"), is_padding=True, output_size=(64, 64))
    (path, mask), = tampered.items()
    position = [p for p in dataset.tp_path].index(str(path.resolve()))
    item = dataset[position]
    loaded = item["mask"][0, : mask.shape[0], : mask.shape[1]].numpy() > 0.5
    assert (loaded == mask).all() and item["label"] == 1


@pytest.mark.parametrize("argv, message", [
    (["data", "casiav3", "."], "invalid choice: 'casiav3'"),
    (["data", "coverage", "/no/such/folder"], "/no/such/folder: no such folder"),
    (["data", "casiav2", "{empty}"], "no CASIAv2 image found below it (1 other files)"),
    (["data", "nist16", "{empty}"], "no *manipulation-ref.csv below it"),
    (["data", "casiav2", "{empty}", "--masks", "/no/masks"], "--masks /no/masks: no such folder"),
    (["data", "coverage", "{empty}", "--out", "{empty}/lists/coverage.json"], "is inside"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, capsys):
    empty = tmp_path / "empty"
    replicas.other_file(empty / "notes.txt")
    code, err = error_of([a.replace("{empty}", str(empty)) for a in argv], capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_masks_covering_most_of_their_images_are_warned_as_maybe_inverted(tmp_path, capsys):
    root, *_ = replicas.coverage(tmp_path / "data")
    replicas.save_mask(root / "mask" / "1forged.tif", replicas.box_mask(box=(30, 20, 38, 28)), tampered=0, untouched=255)
    _, _, err = index("coverage", root, tmp_path / "cov.json", capsys)
    assert "check that the masks are not inverted" in err


def test_an_image_listed_both_tampered_and_authentic_is_left_out_twice(tmp_path, capsys):
    root, tampered, authentic, expected_skips = replicas.imd2020(tmp_path / "data")
    (path, mask), *_ = tampered.items()
    shutil.copy(path, path.with_name("c8tq2j0_orig.jpg"))  # the "original" is the manipulated file itself
    listed, skipped, _ = index("imd2020", root, tmp_path / "imd.json", capsys)
    assert skipped[path.resolve()] == skipped[path.with_name("c8tq2j0_orig.jpg").resolve()] == "duplicate image"
    assert path.resolve() not in listed


def test_a_dataset_linked_into_place_is_listed_through_its_links(tmp_path, capsys):
    """Symbolic links are how shared datasets are often put in place: paths keep them, nothing resolves outside ROOT."""
    source, tampered, _, _ = replicas.nist16(tmp_path / "store")
    root = tmp_path / "linked"
    for path in source.rglob("*"):
        if path.is_file():
            target = root / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    code, err = error_of(["data", "nist16", root, "--out", tmp_path / "nist.json"], capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / "nist.json").read_text())
    assert all(image.startswith(str(root)) for image, _ in rows)


def test_defacto_subset_keeps_the_images_mvss_nets_list_names(tmp_path, capsys):
    """DEFACTO-12k's list names the first release's folders; a Kaggle copy's folders answer to them."""
    root, tampered, _, _ = replicas.defacto(tmp_path / "data")
    subset = replicas.other_file(tmp_path / "DEFACTO12k-test.txt", "\n".join([
        "./DEFACTO/Copy-Move-images/img/0_000000195755.tif ./DEFACTO/Copy-Move-annotations/probe_mask/0_000000195755.jpg 1",
        "./DEFACTO/Splicing-images-1/img/3_000000000139.tif ./DEFACTO/Splicing-annotations-1/probe_mask/3_000000000139.jpg 1",
        "./DEFACTO/Splicing-images-3/img/2_000000000001.tif ./DEFACTO/Splicing-annotations-3/probe_mask/2_000000000001.jpg 1",
        "./CoCo2014/test2014/COCO_test2014_000000000001.jpg None 0",
        "",
    ]))
    listed, skipped, err = index("defacto", root, tmp_path / "d12k.json", capsys, "--subset", subset)
    kept = {root / "copymove_img" / "img" / "0_000000195755.tif", root / "splicing_1_img" / "img" / "3_000000000139.tif"}
    assert set(listed) == {p.resolve() for p in kept}
    # the inpainting image of the same name, and every image the list does not name, are not counted at all
    assert (root / "inpainting_img" / "img" / "0_000000195755.tif").resolve() not in skipped
    assert "1 image(s) of --subset" in err and "not found below ROOT (splicing3/2_000000000001)" in err
    assert "1 line(s) of --subset" in err and "MS-COCO" in err
    row = next(line for line in (tmp_path / "d12k.summary.txt").read_text().splitlines() if "tampered images" in line)
    # listed, found, published: the list's 3 DEFACTO images are the count to meet
    assert [cell.strip() for cell in row.strip()[1:-1].split("│")][1:] == ["2", "2", "3"]


@pytest.mark.parametrize("argv, message", [
    (["data", "defacto", "{root}", "--subset", "{bad}"], "line 1: not 'img_path mask_path label'"),
    (["data", "defacto", "{root}", "--subset", "{coco}"], "none of its lines names a DEFACTO image"),
    (["data", "defacto", "{root}", "--subset", "/no/list.txt"], "--subset /no/list.txt: no such file"),
    (["data", "coverage", "{root}", "--subset", "{coco}"], "--subset: a DEFACTO list"),
])
def test_defacto_subset_problems_are_one_line(argv, message, tmp_path, capsys):
    root, *_ = replicas.defacto(tmp_path / "data")
    bad = replicas.other_file(tmp_path / "bad.txt", "just one field\n")
    coco = replicas.other_file(tmp_path / "coco.txt", "./CoCo2014/test2014/COCO_test2014_1.jpg None 0\n")
    argv = [a.format(root=root, bad=bad, coco=coco) for a in argv]
    code, err = error_of([*argv, "--out", tmp_path / "x.json"], capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_an_approximate_published_count_is_met_within_five_percent(tmp_path, capsys, monkeypatch):
    from ncl_plugin.datasets import DATASETS
    from ncl_plugin.datasets.layout import Published

    root, *_ = replicas.defacto(tmp_path / "data")
    _, _, err = index("defacto", root, tmp_path / "a.json", capsys)
    assert "6 tampered image(s) found, the publisher counts about 149000" in err
    monkeypatch.setitem(DATASETS, "defacto", DATASETS["defacto"].__class__(
        **{**DATASETS["defacto"].__dict__, "published": Published(tampered=6, authentic=None, approximate=True)}))
    _, _, err = index("defacto", root, tmp_path / "b.json", capsys)
    assert "publisher counts" not in err and "about 6" in err

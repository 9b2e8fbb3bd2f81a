"""Datasets are checked before training: a bad file is named in one line, or skipped and counted."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import error_of, train_args
from ncl_plugin.data.checks import BadSample, ImageLoader


def copy_mani(source: Path, target: Path, count=None) -> Path:
    for sub in ("Tp", "Gt"):
        (target / sub).mkdir(parents=True)
        for file in sorted((source / sub).iterdir())[:count]:
            (target / sub / file.name).write_bytes(file.read_bytes())
    return target


def test_empty_tp_folder(tmp_path, capsys):
    (tmp_path / "set" / "Tp").mkdir(parents=True)
    (tmp_path / "set" / "Gt").mkdir()
    code, err = error_of(train_args(tmp_path / "set", tmp_path / "set", tmp_path / "out"), capsys)
    assert code == 2 and err == [f"benco train: error: --data_path {tmp_path / 'set'}: Tp/ is empty"]


def test_a_folder_where_no_name_pairs_stops_unless_order_pairing_is_asked_for(dataset, tmp_path, capsys):
    """Two naming schemes (no mask named after any image) used to be paired in sorted order without a word.
    Now it is an error naming the files, which offers --pair_by_order; that flag pairs in sorted order, says
    its rule, and needs equal counts."""
    folder = copy_mani(dataset / "train", tmp_path / "set", count=5)
    for n, mask in enumerate(sorted((folder / "Gt").iterdir())):
        mask.rename(folder / "Gt" / f"{n}forged.png")
    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out"), capsys)
    assert code == 2 and len(err) == 1
    assert "0 of 5 images have their mask, but 10 files do not pair" in err[0]
    assert "without a partner of their name: Tp/" in err[0] and "and 6 more" in err[0]
    assert "or pass --pair_by_order to pair the n-th file of Tp/" in err[0]
    assert not (tmp_path / "out" / "log.txt").exists()
    (folder / "Tp" / "yy_alone.png").write_bytes(b"")
    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out") + ["--pair_by_order"], capsys)
    assert code == 2 and len(err) == 1
    assert "--pair_by_order: Tp/ has 6 files but Gt/ has 5, so they cannot be paired in sorted order" in err[0]


def test_a_renamed_mask_is_named_not_paired_by_order(dataset, tmp_path, capsys):
    """One mask renamed: ManiDataset's sorted order would score every later image against another image's
    mask (5 of 8 here). The other names still pair: the files without a partner are named, nothing trains."""
    folder = copy_mani(dataset / "train", tmp_path / "set", count=8)
    third = sorted((folder / "Gt").iterdir())[2]
    third.rename(folder / "Gt" / "zz_renamed.png")
    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out"), capsys)
    assert code == 2 and len(err) == 1
    assert "7 of 8 images have their mask, but 2 files do not pair" in err[0]
    assert f"Tp/{third.name}" in err[0] and "Gt/zz_renamed.png" in err[0]
    assert not (tmp_path / "out" / "log.txt").exists()


# CASIA v2.0's naming: Tp_<kind>_<...>_<source ids>_<number>.tif, its mask <name>_gt.png
CASIA_NAMES = [f"Tp_D_CND_M_N_ani{a:05d}_sec{b:05d}_{n:05d}" for a, b, n in
               ((18, 96, 138), (20, 41, 139), (23, 77, 140), (31, 12, 141), (45, 90, 142))]


def casia_folder(root: Path, names=CASIA_NAMES, mask_name="{}_gt.png") -> Path:
    """A Tp/+Gt/ folder of CASIA-named images of one size, each mask a different box: a mask scored against
    another image would be told apart by its pixels."""
    from replicas import box_mask, image, save_mask

    for n, name in enumerate(names):
        image(root / "Tp" / f"{name}.tif", seed=n)
        save_mask(root / "Gt" / mask_name.format(name), box_mask(box=(2 + 4 * n, 2, 8 + 4 * n, 12)))
    return root


def test_the_first_mask_renamed_to_sort_last_is_an_error_not_a_shift(tmp_path, capsys):
    """5 CASIA images with the first mask renamed zzz_<its name>.png: sorted order shifted every pair by one
    (the old check took a folder where no pair shares a name for one of two naming schemes, and trained
    on the wrong masks), although four mask names still match their images exactly."""
    folder = casia_folder(tmp_path / "casia", mask_name="{}.png")
    first = folder / "Gt" / f"{CASIA_NAMES[0]}.png"
    first.rename(folder / "Gt" / f"zzz_{first.name}")
    code, err = error_of(train_args(folder, folder, tmp_path / "out"), capsys)
    assert code == 2 and len(err) == 1, err
    assert f"--data_path {folder}: Tp/ and Gt/ are paired by name, and 4 of 5 images have their mask" in err[0]
    assert f"without a partner of their name: Tp/{CASIA_NAMES[0]}.tif, Gt/zzz_{CASIA_NAMES[0]}.png" in err[0]
    assert not (tmp_path / "out" / "log.txt").exists()


def test_a_folder_where_only_some_names_pair_names_a_few_files_and_counts_the_rest(tmp_path):
    from ncl_plugin.data.checks import check_mani_folder
    from ncl_plugin.errors import UsageError

    folder = casia_folder(tmp_path / "casia")
    for n, name in enumerate(CASIA_NAMES[1:4]):
        (folder / "Gt" / f"{name}_gt.png").rename(folder / "Gt" / f"mask{n}.png")
    (folder / "Gt" / f"{CASIA_NAMES[0]}_mask.png").write_bytes(b"")  # a second mask named after one image
    with pytest.raises(UsageError) as raised:
        check_mani_folder(str(folder), "--data_path")
    message = str(raised.value)
    assert "\n" not in message and "1 of 5 images have their mask, but 8 files do not pair" in message
    assert (f"without a partner of their name: Tp/{CASIA_NAMES[1]}.tif, Tp/{CASIA_NAMES[2]}.tif, "
            f"Tp/{CASIA_NAMES[3]}.tif, Gt/mask0.png and 2 more") in message
    assert f"sharing one name: Gt/{CASIA_NAMES[0]}_gt.png, Gt/{CASIA_NAMES[0]}_mask.png" in message
    assert "name each mask after its image (x.jpg with x.png or x_<any word>.png)" in message


def test_imdlbenco_is_given_the_pairs_by_name_where_sorted_order_would_differ(tmp_path):
    """a.tif and a1.tif with a_gt.png and a1_gt.png: sorted, 'a1_gt.png' comes before 'a_gt.png', and
    IMDL-BenCo's ManiDataset (it sorts both folders) paired each image with the other's mask. The dataset
    training reads, alone or inside a BalancedDataset, holds the checked pairs."""
    import argparse

    from ncl_plugin.data import loaders

    folder = casia_folder(tmp_path / "set", names=["a", "a1", "b"])
    options = argparse.Namespace(if_padding=False, if_resizing=True, image_size=32, edge_mask_width=None)
    dataset = loaders.build_dataset(str(folder), options, loaders.test_transform(), None)
    assert [(Path(t).stem, Path(g).name) for t, g in zip(dataset.tp_path, dataset.gt_path)] == [
        ("a", "a_gt.png"), ("a1", "a1_gt.png"), ("b", "b_gt.png")]
    balanced = tmp_path / "balanced.json"
    balanced.write_text(json.dumps([["ManiDataset", str(folder)]]))
    (member,) = loaders.build_dataset(str(balanced), options, loaders.test_transform(), None).dataset_list
    assert [Path(g).name for g in member.gt_path] == ["a_gt.png", "a1_gt.png", "b_gt.png"]


def test_pair_by_order_pairs_a_folder_of_two_naming_schemes_in_sorted_order_and_says_so(tmp_path, capsys):
    from ncl_plugin.data.checks import check_mani_folder
    from ncl_plugin.errors import UsageError
    from replicas import box_mask, image, save_mask

    folder = tmp_path / "two-schemes"
    for n in (1, 2, 10):
        image(folder / "Tp" / f"{n}t.tif", seed=n)
        save_mask(folder / "Gt" / f"{n}forged.png", box_mask())
    with pytest.raises(UsageError, match="0 of 3 images have their mask"):
        check_mani_folder(str(folder), "--data_path")
    images, masks = check_mani_folder(str(folder), "--data_path", by_order=True)
    assert [(Path(i).name, Path(m).name) for i, m in zip(images, masks)] == [
        ("10t.tif", "10forged.png"), ("1t.tif", "1forged.png"), ("2t.tif", "2forged.png")]
    said = capsys.readouterr().err
    assert "--pair_by_order: the n-th file of Tp/ with the n-th file of Gt/, both in sorted order" in said
    assert "first pair 10t.tif with 10forged.png" in said


def test_a_mask_named_after_its_image_with_any_suffix_pairs_by_name_not_by_order(tmp_path):
    """Tp/{a,a1,b}.jpg with Gt/{a1_m,a_m,b_m}.png: no mask name was a known suffix away from an image's, so the
    folder was paired in sorted order ('a1_m' sorts before 'a_m'): a with a1_m, a1 with a_m. Any word after
    a separator now names the mask's image, the longest image name first."""
    from ncl_plugin.data.checks import check_mani_folder

    folder = tmp_path / "prefix"
    (folder / "Tp").mkdir(parents=True)
    (folder / "Gt").mkdir()
    for n, name in enumerate(["a", "a1", "b"]):
        Image.fromarray(np.full((16, 16, 3), n * 40, np.uint8)).save(folder / "Tp" / f"{name}.jpg")
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "Gt" / f"{name}_m.png")
    (folder / "Gt" / "a_b_m.png").write_bytes(b"")  # a mask of a_b.jpg, were there one: not a's
    (folder / "Tp" / "a_b.jpg").write_bytes(b"")
    images, masks = check_mani_folder(str(folder), "--data_path")
    assert [(Path(i).name, Path(m).name) for i, m in zip(images, masks)] == [
        ("a.jpg", "a_m.png"), ("a1.jpg", "a1_m.png"), ("a_b.jpg", "a_b_m.png"), ("b.jpg", "b_m.png")]


def test_masks_named_after_their_images_pair(dataset, tmp_path, capsys):
    """CASIA's x.jpg with x_gt.png: the same names, the mask's suffix aside."""
    folder = copy_mani(dataset / "train", tmp_path / "set", count=4)
    for mask in (folder / "Gt").iterdir():
        mask.rename(mask.with_name(mask.stem + "_gt.png"))
    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out"), capsys)
    assert code == 0, err


def test_an_image_given_as_a_test_set_is_one_line(dataset, tmp_path, capsys):
    image = sorted((dataset / "test" / "Tp").iterdir())[0]
    code, err = error_of(train_args(dataset / "train", image, tmp_path / "out"), capsys)
    assert code == 2 and len(err) == 1
    assert f"--test_data_path {image}: a file that is not JSON; give a dataset" in err[0]


def test_tampered_only_trains_on_the_tampered_entries_of_a_list(dataset, tmp_path, capsys):
    entries = json.loads((dataset / "train.json").read_text())
    authentic = sum(gt == "Negative" for _, gt in entries)
    assert authentic > 0
    code, err = error_of(train_args(dataset / "train.json", dataset / "test", tmp_path / "out", "--tampered_only"), capsys)
    assert code == 0, err
    said = (tmp_path / "out" / "train.log").read_text()
    assert f"training on the {len(entries) - authentic} tampered images of {dataset / 'train.json'}" in said
    assert f"{len(entries) - authentic} training images" in said
    code, err = error_of(train_args(dataset / "train", dataset / "test", tmp_path / "f", "--tampered_only"), capsys)
    assert code == 2 and len(err) == 1 and "--tampered_only: --data_path" in err[0] and "is a folder" in err[0]


def test_json_entry_that_does_not_exist_is_named(dataset, tmp_path, capsys):
    entries = json.loads((dataset / "train.json").read_text())[:4]
    entries[2][0] = str(tmp_path / "gone.png")
    listing = tmp_path / "train.json"
    listing.write_text(json.dumps(entries))
    code, err = error_of(train_args(listing, dataset / "test", tmp_path / "out"), capsys)
    assert code == 2
    assert err == [f"benco train: error: --data_path {listing}: {tmp_path / 'gone.png'}: file not found; "
                   "fix the files or pass --skip_bad_samples to leave them out"]


def test_test_set_that_is_a_list_with_authentic_images(dataset, capsys, tmp_path):
    """A JsonDataset list is one test set, named after its file; its authentic images are said, and count in
    the image-level metrics only: the pixel metrics are those of its tampered images alone."""
    code, err = error_of(train_args(dataset / "train", dataset / "test_with_authentic.json", tmp_path / "a",
                                    "--metrics", "pixel-f1,image-auc"), capsys)
    assert code == 0, err
    said = (tmp_path / "a" / "train.log").read_text()
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    with_authentic = summary["last"]["test_with_authentic"]
    assert "image-level AUC" in with_authentic
    code, err = error_of(train_args(dataset / "train", dataset / "test.json", tmp_path / "t",
                                    "--metrics", "pixel-f1"), capsys)
    assert code == 0, err
    tampered = json.loads((tmp_path / "t" / "summary.json").read_text())["last"]["test"]
    assert with_authentic["pixel-level F1"] == pytest.approx(tampered["pixel-level F1"], abs=1e-6)
    authentic = sum(gt == "Negative" for _, gt in json.loads((dataset / "test_with_authentic.json").read_text()))
    assert authentic > 0 and f"its {authentic} authentic images count in the image-level metrics only" in said


def test_mask_of_another_size_is_caught_before_training(dataset, tmp_path, capsys):
    folder = copy_mani(dataset / "train", tmp_path / "set", count=6)
    mask = sorted((folder / "Gt").iterdir())[3]
    Image.new("L", (32, 48)).save(mask)
    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out"), capsys)
    assert code == 2 and len(err) == 1
    assert "is 64x64 but its mask" in err[0] and mask.name in err[0] and "is 32x48" in err[0]
    assert not (tmp_path / "out" / "log.txt").exists()  # nothing trained


def test_unreadable_files_are_named_or_skipped(dataset, tmp_path, capsys):
    folder = copy_mani(dataset / "train", tmp_path / "set", count=8)
    broken = sorted((folder / "Tp").iterdir())[1]
    broken.write_bytes(b"not an image at all")
    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out"), capsys)
    assert code == 2 and len(err) == 1 and str(broken) in err[0] and "unreadable image" in err[0]

    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out", "--skip_bad_samples"), capsys)
    assert code == 0
    assert any("--skip_bad_samples: left out 1 bad sample(s) found by the scan" in line for line in err)


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_a_truncated_image_is_found_by_the_scan_before_any_epoch(kind, dataset, tmp_path, capsys):
    """A truncated download (the header survives, the pixels do not) used to stop training when an epoch
    reached it, with a line that did not name --skip_bad_samples."""
    folder = copy_mani(dataset / "train", tmp_path / "set", count=8)
    truncated = sorted((folder / "Tp").iterdir())[4]
    if kind == "jpg":
        Image.open(truncated).convert("RGB").save(truncated.with_suffix(".jpg"), quality=95)
        truncated.unlink()
        truncated = truncated.with_suffix(".jpg")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # the header survives, half the pixels do not
    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out"), capsys)
    assert code == 2 and len(err) == 1
    assert f"{truncated}: unreadable or truncated image" in err[0] and "--skip_bad_samples" in err[0]
    assert not (tmp_path / "out" / "log.txt").exists()


def test_an_image_corrupt_inside_fails_at_decode_naming_it_or_is_skipped_and_counted(dataset, tmp_path, capsys):
    folder = copy_mani(dataset / "train", tmp_path / "set", count=8)
    corrupt = sorted((folder / "Tp").iterdir())[4]
    data = bytearray(corrupt.read_bytes())
    data[100:400] = bytes(300)  # header and end marker intact, the pixel data not
    corrupt.write_bytes(bytes(data))
    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out"), capsys)
    assert code == 2  # the error is the last line, after the progress bar of the epoch it stopped
    assert err[-1].startswith(f"benco train: error: {corrupt}: unreadable or truncated image")
    assert "--skip_bad_samples" in err[-1]
    assert not any("Traceback" in line for line in err)

    code, _ = error_of(train_args(folder, dataset / "test", tmp_path / "skip", "--skip_bad_samples"), capsys)
    assert code == 0
    (row,) = [json.loads(line) for line in (tmp_path / "skip" / "log.txt").read_text().splitlines()]
    assert row["skipped_samples"] == 1


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "I", "F", "CMYK", "1"])
def test_every_image_mode_is_converted_to_rgb(tmp_path, mode):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65535, (10, 12), dtype=np.uint16))
        expected = np.asarray(image, dtype=np.float64) * 255 / 65535
    else:
        image = Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).convert(mode)
        expected = None
    path = tmp_path / ("x.tif" if mode in ("I;16", "I", "F", "CMYK") else "x.png")
    image.save(path)
    loaded = ImageLoader()(str(path))
    assert loaded.mode == "RGB" and loaded.size == (12, 10)
    if expected is not None:  # 16-bit: scaled, not clipped to white
        assert np.abs(np.asarray(loaded)[..., 0] - expected).max() <= 1


def test_non_binary_masks_are_warned_once(tmp_path):
    paths = []
    for i in range(2):
        path = tmp_path / f"m{i}.png"
        Image.fromarray(np.array([[0, 100], [200, 255]], dtype=np.uint8)).save(path)
        paths.append(str(path))
    loader = ImageLoader(masks=paths)
    with pytest.warns(UserWarning, match="mask is not binary"):
        loader(paths[0])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader(paths[1])  # the second one is not reported


def test_missing_file_at_decode_is_a_bad_sample(tmp_path):
    with pytest.raises(BadSample, match="gone.png: file not found"):
        ImageLoader()(str(tmp_path / "gone.png"))

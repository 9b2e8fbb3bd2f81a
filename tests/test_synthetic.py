"""The embedded set: IMDL-BenCo's pixel-level protocol for its test split, a validation holdout, other mixes."""
import json

import numpy as np
import pytest
from PIL import Image

from ncl_plugin.data import synthetic
from ncl_plugin.errors import UsageError


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return synthetic.build(str(tmp_path_factory.mktemp("set")), n=40, size=32, seed=5, show_progress=False,
                           authentic_fraction=0.3)


def test_held_out_set_holds_manipulated_images_and_lists_authentic_ones_apart(built):
    tampered = json.loads((built / "test.json").read_text())
    mixed = json.loads((built / "test_with_authentic.json").read_text())
    authentic = [image for image, mask in mixed if mask == "Negative"]
    assert tampered and authentic, "40 images at 30% authentic: both kinds in the test split"
    assert all(mask != "Negative" and np.asarray(Image.open(mask)).any() for _, mask in tampered)
    assert sorted(p.name for p in (built / "test" / "Tp").iterdir()) == sorted(image.split("/")[-1] for image, _ in tampered)
    assert sorted(str(p) for p in (built / "test" / "Au").iterdir()) == sorted(authentic)
    assert len(mixed) == len(tampered) + len(authentic)
    assert json.loads((built / "test_datasets.json").read_text()) == {"synthetic": str(built / "test")}
    with_authentic = json.loads((built / "test_datasets_with_authentic.json").read_text())
    assert with_authentic == {"synthetic": str(built / "test_with_authentic.json")}
    # Training keeps its authentic images (empty masks), as IMDL-BenCo's training sets do.
    assert any(mask == "Negative" for _, mask in json.loads((built / "train.json").read_text()))


def test_validation_holdout_never_uses_the_test_photographs(tmp_path):
    folder = synthetic.build(str(tmp_path / "val"), n=12, size=32, seed=0, show_progress=False, holdout="validation")
    manifest = json.loads((folder / "manifest.json").read_text())
    used = set(manifest["photographs"]["train"]) | set(manifest["photographs"]["val"])
    assert not used & synthetic._TEST_PHOTOS
    assert set(manifest["photographs"]["val"]) == synthetic._VALIDATION_PHOTOS
    assert not set(manifest["photographs"]["train"]) & synthetic._VALIDATION_PHOTOS
    assert (folder / "val" / "Tp").is_dir() and not (folder / "test").exists()
    assert json.loads((folder / "val_datasets.json").read_text()) == {"synthetic-val": str(folder / "val")}


def test_kinds_choose_the_manipulations(tmp_path):
    folder = synthetic.build(str(tmp_path / "mix"), n=16, size=32, seed=0, show_progress=False,
                             kinds=("copymove", "removal"), authentic_fraction=0.0)
    counts = json.loads((folder / "manifest.json").read_text())["counts"]
    drawn = {kind for split in counts.values() for kind in split}
    assert drawn == {"copymove", "removal"}
    with pytest.raises(UsageError, match="--kinds"):
        synthetic.parse_kinds("splice,blur")


def test_the_same_seed_and_index_draw_the_same_image_whatever_the_set_size(tmp_path):
    small = synthetic.build(str(tmp_path / "a"), n=8, size=32, seed=2, show_progress=False)
    large = synthetic.build(str(tmp_path / "b"), n=20, size=32, seed=2, show_progress=False)
    first = sorted((small / "test" / "Tp").iterdir())[0]
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(large / "test" / "Tp" / first.name)))


@pytest.mark.parametrize("metrics,expected", [(["pixel-f1", "pixel-auc"], "test_datasets.json"),
                                              (["pixel-f1", "image-auc"], "test_datasets_with_authentic.json")])
def test_image_level_metrics_test_on_the_embedded_set_with_its_authentic_images(tmp_path, monkeypatch, metrics, expected):
    import argparse

    from ncl_plugin.engine.training import prepare_data

    monkeypatch.setenv("NCL_CACHE_DIR", str(tmp_path))
    args = argparse.Namespace(data_path=None, test_data_path=None, synthetic_images=10, synthetic_size=32,
                              synthetic_post="")
    prepare_data(args, metrics)
    assert args.test_data_path.endswith(expected) and args.data_path.endswith("train")
    (name, listed), = json.loads(open(args.test_data_path).read()).items()
    assert name == "synthetic"


def test_post_processing_reworks_every_whole_image_and_keeps_the_draws_and_masks(tmp_path):
    """--post jpeg:50-50 is exactly JPEG at quality 50 of the image the plain set holds; the masks do not change."""
    import cv2

    from ncl_plugin.data.postprocess import parse

    plain = synthetic.build(str(tmp_path / "plain"), n=12, size=32, seed=4, show_progress=False)
    jpeg = synthetic.build(str(tmp_path / "jpeg"), n=12, size=32, seed=4, show_progress=False, post=parse("jpeg:50-50"))
    harder = synthetic.build(str(tmp_path / "harder"), n=12, size=32, seed=4, show_progress=False,
                             post=parse("resize:0.5-0.8,noise:2,jpeg:60-90"))
    names = sorted(p.relative_to(plain) for p in plain.rglob("*.png"))
    assert names == sorted(p.relative_to(jpeg) for p in jpeg.rglob("*.png"))  # the same draws, same kinds
    for name in names:
        before = np.asarray(Image.open(plain / name))
        after, reworked = np.asarray(Image.open(jpeg / name)), np.asarray(Image.open(harder / name))
        if name.parts[1] == "Gt":
            assert np.array_equal(before, after) and np.array_equal(before, reworked)
            continue
        _, encoded = cv2.imencode(".jpg", cv2.cvtColor(before, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 50])
        assert np.array_equal(after, cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)), name
        assert not np.array_equal(before, reworked) and before.shape == reworked.shape
    assert json.loads((harder / "manifest.json").read_text())["post"] == "resize:0.5-0.8,noise:2,jpeg:60-90"
    assert json.loads((plain / "manifest.json").read_text())["post"] == ""


def test_post_processed_sets_are_cached_apart(tmp_path, monkeypatch):
    from ncl_plugin.data.postprocess import parse

    monkeypatch.setenv("NCL_CACHE_DIR", str(tmp_path))
    plain, built = synthetic.cached(8, 32, show_progress=False)
    jpeg, jpeg_built = synthetic.cached(8, 32, show_progress=False, post=parse("jpeg:70-90"))
    assert built and jpeg_built and plain != jpeg and jpeg.name.endswith("-post-jpeg70-90")
    assert synthetic.cached(8, 32, show_progress=False, post=parse("jpeg:70-90")) == (jpeg, False)


@pytest.mark.parametrize("spec, message", [
    ("jpeg:95-60", "runs backwards"),
    ("jpeg:0-90", "whole numbers from 1 to 100"),
    ("resize:0.05-0.5", "between 0.1 and 1"),
    ("noise:1-3", "one sigma"),
    ("blur:1", "expected a comma list of resize:LOW-HIGH"),
    ("jpeg:60-90,jpeg:70-80", "each once"),
    ("pasted_jpeg:90-50", "runs backwards"),
    ("pasted_colour:0.8", "at most 0.5"),
    ("pasted_edge:1-2", "one sigma"),
    ("pasted:1", "pasted_edge:SIGMA"),
])
def test_bad_post_processing_specs_are_one_line(spec, message, capsys):
    from helpers import error_of

    code, err = error_of(["synth", "/tmp/unused", "--post", spec], capsys)
    assert code == 2 and len(err) == 1 and message in err[0] and f"--post {spec}" in err[0], err


def test_pasted_steps_rework_only_the_changed_region_and_its_edge(tmp_path):
    """--post pasted_*: authentic images and every mask stay as the plain set has them; pasted_jpeg and
    pasted_colour change pixels inside the mask only, pasted_edge within a few pixels of its boundary only;
    each changes some manipulated image."""
    import cv2

    from ncl_plugin.data.postprocess import parse

    plain = synthetic.build(str(tmp_path / "plain"), n=16, size=64, seed=3, show_progress=False)
    sets = {spec: synthetic.build(str(tmp_path / spec.split(":")[0]), n=16, size=64, seed=3, show_progress=False,
                                  post=parse(spec))
            for spec in ("pasted_jpeg:30-30", "pasted_colour:0.3", "pasted_edge:3")}
    changed = dict.fromkeys(sets, 0)
    for tp in sorted((plain / "train" / "Tp").glob("*.png")) + sorted((plain / "test" / "Tp").glob("*.png")):
        mask = np.asarray(Image.open(tp.parent.parent / "Gt" / tp.name)) > 0
        near = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        before = np.asarray(Image.open(tp))
        for spec, folder in sets.items():
            after = np.asarray(Image.open(folder / tp.relative_to(plain)))
            assert np.array_equal(np.asarray(Image.open(folder / tp.relative_to(plain).parent.parent / "Gt" / tp.name)),
                                  np.asarray(Image.open(tp.parent.parent / "Gt" / tp.name)))
            moved = (after != before).any(axis=2)
            allowed = near if spec.startswith("pasted_edge") else mask
            assert not moved[~allowed].any(), (spec, tp.name)  # nothing outside the region (and its edge)
            changed[spec] += bool(moved.any())
            if not mask.any():
                assert not moved.any()  # an authentic image is left alone
    assert all(count >= 3 for count in changed.values()), changed
    assert parse("pasted_jpeg:50-90,pasted_colour:0.15,jpeg:70-95").spec() == "jpeg:70-95,pasted_jpeg:50-90,pasted_colour:0.15"

"""The embedded set: IMDL-BenCo's pixel-level protocol for its test split, a validation holdout, other mixes."""
import json

import numpy as np
import pytest
from PIL import Image

from ncl_plugin import synthetic
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

    from ncl_plugin.training import prepare_data

    monkeypatch.setenv("NCL_CACHE_DIR", str(tmp_path))
    args = argparse.Namespace(data_path=None, test_data_path=None, synthetic_images=10, synthetic_size=32)
    prepare_data(args, metrics)
    assert args.test_data_path.endswith(expected) and args.data_path.endswith("train")
    (name, listed), = json.loads(open(args.test_data_path).read()).items()
    assert name == "synthetic"

"""`benco data protocol`: every list of IMDL-BenCo's protocols from the replicas, and a real `benco train` on them."""
import json
from pathlib import Path

import pytest

import replicas
from helpers import SMALL_TRAIN, error_of

TITLES = {"CASIAv1", "Columbia", "Coverage", "NIST16", "IMD2020"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The six replicas side by side under their usual folder names, as a user unpacks them."""
    root = tmp_path_factory.mktemp("datasets")
    tampered = {}
    for build in (replicas.casiav2, replicas.columbia, replicas.coverage, replicas.nist16, replicas.imd2020):
        tampered.update(build(root)[1])
    _, gt, v1_tampered, *_ = replicas.casiav1(root)
    tampered.update(v1_tampered)
    return root, gt, tampered


def test_protocol_casiav2_writes_lists_that_benco_train_runs_without_editing(datasets, tmp_path, capsys):
    root, gt, tampered = datasets
    out = tmp_path / "casiav2"
    code, err = error_of(["data", "protocol", "casiav2", "--root", root, "--out", out], capsys)
    assert code == 0, err
    assert f"CASIAv1: masks from {gt}" in err  # "CASIA 1.0 groundtruth" beside the datasets, found by its name
    test_map = json.loads((out / "test_datasets.json").read_text())
    assert set(test_map) == TITLES
    for path in test_map.values():
        rows = json.loads(Path(path).read_text())
        assert Path(path).is_absolute() and rows
        assert all(mask != "Negative" for _, mask in rows)  # pixel-level test sets: tampered images only
        assert {Path(image) for image, _ in rows} <= {p.resolve() for p in tampered}
    train = json.loads((out / "CASIAv2.json").read_text())
    assert len(train) == 3 and all(Path(image).name.startswith("Tp_") for image, _ in train)

    from ncl_plugin import cli
    run = tmp_path / "run"
    argv = ["train", "--config", "protocols/casiav2", "--data_path", out / "CASIAv2.json",
            "--test_data_path", out / "test_datasets.json", *SMALL_TRAIN, "--epochs", "1", "--num_workers", "0",
            "--output_dir", run]
    assert cli.main([str(a) for a in argv]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["best"]) == TITLES  # each test set of the map was tested
    assert summary["args"]["backbone"] == "resnet18" and summary["args"]["data_path"] == str(out / "CASIAv2.json")


def test_protocol_prints_the_train_command(datasets, tmp_path, capsys):
    root, gt, _ = datasets
    from ncl_plugin import cli

    out = tmp_path / "p"
    assert cli.main([str(a) for a in ["data", "protocol", "casiav2", "--root", root, "--casiav1_masks", gt, "--out", out]]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == (f"benco train --config protocols/casiav2 --data_path {out / 'CASIAv2.json'} "
                       f"--test_data_path {out / 'test_datasets.json'}")


def test_protocol_cat_reads_fantastic_reality_and_tampcoco_lists(datasets, tmp_path, capsys):
    root, gt, _ = datasets
    code, err = error_of(["data", "protocol", "cat", "--root", root, "--casiav1_masks", gt], capsys)
    assert code == 2 and len(err) == 1 and "--fantastic_reality FILE is needed" in err[0]
    lists = tmp_path / "given"
    lists.mkdir()
    for name in ("FantasticReality.json", "sp_COCO_list.json", "cm_COCO_list.json", "bcm_COCO_list.json",
                 "bcmc_COCO_list.json"):
        (lists / name).write_text("[]")
    out = tmp_path / "cat"
    code, err = error_of(["data", "protocol", "cat", "--root", root, "--casiav1_masks", gt, "--out", out,
                          "--fantastic_reality", lists / "FantasticReality.json", "--tampcoco", lists], capsys)
    assert code == 0, err
    balanced = json.loads((out / "cat_balanced_dataset.json").read_text())
    assert [Path(p).name for _, p in balanced] == [
        "CASIAv2.json", "FantasticReality.json", "IMD2020.json", "sp_COCO_list.json", "cm_COCO_list.json",
        "bcm_COCO_list.json", "bcmc_COCO_list.json"]
    assert {kind for kind, _ in balanced} == {"JsonDataset"}
    assert set(json.loads((out / "test_datasets.json").read_text())) == TITLES


def test_a_dataset_missing_from_root_is_named_with_the_flag_that_gives_it(tmp_path, capsys):
    replicas.coverage(tmp_path)
    code, err = error_of(["data", "protocol", "casiav2", "--root", tmp_path], capsys)
    assert code == 2 and len(err) == 1
    assert "no CASIAv2 folder in it (looked for CASIA2.0_revised" in err[0] and "--casiav2 DIR" in err[0]
    code, err = error_of(["data", "protocol", "casiav2", "--root", tmp_path / "nowhere"], capsys)
    assert code == 2 and err == [f"benco data: error: --root {tmp_path / 'nowhere'}: no such folder; give the folder that holds the datasets' folders"]


def test_casia_masks_kept_apart_under_another_name_are_asked_for_by_flag(tmp_path, capsys):
    _, gt, *_ = replicas.casiav1(tmp_path)
    gt.rename(tmp_path / "labels")
    for build in (replicas.casiav2, replicas.columbia, replicas.coverage, replicas.nist16, replicas.imd2020):
        build(tmp_path)
    code, err = error_of(["data", "protocol", "casiav2", "--root", tmp_path, "--out", tmp_path / "lists"], capsys)
    assert code == 2 and "could be paired with a mask" in err[-1] and "(--casiav1_masks DIR" in err[-1]


@pytest.mark.parametrize("name, version", [
    ("CASIA 1.0 groundtruth", "1"), ("casia1groundtruth", "1"), ("CASIA2.0_Groundtruth", "2"),
    ("CASIA 2 Groundtruth", "2"), ("CASIA2.0-Corrected-Groundtruth", "2"), ("CASIAv2_groundtruth", "2"),
])
def test_casia_ground_truth_folders_are_told_apart_by_version(name, version):
    from ncl_plugin.datasets.casia import ground_truth_of

    other = {"1": "2", "2": "1"}[version]
    assert ground_truth_of(version)(name) and not ground_truth_of(other)(name)
    assert not ground_truth_of(version)(f"CASIA{version}.0_revised")  # the images' folder is not the masks'

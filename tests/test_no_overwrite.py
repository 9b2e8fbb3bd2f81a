"""Nothing a user had is overwritten: a run's folder, a test's results."""
import json

from helpers import error_of, train_args


def test_training_into_a_folder_that_holds_a_run_is_refused_unless_resumed(dataset, tmp_path, capsys):
    """A second `benco train` into a run's folder used to overwrite its checkpoint-0.pth and summary.json and
    append a second epoch 0 to its log.txt."""
    out = tmp_path / "run"
    assert error_of(train_args(dataset / "train", dataset / "test", out), capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    code, err = error_of(train_args(dataset / "train", dataset / "test", out), capsys)
    assert code == 2 and len(err) == 1
    assert f"--output_dir {out} holds another run (log.txt, summary.json, checkpoint-0.pth)" in err[0]
    assert "--resume auto" in err[0]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    code, err = error_of(train_args(dataset / "train", dataset / "test", out, "--resume", "auto"), capsys)
    assert code == 0, err


def test_a_test_on_another_test_set_writes_beside_the_first(dataset, tmp_path, capsys):
    """`benco test` used to write test_results.json whatever the test set: a second one replaced the first."""
    out = tmp_path / "run"
    assert error_of(train_args(dataset / "train", dataset / "test", out), capsys)[0] == 0
    for data in (dataset / "test", dataset / "test_with_authentic.json"):
        code, err = error_of(["test", "--checkpoint", out, "--test_data_path", data, "--num_workers", "0"], capsys)
        assert code == 0, err
    first = json.loads((out / "test_results-test.json").read_text())
    second = json.loads((out / "test_results-test_with_authentic.json").read_text())
    assert [r["test set"] for r in first] == ["test"] and [r["test set"] for r in second] == ["test_with_authentic"]
    said = (out / "test.log").read_text()  # the checkpoint says what its model was trained on
    assert f"checkpoint-0.pth: trained on {dataset / 'train'}" in said
    assert not (out / "test_results.json").exists()

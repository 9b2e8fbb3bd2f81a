"""Benchmark runs are compared by the images their lists hold, not by where the lists lie: the runner keeps a run
recorded at another path on the same images and refuses other images, and a committed table rebuilds, as
committed, in a clone at another path."""
import argparse
import json
import shutil
from pathlib import Path

import pytest

import replicas
from ncl_plugin.bench import datarefs
from ncl_plugin.bench.runner import Job, Run, check_records
from ncl_plugin.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
KEPT = ("bench.json", "summary.json", "log.txt.gz")  # what a kept run holds (tests/test_repository.py)


def write_list(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return path


ROWS = [["/a/Tp/x.jpg", "/a/Gt/x_gt.png"], ["/a/Au/y.jpg", "Negative"], ["/a/Tp/z.png", "/a/Gt/z_gt.png"]]


def moved(rows, folder="/elsewhere/copy"):
    """The same images at another place, masks renamed, in another order."""
    return [[f"{folder}/{Path(i).name}", m if m == "Negative" else f"{folder}/{Path(m).stem}.png"] for i, m in rows][::-1]


def test_the_digest_holds_the_images_not_their_folder_or_order(tmp_path):
    here = write_list(tmp_path / "a" / "train.json", ROWS)
    there = write_list(tmp_path / "b" / "list.json", moved(ROWS))
    assert datarefs.digest(str(here)) == datarefs.digest(str(there)) is not None
    relabelled = write_list(tmp_path / "c.json", [ROWS[0], ["/a/Au/y.jpg", "/a/Gt/y_gt.png"], ROWS[2]])
    more = write_list(tmp_path / "d.json", [*ROWS, ["/a/Tp/w.jpg", "/a/Gt/w_gt.png"]])
    assert len({datarefs.digest(str(p)) for p in (here, relabelled, more)}) == 3
    assert datarefs.digest(str(tmp_path / "missing.json")) is None
    assert datarefs.describe(str(here))["images"] == 3


def test_a_test_set_map_is_read_relative_to_its_own_folder(tmp_path):
    for copy in ("one", "two"):
        write_list(tmp_path / copy / "lists" / "casia.json", ROWS)
        (tmp_path / copy / "tests.json").write_text(json.dumps({"CASIAv1": "lists/casia.json"}))
    assert datarefs.digest(str(tmp_path / "one" / "tests.json")) == datarefs.digest(str(tmp_path / "two" / "tests.json"))
    (tmp_path / "two" / "tests.json").write_text(json.dumps({"Columbia": "lists/casia.json"}))  # another test set
    assert datarefs.digest(str(tmp_path / "one" / "tests.json")) != datarefs.digest(str(tmp_path / "two" / "tests.json"))


def test_references_say_where_data_lies_as_any_clone_can_read_it(tmp_path, monkeypatch):
    cache, repo = tmp_path / "cache", tmp_path / "repo"
    repo.mkdir()
    monkeypatch.setenv("NCL_CACHE_DIR", str(cache))
    monkeypatch.chdir(repo)
    synthetic = cache / "synthetic-v4-n1000-s128-seed0" / "test_datasets.json"
    assert datarefs.reference(str(synthetic)) == "<cache>/synthetic-v4-n1000-s128-seed0/test_datasets.json"
    assert datarefs.local_path("<cache>/synthetic-v4-n1000-s128-seed0/test_datasets.json") == str(synthetic)
    assert datarefs.reference(str(repo / "runs" / "lists" / "train50.json")) == "runs/lists/train50.json"
    assert datarefs.reference("/data/casiav1_split/train.json") == "/data/casiav1_split/train.json"
    import IMDLBenCo

    config = Path(IMDLBenCo.__file__).parent / "statics" / "model_zoo" / "configs" / "trufor.yaml"
    assert datarefs.reference(str(config)) == "<IMDLBenCo>/statics/model_zoo/configs/trufor.yaml"


def command_on(train: Path, test: Path):
    return ["train", "--model", "ncl", "--config", "casia-cpu", "--data_path", str(train),
            "--test_data_path", str(test), "--seed", "0"]


def recorded_run(folder: Path, record) -> Run:
    folder.mkdir(parents=True)
    (folder / "bench.json").write_text(json.dumps(record))
    return folder


def test_the_runner_keeps_a_run_recorded_at_another_path_on_the_same_images(tmp_path):
    """The record of a run trained in a clone at /old; this clone holds the same lists at another path."""
    old = (write_list(tmp_path / "old" / "train.json", ROWS), write_list(tmp_path / "old" / "test.json", ROWS[:1]))
    folder = recorded_run(tmp_path / "runs" / "ncl-seed0", datarefs.record(command_on(*old)))
    shutil.rmtree(tmp_path / "old")  # that clone is gone: only the record says what it held
    new = (write_list(tmp_path / "new" / "train.json", moved(ROWS)), write_list(tmp_path / "new" / "test.json", ROWS[:1]))
    check_records([Run(Job("ncl", "ncl"), 0, folder, command_on(*new))])
    other = write_list(tmp_path / "new" / "other.json", ROWS[:2])
    with pytest.raises(UsageError, match=r"another command \(differs in --data_path \(other images\)\)"):
        check_records([Run(Job("ncl", "ncl"), 0, folder, command_on(other, new[1]))])
    with pytest.raises(UsageError, match=r"differs in --epochs 3"):  # the budget is still compared flag by flag
        check_records([Run(Job("ncl", "ncl"), 0, folder, [*command_on(*new), "--epochs", "3"])])


def test_a_record_from_before_the_digests_is_compared_by_the_list_it_names(tmp_path):
    """A bench.json holding a command only: an unreadable list (another machine's) is taken by its name; a
    list readable here is compared by its images."""
    new = (write_list(tmp_path / "new" / "train.json", ROWS), write_list(tmp_path / "new" / "test.json", ROWS[:1]))
    gone = {"command": command_on(Path("/no/such/machine/train.json"), Path("/no/such/machine/test.json"))}
    folder = recorded_run(tmp_path / "runs" / "gone-seed0", gone)
    check_records([Run(Job("ncl", "ncl"), 0, folder, command_on(*new))])
    renamed = write_list(tmp_path / "new" / "val.json", ROWS[:1])
    with pytest.raises(UsageError, match="differs in --test_data_path"):
        check_records([Run(Job("ncl", "ncl"), 0, folder, command_on(new[0], renamed))])
    here = write_list(tmp_path / "here" / "train.json", ROWS[:2])  # readable: its images decide
    folder = recorded_run(tmp_path / "runs" / "here-seed0", {"command": command_on(here, new[1])})
    with pytest.raises(UsageError, match="differs in --data_path"):
        check_records([Run(Job("ncl", "ncl"), 0, folder, command_on(*new))])


def test_a_run_whose_config_changed_under_its_name_is_refused(tmp_path):
    """A recipe's values may change while its name stays (a packaged config in a new release): the record pins
    the values it trained with, so that a finished run of the old recipe is not kept as a run of the new one."""
    data = (write_list(tmp_path / "train.json", ROWS), write_list(tmp_path / "test.json", ROWS[:1]))
    config = tmp_path / "recipe.yaml"
    config.write_text("epochs: 2\nbatch_size: 4\n")
    command = [*command_on(*data), "--config", str(config)]
    recorded = datarefs.record(command)
    folder = recorded_run(tmp_path / "runs" / "ncl-seed0", recorded)
    config.write_text("batch_size: 4\nepochs: 2\n")  # the same values, written otherwise
    check_records([Run(Job("ncl", "ncl"), 0, folder, command)])
    config.write_text("epochs: 3\nbatch_size: 4\n")
    with pytest.raises(UsageError, match=r"differs in --config \(its values changed since the run\)"):
        check_records([Run(Job("ncl", "ncl"), 0, folder, command)])
    # a record from before the digest is taken at its config's name
    folder = recorded_run(tmp_path / "runs" / "old-seed0", {"command": recorded["command"], "data": recorded["data"]})
    check_records([Run(Job("ncl", "ncl"), 0, folder, command)])
    packaged = datarefs.record(["train", "--model", "ncl", "--config", "casia-cpu"])
    assert packaged["config_digest"] == datarefs.config_digest("casia-cpu") != datarefs.config_digest("casia-cpu-tampered")


def copy_kept_runs(table: str, clone: Path) -> None:
    """A table's kept runs, as a clone checks them out (their records, not the weights)."""
    for run in (ROOT / "benchmarks" / "results" / "runs" / table).iterdir():
        if (run / "summary.json").is_file():
            (clone / run.relative_to(ROOT)).mkdir(parents=True)
            for name in KEPT:
                shutil.copy(run / name, clone / run.relative_to(ROOT) / name)


def test_the_real_data_curve_rebuilds_as_committed_in_a_clone_at_another_path(tmp_path, monkeypatch):
    """The documented command with --no_train, in a clone elsewhere whose CASIA v1.0 lists hold the project's
    split (the replica's names): the whole list's point is taken from the committed casia-bench runs, and
    the curve and its per-run table come out as committed. The runs once recorded this machine's absolute
    paths, compared by resolved path: any other clone was refused."""
    from test_bench import _harness

    clone = tmp_path / "another" / "clone"
    for table in ("casia-bench", "casia-data-efficiency"):
        copy_kept_runs(table, clone)
    replicas.casiav1_split_lists(clone / "casiav1_split")
    monkeypatch.chdir(clone)
    out = Path("benchmarks/results/runs/casia-data-efficiency")
    _harness("data_efficiency").main([
        "--config", "casia-cpu-tampered", "--data_path", "casiav1_split/train.json",
        "--test_data_path", "casiav1_split/test.json", "--whole_from", "benchmarks/results/runs/casia-bench",
        "--pretrained_path", "benchmarks/results/runs/synthetic-to-real/plain-seed0/checkpoint-8.pth",
        "--out", str(out), "--no_train",
    ])
    committed = ROOT / "benchmarks" / "results"
    assert (out / "curve.md").read_text() == (committed / "casia-data-efficiency-curve.md").read_text()
    for suffix in ("md", "csv"):
        assert (out / f"results.{suffix}").read_text() == (committed / f"casia-data-efficiency.{suffix}").read_text()


def test_the_real_data_curve_refuses_lists_of_other_images(tmp_path, monkeypatch, capsys):
    from test_bench import _harness

    clone = tmp_path / "clone"
    copy_kept_runs("casia-bench", clone)
    lists = replicas.casiav1_split_lists(clone / "casiav1_split")
    rows = json.loads(lists["train"].read_text())
    lists["train"].write_text(json.dumps(rows[:-1]))  # one image fewer than the runs trained on
    monkeypatch.chdir(clone)
    with pytest.raises(SystemExit, match="was run with other --data_path than this curve"):
        _harness("data_efficiency").whole_from(
            Path("benchmarks/results/runs/casia-bench"), ["ncl"], [0], 441,
            argparse.Namespace(config="casia-cpu-tampered", data_path=str(lists["train"]), test_data_path=str(lists["test"])),
        )

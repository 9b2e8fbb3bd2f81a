"""A kept run (ncl_plugin.bench.keep): smaller, and every reader gets from it what it got from the run.

The readers: benco compare (report.load_run, its tables with costs), benco compare --objective, the
harnesses (summary.json's best_mean, last, last_epoch, thresholds; bench.json), benchmarks/figures.py's
curves. A compaction that dropped anything one of them reads fails here (the last test checks that
these comparisons see each such key go).
"""
import argparse
import dataclasses
import gzip
import importlib.util
import json
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from ncl_plugin.bench import keep
from ncl_plugin.bench.objective import objective_table, run_objective
from ncl_plugin.bench.report import compare, load_run
from ncl_plugin.engine.metrics import mean_metrics
from ncl_plugin.engine.training_log import objective_by_epoch, read_log, write_summary

ROOT = Path(__file__).resolve().parents[1]
TESTED = (0, 2, 3)  # as a --test_period 2 run of 4 epochs tests


def _row(epoch: int) -> dict:
    """One log.txt row as benco train writes it for NCL (training.py): losses, the objective's terms beside
    their chance values, the loop's seconds and steps, and on a tested epoch the test sets' metrics."""
    x = (epoch + 1) / 7  # values with every digit a float has
    row = {"train_lr": 1e-3 / (epoch + 1), "train_total": 2.0 - x, "train_pc": 0.5 - x / 9, "train_ncl": 4.0 - x}
    for i, term in enumerate(("ncl_pn", "ncl_se_pos", "ncl_se_neg")):
        row[f"train_{term}"] = 4.5 - x - i / 3
    for i, term in enumerate(("ncl_pn", "ncl_se_pos", "ncl_se_neg")):
        row[f"train_{term}_chance"] = 5.0 + i / 11
    for term in ("ncl_pn", "ncl_se_pos", "ncl_se_neg"):
        row[f"train_{term}_defined"] = 0.75 - x / 5
    row.update(train_seconds=8.0 + x, train_steps=6)
    if epoch in TESTED:
        results = {
            "test": {"pixel-level F1": 0.1 + x / 3, "pixel-level AUC": 0.6 + x / 5, "image-level AUC": 0.5 + x / 13},
            "val": {"pixel-level F1": 0.2 + x / 4, "pixel-level AUC": 0.7 - x / 6},
        }
        row.update({f"test_{k}": v for k, v in mean_metrics(results).items()}, test_metrics=results)
    row["epoch"] = epoch
    return row


def make_run(folder: Path) -> Path:
    """A finished NCL run as benco bench leaves it: log.txt, summary.json (benco train's own writer, with
    its objective), bench.json, calibrated.json, and what is never kept (a checkpoint, train.out)."""
    folder.mkdir(parents=True)
    (folder / "log.txt").write_text("".join(json.dumps(_row(e)) + "\n" for e in range(4)))
    args = argparse.Namespace(model="ncl", seed=0, epochs=4, output_dir=str(folder), log_dir=str(folder),
                              data_path="casiav1_split/train.json", test_data_path="casiav1_split/test.json")
    write_summary(args, {"backbone": "resnet10t", "contrast_weight": 0.5}, [str(folder / "checkpoint-3.pth")],
                  {"parameters": 6061476, "trainable_parameters": 6061476})
    summary = json.loads((folder / "summary.json").read_text())
    summary["thresholds"] = {"checkpoint-3.pth": {"pixel_threshold": 0.21, "chosen_on": "casiav1_split/val.json"}}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    (folder / "bench.json").write_text(json.dumps({"command": ["train", "--model", "ncl", "--seed", "0"]}, indent=1))
    calibrated = [{"checkpoint": "checkpoint-3.pth", "epoch": 3, "test set": "test", "pixel-level F1": 0.9,
                   "pixel-level F1 (validation threshold)": 0.31234567890123}]
    (folder / "calibrated.json").write_text(json.dumps(calibrated, indent=2))
    (folder / "checkpoint-3.pth").write_bytes(b"weights")
    (folder / "train.out").write_text("training output\n")
    return folder


def _figures():
    """benchmarks/figures.py, imported from its file (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location("benchmarks_figures", ROOT / "benchmarks" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def curve_numbers(folder: Path, monkeypatch) -> str:
    """The numbers figures.py's training curves draw of the run: every line's points and every band's."""
    import matplotlib.pyplot as plt

    figures = _figures()
    drawn = []

    def capture(figure, path, dpi):
        for axis in figure.axes:
            drawn.append([line.get_xydata().tolist() for line in axis.lines])
            drawn.append([[p.vertices.tolist() for p in band.get_paths()] for band in axis.collections])
        plt.close(figure)

    monkeypatch.setattr(figures, "save_figure", capture)
    with warnings.catch_warnings():  # an untested epoch's NaN: figures.py's mean of it warns
        warnings.simplefilter("ignore", RuntimeWarning)
        figures.curves({"ncl": [folder]}, folder.parent / "curves.png")
    return json.dumps(drawn)  # as text: an untested epoch's NaN equals itself


def what_readers_get(folder: Path, monkeypatch) -> dict:
    """Everything a reader takes from the run, its path left out (the two copies lie in different folders)."""
    summary = json.loads((folder / "summary.json").read_text())
    return {
        "runs": [dataclasses.replace(load_run(str(folder), select), path="") for select in ("best", "last")],
        "tables": [compare([str(folder)], fmt, select=select, costs=True)
                   for fmt in ("markdown", "latex", "csv") for select in ("best", "last")],
        "objective": run_objective(str(folder)),
        "objective table": objective_table([str(folder)]).replace(str(folder), "RUN"),
        # what the harnesses and the runner read of summary.json (data_efficiency.py's points and
        # _chosen_on, runner's finished and result line, checkpoints.best_checkpoint, figures.py)
        "summary": {k: summary.get(k) for k in ("model", "best_mean", "last", "last_epoch", "best_epoch",
                                                 "thresholds", "parameters", "args", "model_args")},
        "record": (folder / "bench.json").read_bytes(),
        "curves": curve_numbers(folder, monkeypatch),
    }


@pytest.fixture
def pair(tmp_path):
    """The same run twice: as trained, and compacted in place (its summary names its folder as recorded)."""
    before = make_run(tmp_path / "before" / "ncl-seed0")
    after = tmp_path / "after" / "ncl-seed0"
    shutil.copytree(before, after)
    recorded = json.loads((after / "summary.json").read_text())["output_dir"]
    sizes = keep.compact(after, where=recorded)
    return before, after, sizes


def test_readers_get_the_same_from_a_kept_run(pair, monkeypatch):
    before, after, sizes = pair
    assert what_readers_get(after, monkeypatch) == what_readers_get(before, monkeypatch)
    assert all(kept <= size for size, kept in sizes.values())
    assert sum(k for _, k in sizes.values()) < sum(s for s, _ in sizes.values())


def test_only_the_unread_keys_go(pair):
    before, after, _ = pair
    rows, kept = read_log(str(before)), read_log(str(after))
    assert kept == [{k: v for k, v in row.items() if k != "train_lr"} for row in rows]  # every other value exact
    assert not any("train_lr" in row for row in kept)
    assert not (after / "log.txt").exists()  # the kept log is compressed, and read as it is
    text = gzip.decompress((after / "log.txt.gz").read_bytes()).decode()
    assert '": ' not in text and ", " not in text
    summary, kept_summary = (json.loads((f / "summary.json").read_text()) for f in (before, after))
    assert "objective" in summary and "objective" not in kept_summary
    assert kept_summary == {k: v for k, v in summary.items() if k != "objective"}
    assert objective_by_epoch(kept) == summary["objective"]  # the log gives the dropped record back
    for name in ("bench.json", "calibrated.json"):
        assert (after / name).read_bytes() == (before / name).read_bytes()


def test_compacting_leaves_other_files_and_times_and_is_idempotent(pair):
    before, after, _ = pair
    assert (after / "checkpoint-3.pth").read_bytes() == b"weights" and (after / "train.out").is_file()
    stamps = {f.name: f.stat().st_mtime_ns for f in after.iterdir()}
    contents = {f.name: f.read_bytes() for f in after.iterdir()}
    assert keep.is_kept(after, where=json.loads((after / "summary.json").read_text())["output_dir"])
    keep.compact(after, where=json.loads((after / "summary.json").read_text())["output_dir"])
    assert {f.name: f.read_bytes() for f in after.iterdir()} == contents
    assert {f.name: f.stat().st_mtime_ns for f in after.iterdir()} == stamps
    # the summary's time is the run's: figures.py orders runs by it
    assert (after / "summary.json").stat().st_mtime_ns == (before / "summary.json").stat().st_mtime_ns


def test_a_run_kept_elsewhere_takes_only_the_kept_files_and_names_its_new_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the repository's root, where the benchmarks run
    make_run(Path("runs/table/ncl-seed0"))
    keep.keep_run("runs/table/ncl-seed0", "benchmarks/results/runs/table/ncl-seed0")
    kept = Path("benchmarks/results/runs/table/ncl-seed0")
    assert sorted(f.name for f in kept.iterdir()) == sorted(keep.KEPT_FILES)
    summary = json.loads((kept / "summary.json").read_text())
    assert summary["output_dir"] == summary["args"]["output_dir"] == summary["args"]["log_dir"] == str(kept)
    assert summary["checkpoints"] == ["checkpoint-3.pth"]
    # a folder outside the current one is not written as an absolute path: the recorded name stays
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere" / "ncl-seed0"
    keep.keep_run("runs/table/ncl-seed0", outside)
    assert json.loads((outside / "summary.json").read_text())["output_dir"] == "runs/table/ncl-seed0"
    shutil.rmtree(outside.parent)


def test_an_objective_the_log_cannot_give_back_is_kept(tmp_path):
    run = make_run(tmp_path / "ncl-seed0")
    summary = json.loads((run / "summary.json").read_text())
    summary["objective"] = summary["objective"][1:]  # e.g. a log cut or written by another version
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    keep.compact(run)
    assert json.loads((run / "summary.json").read_text())["objective"] == summary["objective"]


def test_an_unfinished_run_is_refused(tmp_path):
    from ncl_plugin.errors import UsageError

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.txt").write_text(json.dumps(_row(0)) + "\n")
    with pytest.raises(UsageError, match="not a finished benco train run"):
        keep.compact(tmp_path / "run")


@pytest.mark.parametrize("key", ["train_seconds", "train_steps", "test_metrics", "train_total", "test_pixel-level F1",
                                 "test_pixel-level AUC", "train_ncl", "train_ncl_pn_chance", "train_ncl_se_neg_defined"])
def test_dropping_a_key_a_reader_uses_is_seen(tmp_path, monkeypatch, key):
    """The comparison above is not blind: were compaction to drop any key a reader takes, it would differ."""
    from ncl_plugin.errors import ReportedError

    before = make_run(tmp_path / "before" / "ncl-seed0")
    after = tmp_path / "after" / "ncl-seed0"
    shutil.copytree(before, after)
    monkeypatch.setattr(keep, "UNREAD_LOG_KEYS", (*keep.UNREAD_LOG_KEYS, key))
    keep.compact(after)
    try:
        got = what_readers_get(after, monkeypatch)
    except (KeyError, ValueError, TypeError, ReportedError):
        return  # a reader fails outright (benco compare: "log.txt holds no test metrics yet"): as plainly seen
    assert got != what_readers_get(before, monkeypatch)


def _tracked_runs():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z", "benchmarks/results/runs"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return sorted({(ROOT / p).parent for p in out.split("\0") if p.endswith("/summary.json") and (ROOT / p).exists()})


def test_tracked_runs_are_kept_compact(monkeypatch):
    """Every run benchmarks/results/runs/ tracks is in its kept form (python -m ncl_plugin.bench.keep FOLDER
    compacts a new one in place)."""
    monkeypatch.chdir(ROOT)  # kept summaries name their folders relative to the repository's root
    loose = [str(f.relative_to(ROOT)) for f in _tracked_runs() if not keep.is_kept(f)]
    assert not loose, (f"{len(loose)} kept run(s) not compacted, e.g. {loose[:3]}: run "
                       f"python -m ncl_plugin.bench.keep {' '.join(loose[:3])}")


def test_a_kept_run_is_never_trained_over(pair):
    """A kept run holds log.txt.gz, not log.txt: benco train still sees a run there and refuses the folder."""
    from ncl_plugin.commands.train import refuse_another_run
    from ncl_plugin.errors import UsageError

    _, after, _ = pair
    (after / "summary.json").rename(after / "summary.kept")
    for name in ("checkpoint-3.pth", "train.out"):
        (after / name).unlink(missing_ok=True)
    with pytest.raises(UsageError, match=r"holds another run \(log.txt.gz"):
        refuse_another_run(str(after), "")


def test_a_kept_summary_names_its_training_data_as_a_clone_reads_it(tmp_path, monkeypatch):
    from ncl_plugin.bench.keep import kept_summary

    monkeypatch.chdir(tmp_path)
    summary = {"output_dir": "runs/x", "args": {"training_data": str(tmp_path / "casiav1_split" / "train.json")}}
    assert kept_summary(summary, [])["args"]["training_data"] == "casiav1_split/train.json"
    elsewhere = {"output_dir": "runs/x", "args": {"training_data": "/elsewhere/train.json"}}
    assert kept_summary(elsewhere, [])["args"]["training_data"] == "/elsewhere/train.json"  # nothing shorter says it

"""`benco bench`: models x seeds at one budget through `benco train`, resumable, ending with the table;
and every zoo model `--list` calls trainable builds offline and takes a training step."""
import json
from pathlib import Path

import pytest
import yaml

from helpers import benco, error_of, run
from ncl_plugin import zoo
from ncl_plugin.bench.runner import parse_spec
from ncl_plugin.data import synthetic

# NCL's network small, one epoch at 64x64: the budget every model of the test shares.
TINY = {
    "backbone": "resnet18", "output_stride": 16, "patch_size": 16, "decoder_channels": 32,
    "image_size": 64, "if_resizing": True, "batch_size": 4, "test_batch_size": 4, "accum_iter": 1,
    "epochs": 1, "warmup_epochs": 1, "test_period": 1, "blr": 0.05, "augment": "lossless",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return synthetic.build(str(tmp_path_factory.mktemp("synth")), n=16, size=64, seed=2, show_progress=False)


@pytest.fixture(scope="module")
def bench(dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    argv = ["bench", "--models", "ncl,segformer", "--seeds", "0", "--config", config, "--num_workers", "0",
            "--data_path", dataset / "train", "--test_data_path", dataset / "test_datasets.json",
            "--out", folder / "runs"]
    return folder / "runs", argv, benco(*argv)


def test_bench_trains_every_model_and_writes_the_table(bench):
    out, _, result = bench
    for name in ("ncl-seed0", "segformer-seed0"):
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["args"]["image_size"] == 64 and summary["args"]["epochs"] == 1  # one budget
        assert summary["parameters"] > 0
    # segformer trained from the empty weight file its recipe wrote, not from a download
    segformer = json.loads((out / "segformer-seed0" / "summary.json").read_text())
    assert Path(segformer["model_args"]["pretrain_pth_path"]).parent == out / "weights"
    # quickstart-style network keys are NCL's: segformer has none of them, NCL got them all
    assert json.loads((out / "ncl-seed0" / "summary.json").read_text())["model_args"]["decoder_channels"] == 32
    table = (out / "bench.md").read_text()
    assert "| parameters (M) | s / step |" in table
    rows = {line.split(" | ")[0][2:]: line for line in table.splitlines() if line.startswith("| ncl") or line.startswith("| segformer")}
    assert set(rows) == {"ncl", "segformer"}
    assert all(float(row.split(" | ")[-1].rstrip(" |")) > 0 for row in rows.values())  # seconds per step
    for suffix in ("tex", "csv", "png"):
        assert (out / f"bench.{suffix}").stat().st_size > 0
    assert "[1/2] ncl, seed 0: training" in result.stderr and "[2/2] segformer, seed 0:" in result.stderr
    assert table in result.stdout


def test_a_second_call_keeps_finished_runs(bench, capsys):
    out, argv, _ = bench
    before = {p: p.stat().st_mtime for p in out.glob("*/log.txt")}
    result = run(capsys, *argv)
    assert result.err.count("done before, kept") == 2
    assert {p: p.stat().st_mtime for p in out.glob("*/log.txt")} == before


def test_calibrate_on_chooses_thresholds_on_validation_and_tables_f1_at_them(bench, capsys):
    out, argv, _ = bench
    val = out.parent / "val.json"  # training images (some authentic): any list but the test set's
    val.write_text((Path(argv[argv.index("--data_path") + 1]).parent / "train.json").read_text())
    code, err = error_of([*argv, "--calibrate_on", val], capsys)
    said = "\n".join(err)
    assert code == 2 and "--calibrate_on" in said and "--select last" in said and "Traceback" not in said
    argv = [("ncl" if a == "ncl,segformer" else a) for a in argv]  # NCL's run alone: the suite's time
    result = run(capsys, *argv, "--select", "last", "--calibrate_on", val)
    assert not (out / "segformer-seed0" / "calibrated.json").exists()  # a run the command did not name
    for name in ("ncl-seed0",):
        record = json.loads((out / name / "threshold.json").read_text())["checkpoint-0.pth"]
        assert record["chosen_on"] == str(val) and record["image_threshold"] is not None
        (row,) = json.loads((out / name / "calibrated.json").read_text())
        assert row["epoch"] == 0 and "pixel-level F1 (validation threshold)" in row
    header = next(line for line in (out / "bench.md").read_text().splitlines() if line.startswith("| run"))
    assert "pixel-level F1 (validation threshold)" in header
    # the test set is a Tp/ Gt/ folder, which lists no authentic image: no image-level figure means anything
    assert "image-level F1 (validation threshold)" not in header
    assert result.err.count("thresholds chosen on") == 1
    # kept: a second call neither chooses again nor tests again
    before = {p: p.stat().st_mtime for p in out.glob("*/calibrated.json")}
    assert "thresholds chosen on" not in run(capsys, *argv, "--select", "last", "--calibrate_on", val).err
    assert {p: p.stat().st_mtime for p in out.glob("*/calibrated.json")} == before


def test_another_budget_in_the_same_folder_is_one_line(bench, capsys):
    out, argv, _ = bench
    code, err = error_of([*argv, "--epochs", "2"], capsys)
    assert code == 2
    (line,) = err[-1:]
    assert "was trained with another command" in line and "--epochs" in line and "another --out" in line
    assert (out / "ncl-seed0" / "summary.json").exists()  # nothing lost


def test_a_model_that_cannot_run_at_the_size_stops_before_anything_trains(tmp_path, capsys):
    code, err = error_of(["bench", "--models", "ncl,segformer,Cat_Net,segformr", "--image_size", "100",
                          "--out", tmp_path / "runs"], capsys)
    assert code == 2 and len(err) == 1
    assert "segformer needs a size that is a multiple of 32" in err[0]
    assert "Cat_Net cannot train here" in err[0] and "did you mean 'segformer'" in err[0]
    assert not (tmp_path / "runs").exists()


def test_list_names_every_registered_model(capsys):
    from ncl_plugin import cli

    assert cli.main(["bench", "--list"]) == 0
    text = capsys.readouterr().out
    states = {line.split()[0]: line.split()[1] for line in text.splitlines()[3:] if line.strip()}
    assert {name for name, state in states.items() if state != "absent"} == set(zoo.registry())
    # a recipe whose model the installed IMDL-BenCo lacks (MSCDI_Net under 0.2.x) is listed as absent
    assert {name for name, state in states.items() if state == "absent"} == set(zoo.RECIPES) - set(zoo.registry())
    assert states["ncl"] == "default" and states["IML_ViT"] == "trains"
    assert states["SPAN"] == "excluded" and states["MantraNet"] == "excluded" and states["Cat_Net"] == "no"
    assert all(state in {"default", "trains", "excluded", "no", "alias", "absent"} for state in states.values())


def test_model_specs_carry_flags_and_seeds():
    assert parse_spec("ncl:contrast_weight=0:seeds=0;2") == ("ncl", ["--contrast_weight", "0"], [0, 2])
    with pytest.raises(Exception, match="expected NAME:flag=value"):
        parse_spec("ncl:contrast_weight")


def test_a_run_stopped_by_a_signal_stops_the_benchmark(tmp_path, monkeypatch):
    """Not the next run: the stopped one resumes when the same command runs again."""
    import signal

    from ncl_plugin.bench import runner
    from ncl_plugin.errors import Interrupted

    runs = runner.plan([runner.Job("a", "ncl"), runner.Job("b", "ncl")], [0], [], tmp_path)
    started = []

    def stopped(command, run, epochs, poll):
        started.append(run.job.name)
        return 128 + signal.SIGTERM

    monkeypatch.setattr(runner, "_train", stopped)
    with pytest.raises(Interrupted, match=r"\[1/2\] a, seed 0 was stopped and saved; run the same command"):
        runner.execute(runs)
    assert started == ["a"]


def test_a_kept_run_is_reported_at_the_epoch_the_table_reports(tmp_path, capsys):
    """Under --select last the progress line used to print the best epoch's F1 (0.183) beside a table
    that reports the last epoch's (0.171)."""
    from ncl_plugin.bench import runner

    (run,) = runner.plan([runner.Job("a", "ncl")], [0], [], tmp_path)
    run.folder.mkdir(parents=True)
    best = {"pixel-level F1": 0.183, "pixel-level AUC": 0.740}
    last = {"test": {"pixel-level F1": 0.171, "pixel-level AUC": 0.746}}
    (run.folder / "summary.json").write_text(json.dumps({"best_mean": best, "last": last}))
    runner.execute([run], select="last")
    assert "pixel-F1 0.171, AUC 0.746 at its last epoch" in capsys.readouterr().err
    runner.execute([run])
    assert "pixel-F1 0.183, AUC 0.740 at its best epoch" in capsys.readouterr().err


def test_a_recipe_learning_rate_yields_to_one_given_for_every_run():
    from ncl_plugin.bench.runner import Budget, jobs

    def flags(overrides):
        (job,) = jobs("segformer", Budget("quickstart", overrides, [], [], {"image_size": 128}), Path("/tmp/lr"))
        return job.flags

    assert flags({})[-2:] == ["--lr", "0.0001"]  # IMDL-BenCo's own: it does not train at the quickstart's 1e-3
    assert "--lr" not in flags({"blr": 0.01}) and "--lr" not in flags({"lr": 5e-4})


def test_the_benchmark_harnesses_plan_their_jobs_with_the_zoo_recipes(tmp_path, monkeypatch):
    """The sweeps of benchmarks/ (accuracy, ablation, recipe, contrast, data_efficiency) on the same runner."""
    import argparse

    from ncl_plugin.bench import runner
    from ncl_plugin.bench import sweep as harness

    planned = []
    monkeypatch.setattr(runner, "execute", lambda runs, epochs=None, **kw: planned.extend(runs) or [])
    parser = argparse.ArgumentParser()
    harness.add_budget_flags(parser)
    args = parser.parse_args(["--seeds", "0,1", "--out", str(tmp_path)])
    harness.resolve_budget(args)
    jobs = [{"name": "pc-only", "model": "ncl", "flags": ["--contrast_weight", "0"]},
            {"name": "seg", "model": "segformer", "flags": [], "seeds": [3]}]
    folders = harness.run_all(jobs, args)
    assert [Path(f).name for f in folders] == ["pc-only-seed0", "pc-only-seed1", "seg-seed3"]
    segformer = planned[-1].command
    assert "--pretrain_pth_path" in segformer and segformer[-2:] == ["--test_period", "1"]
    assert planned[0].command[-2:] == ["--contrast_weight", "0"]  # the job's own flags last


def _harness(name):
    """A script of benchmarks/, imported from its file (benchmarks/ is no package)."""
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_curve_summarises_seeds_per_size_and_ncls_lead(tmp_path):
    """data_efficiency.py's table: per size, mean ± sample std over the finished seeds, and NCL's F1
    minus each reference's; a run without summary.json is left out."""
    curve = _harness("data_efficiency")
    results = {("n50-ncl", 0): (0.5, 0.9), ("n50-ncl", 1): (0.7, 0.8), ("n50-deeplabv3plus", 0): (0.4, 0.95),
               ("n100-ncl", 0): (0.8, 0.97), ("n100-deeplabv3plus", 0): (0.9, 0.99)}
    folders = []
    for (job, seed), (f1, auc) in results.items():
        folder = tmp_path / f"{job}-seed{seed}"
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({"best_mean": {"pixel-level F1": f1, "pixel-level AUC": auc}}))
        folders.append(folder)
    (tmp_path / "n100-ncl-seed1").mkdir()  # unfinished
    found = curve.points(folders + [tmp_path / "n100-ncl-seed1"])
    assert found["ncl"][50] == [(0.5, 0.9), (0.7, 0.8)] and len(found["ncl"][100]) == 1
    rows = curve.summary_table(found).splitlines()
    assert rows[0].split(" | ")[-1] == "ncl − deeplabv3plus F1 |"
    fifty = [c.strip() for c in rows[2].strip("|").split("|")]
    assert fifty[:4] == ["50", "2/1", "0.600 ± 0.141", "0.400"]
    assert fifty[-1] == "+0.200"
    assert rows[3].strip("|").split("|")[-1].strip() == "-0.100"


def test_the_curve_figure_ticks_every_measured_size_whatever_model_is_drawn_last(tmp_path, monkeypatch):
    """A model measured at the small sizes only (ncl-synthetic-init), drawn last, used to leave only its own
    sizes on the x axis: the other models' larger points had no label."""
    curve = _harness("data_efficiency")
    found = {"ncl": {50: [(0.1, 0.6)], 100: [(0.2, 0.7)], 442: [(0.3, 0.8)]},
             "ncl-synthetic-init": {50: [(0.15, 0.65)], 100: [(0.2, 0.68)]}}
    drawn = []
    monkeypatch.setattr(curve, "save_figure", lambda figure, path, dpi: drawn.append(figure))
    curve.curve(found, tmp_path, "title")
    for axis in drawn[0].axes:
        assert [label.get_text() for label in axis.get_xticklabels()] == ["50", "100", "442"]
        assert axis.get_ylabel()


def test_the_sweep_tabulates_each_setting_over_its_own_finished_seeds(tmp_path, monkeypatch):
    """contrast.py --no_train: every finished run of the chosen settings, in the sweep's order, each
    with the seeds it has in seed order; unfinished or stopped runs and other folders are left out,
    and nothing trains."""
    sweep = _harness("contrast")
    from ncl_plugin.engine.checkpoints import INTERRUPTED_NAME

    for name in ("omega=0.05-seed1", "ncl-seed10", "ncl-seed1", "ncl-seed0", "pc-only-seed0", "block=2-seed0",
                 "omega=0.05-seed0", "ncl-seedless"):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text("{}")
    (tmp_path / "pc-only-seed1").mkdir()  # unfinished
    (tmp_path / "omega=0.05-seed0" / INTERRUPTED_NAME).write_text("")  # stopped: its summary is not final
    (tmp_path / "validation-128").mkdir()
    tabled = []
    monkeypatch.setattr(sweep, "compare", lambda folders, out, title, by_job: tabled.append(folders))
    monkeypatch.setattr(sweep, "run_all", lambda *a: pytest.fail("--no_train trained"))
    sweep.main(["--out", str(tmp_path), "--no_train", "--only", "ncl,pc-only,omega=0.05"])
    assert [Path(f).name for f in tabled[0]] == ["ncl-seed0", "ncl-seed1", "ncl-seed10", "pc-only-seed0", "omega=0.05-seed1"]
    with pytest.raises(SystemExit, match="no finished run"):
        sweep.main(["--out", str(tmp_path / "empty"), "--no_train"])


def test_a_harness_stopped_mid_run_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    import argparse

    from ncl_plugin.bench import runner
    from ncl_plugin.bench import sweep as harness
    from ncl_plugin.errors import Interrupted

    def stopped(runs, epochs=None, **kw):
        raise Interrupted("[1/2] pc-only, seed 0 was stopped and saved; run the same command to continue", 2)

    monkeypatch.setattr(runner, "execute", stopped)
    parser = argparse.ArgumentParser()
    harness.add_budget_flags(parser)
    args = parser.parse_args(["--seeds", "0", "--out", str(tmp_path)])
    harness.resolve_budget(args)
    with pytest.raises(SystemExit) as stop:
        harness.run_all([{"name": "pc-only", "model": "ncl", "flags": []}], args)
    assert stop.value.code == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run the same command to continue" in err


def test_the_real_curve_takes_its_whole_list_point_from_the_table_only_where_the_runs_match(tmp_path):
    """data_efficiency.py --whole_from: the table's ncl, ncl:contrast_weight=0 and deeplabv3plus runs become the
    curve's n<all> point when each was run with the curve's recipe and lists; a run of another budget
    (--epochs), other lists or an unfinished one is refused by name."""
    import argparse

    curve = _harness("data_efficiency")
    train, test = tmp_path / "train.json", tmp_path / "test.json"
    table = tmp_path / "table"
    args = argparse.Namespace(config="casia-cpu", data_path=str(train), test_data_path=str(test))

    def run(folder, model, seed, *extra, data=train):
        (table / folder).mkdir(parents=True)
        command = ["train", "--model", model, "--config", "casia-cpu", "--metrics", "pixel-f1",
                   "--data_path", str(data), "--test_data_path", str(test), "--seed", str(seed), *extra]
        (table / folder / "bench.json").write_text(json.dumps({"command": command}))
        (table / folder / "summary.json").write_text(json.dumps(
            {"last": {"test": {"pixel-level F1": 0.1 + seed, "pixel-level AUC": 0.7, "pixel-level F1 (best threshold)": 0.3}}}))

    run("ncl-seed0", "ncl", 0)
    run("ncl-contrast_weight=0-seed0", "ncl", 0, "--contrast_weight", "0")
    run("deeplabv3plus-seed0", "deeplabv3plus", 0, "--contour_weight", "0")  # the zoo recipe's own flag
    names = curve.whole_from(table, ["ncl", "pc-only", "deeplabv3plus"], [0], 442, args)
    assert sorted(names.values()) == ["n442-deeplabv3plus-seed0", "n442-ncl-seed0", "n442-pc-only-seed0"]
    found = curve.points(list(names), "last", names)
    assert found["pc-only"] == {442: [(0.1, 0.7, 0.3)]} and set(found) == {"ncl", "pc-only", "deeplabv3plus"}
    header = curve.summary_table(found).splitlines()[0]  # the best-threshold F1 is tabulated where measured
    assert "| ncl best F1 | pc-only best F1 | deeplabv3plus best F1 |" in header

    with pytest.raises(SystemExit, match="ncl-seed1 is not a finished"):
        curve.whole_from(table, ["ncl"], [1], 442, args)
    run("ncl-seed1", "ncl", 1, "--epochs", "20")
    with pytest.raises(SystemExit, match="other --epochs than this curve"):
        curve.whole_from(table, ["ncl"], [1], 442, args)
    run("deeplabv3plus-seed1", "deeplabv3plus", 1, "--contour_weight", "0", data=tmp_path / "other.json")
    with pytest.raises(SystemExit, match="other --data_path than"):
        curve.whole_from(table, ["deeplabv3plus"], [1], 442, args)
    with pytest.raises(SystemExit, match="other --seed"):  # a run whose record names another seed
        (table / "ncl-seed0" / "bench.json").write_text((table / "ncl-seed1" / "bench.json").read_text())
        curve.whole_from(table, ["ncl"], [0], 442, args)


def test_the_calibrated_curve_reads_f1_at_the_validation_threshold_and_ncls_lead_there(tmp_path, monkeypatch):
    """data_efficiency.py --calibrate_on: each run is calibrated as benco bench --calibrate_on calibrates it, the
    curve tabulates F1 at the validation threshold of the epoch it reports (calibrated.json), and NCL's lead is
    read there, not at 0.5, where a recipe with authentic images puts almost no pixel; --whole_from refuses a
    table run without thresholds chosen on a list of that name."""
    import argparse

    from ncl_plugin.bench import runner
    from ncl_plugin.bench import sweep as harness

    curve = _harness("data_efficiency")

    def run(name, f1, calibrated, chosen_on="val.json", epoch=11):
        folder = tmp_path / name
        folder.mkdir()
        thresholds = {f"checkpoint-{epoch}.pth": {"pixel_threshold": 0.2, "chosen_on": chosen_on}}
        (folder / "summary.json").write_text(json.dumps({
            "last_epoch": 11, "thresholds": thresholds,
            "last": {"test": {"pixel-level F1": f1, "pixel-level AUC": 0.7, "pixel-level F1 (best threshold)": 0.3}}}))
        (folder / "calibrated.json").write_text(json.dumps([
            {"epoch": epoch, "test set": "test", "pixel-level F1": f1, "pixel-level F1 (validation threshold)": calibrated}]))
        return folder

    folders = [run("n50-ncl-seed0", 0.05, 0.25), run("n50-deeplabv3plus-seed0", 0.09, 0.20)]
    found = curve.points(folders, "last")
    assert found["ncl"][50] == [(0.05, 0.7, 0.3, 0.25)]
    rows = curve.summary_table(found).splitlines()
    assert "ncl F1 @val | deeplabv3plus F1 @val" in rows[0] and rows[0].endswith("ncl − deeplabv3plus F1 @val |")
    assert rows[2].strip("|").split("|")[-1].strip() == "+0.050"  # at 0.5 it would read -0.040
    # a calibration of another epoch than the one reported is not merged
    assert curve.points([run("n50-pc-only-seed0", 0.05, 0.25, epoch=7)], "last")["pc-only"][50] == [(0.05, 0.7, 0.3)]

    planned = []
    monkeypatch.setattr(runner, "execute", lambda runs, epochs=None, **kw: planned.append(kw) or [])
    parser = argparse.ArgumentParser()
    harness.add_budget_flags(parser)
    args = parser.parse_args(["--seeds", "0", "--out", str(tmp_path / "runs")])
    harness.resolve_budget(args)
    harness.run_all([{"name": "n50-ncl", "model": "ncl", "flags": []}], args, select="last", calibrate_on="val.json")
    assert planned[0]["finish"] is not None
    harness.run_all([{"name": "n50-ncl", "model": "ncl", "flags": []}], args, select="last")
    assert planned[1]["finish"] is None

    table, train, test = tmp_path / "table", tmp_path / "train.json", tmp_path / "test.json"
    table.mkdir()
    command = ["train", "--model", "ncl", "--config", "casia-cpu", "--metrics", "pixel-f1",
               "--data_path", str(train), "--test_data_path", str(test), "--seed", "0"]
    folder = run("table/ncl-seed0", 0.05, 0.25, chosen_on="split/val.json")
    (folder / "bench.json").write_text(json.dumps({"command": command}))
    args = argparse.Namespace(config="casia-cpu", data_path=str(train), test_data_path=str(test),
                              calibrate_on="casiav1_split/val.json")
    assert list(curve.whole_from(table, ["ncl"], [0], 442, args).values()) == ["n442-ncl-seed0"]
    args.calibrate_on = "casiav1_split/other.json"
    with pytest.raises(SystemExit, match="no thresholds chosen on other.json"):
        curve.whole_from(table, ["ncl"], [0], 442, args)
    (folder / "calibrated.json").unlink()
    args.calibrate_on = "casiav1_split/val.json"
    with pytest.raises(SystemExit, match="--calibrate_on casiav1_split/val.json"):
        curve.whole_from(table, ["ncl"], [0], 442, args)


def test_the_real_curve_is_tabulated_without_the_checkpoint_its_finished_fine_tuning_runs_started_from(
    tmp_path, monkeypatch, capsys
):
    """A fresh clone holds the curve's run records, not the generated-data checkpoint (weights are not kept):
    data_efficiency.py --no_train with the documented --pretrained_path used to stop at "no such checkpoint".
    The checkpoint is asked for only where a fine-tuning run is still to train, and that run is named."""
    from ncl_plugin.engine.checkpoints import INTERRUPTED_NAME

    curve = _harness("data_efficiency")
    train = tmp_path / "train.json"
    train.write_text(json.dumps([[f"Tp_{i}.jpg", f"Tp_{i}_gt.png"] for i in range(32)]))
    out = tmp_path / "curve"
    missing = str(tmp_path / "plain-seed0" / "checkpoint-8.pth")
    argv = ["--config", "casia-cpu", "--data_path", str(train), "--test_data_path", str(tmp_path / "test.json"),
            "--sizes", "16,32", "--models", "ncl-synthetic-init", "--seeds", "0", "--pretrained_path", missing,
            "--out", str(out)]
    for size in (16, 32):
        (out / f"n{size}-ncl-synthetic-init-seed0").mkdir(parents=True)
        (out / f"n{size}-ncl-synthetic-init-seed0" / "summary.json").write_text(json.dumps(
            {"last": {"test": {"pixel-level F1": 0.1, "pixel-level AUC": 0.6 + size / 1000}}}))
    monkeypatch.setattr(curve, "compare", lambda *a, **k: "")
    monkeypatch.setattr(curve, "curve", lambda *a: None)
    trained = []

    def run_all(jobs, args, select, calibrate_on=None):
        trained.append(jobs)
        return [str(run.folder) for run in curve.planned(jobs, out)]

    monkeypatch.setattr(curve, "run_all", run_all)
    curve.main([*argv, "--no_train"])
    assert "| 32 | 1 | 0.100 | 0.632 |" in (out / "curve.md").read_text()
    curve.main(argv)  # every fine-tuning run finished: nothing trains from the checkpoint
    assert len(trained) == 1
    summary = (out / "n32-ncl-synthetic-init-seed0" / "summary.json").read_text()
    (out / "n32-ncl-synthetic-init-seed0" / "summary.json").unlink()
    with pytest.raises(SystemExit):
        curve.main(argv)
    assert len(trained) == 1
    assert "no such checkpoint, and n32-ncl-synthetic-init-seed0 trains from it" in capsys.readouterr().err
    (out / "n32-ncl-synthetic-init-seed0" / "summary.json").write_text(summary)
    (out / "n16-ncl-synthetic-init-seed0" / INTERRUPTED_NAME).write_text("")  # stopped: the runner trains it on
    with pytest.raises(SystemExit):
        curve.main(argv)
    assert "no such checkpoint, and n16-ncl-synthetic-init-seed0 trains from it" in capsys.readouterr().err


def test_the_trace_variants_each_add_one_pasted_step_to_the_same_final_jpeg(tmp_path, monkeypatch):
    """synthetic_to_real.py --variants: each pasted-* variant trains NCL on the embedded set published as
    JPEG 70-95 plus its own change of the pasted content, pasted-all the three; every spec is one benco synth
    accepts; plain trains on the set as it is."""
    from ncl_plugin.bench import runner
    from ncl_plugin.data.postprocess import parse

    harness = _harness("synthetic_to_real")
    planned = []
    monkeypatch.setattr(runner, "execute", lambda runs, epochs=None, **kw: planned.extend(runs) or [])
    monkeypatch.setattr(harness, "compare", lambda *a, **k: "")
    harness.main(["--test_data_path", str(tmp_path / "val.json"), "--out", str(tmp_path),
                  "--variants", "plain,jpeg,pasted-edge,pasted-all"])
    post = {r.folder.name: r.command[r.command.index("--synthetic_post") + 1] if "--synthetic_post" in r.command else ""
            for r in planned}
    assert post == {"plain-seed0": "", "jpeg-seed0": "jpeg:70-95", "pasted-edge-seed0": "pasted_edge:1.5,jpeg:70-95",
                    "pasted-all-seed0": "pasted_jpeg:50-90,pasted_colour:0.15,pasted_edge:1.5,jpeg:70-95"}
    assert parse(post["pasted-all-seed0"]).pasted_colour == 0.15 and parse(post["jpeg-seed0"]).pasted_jpeg is None


def test_a_sweep_tabulates_benco_test_results_beside_training_folders(tmp_path):
    """sweep.compare takes `benco test` result files (synthetic_to_real.py's tests on real photographs) as rows,
    each at its last tested checkpoint; an empty table here was the old behaviour."""
    from ncl_plugin.bench.sweep import compare

    def result(name, values):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps([{"checkpoint": f"checkpoint-{epoch}.pth", "epoch": epoch, "test set": "test",
                                     "pixel-level F1": f1, "pixel-level AUC": auc} for epoch, f1, auc in values]))
        return str(path)

    files = [result("plain-seed0", [(0, 0.016, 0.552), (8, 0.052, 0.462)]), result("post-seed0", [(8, 0.09, 0.61)])]
    table = compare(files, str(tmp_path / "table"), "on real photographs", by_job=True, select="last")
    rows = {line.split(" | ")[0][2:]: line for line in table.splitlines() if line.startswith("| p")}
    assert set(rows) == {"plain", "post"} and "0.462" in rows["plain"] and "0.552" not in rows["plain"]


def test_a_harness_run_says_the_epoch_its_table_reports(tmp_path, monkeypatch):
    """run_all hands the harness's --select to the runner, so that a real-data curve reported at its last epoch
    does not print each run's best epoch."""
    import argparse

    from ncl_plugin.bench import runner
    from ncl_plugin.bench import sweep as harness

    said = []
    monkeypatch.setattr(runner, "execute", lambda runs, epochs=None, select="best", **kw: said.append(select) or [])
    parser = argparse.ArgumentParser()
    harness.add_budget_flags(parser)
    args = parser.parse_args(["--seeds", "0", "--out", str(tmp_path)])
    harness.resolve_budget(args)
    harness.run_all([{"name": "ncl", "model": "ncl", "flags": []}], args, select="last")
    harness.run_all([{"name": "ncl", "model": "ncl", "flags": []}], args)
    assert said == ["last", "best"]


def test_the_all_tampered_floor_averages_tampered_images_at_the_recipes_size_without_padding(tmp_path, capsys):
    """benchmarks/all_tampered.py: 2t / (1 + t) per tampered image (t its tampered share), averaged over the
    tampered images only, on the masks as the recipe reads them; padded pixels are no image's pixels."""
    import replicas

    floor = _harness("all_tampered")
    entries = []
    for name, box in (("quarter", (0, 0, 32, 32)), ("sixteenth", (0, 0, 16, 16))):  # 64x64: shares 1/4, 1/16
        replicas.image(tmp_path / f"{name}.png", size=(64, 64))
        replicas.save_mask(tmp_path / f"{name}_gt.png", replicas.box_mask((64, 64), box))
        entries.append([str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}_gt.png")])
    replicas.image(tmp_path / "authentic.png", size=(64, 64))
    entries.append([str(tmp_path / "authentic.png"), "Negative"])
    listed = tmp_path / "test.json"
    listed.write_text(json.dumps(entries))
    config = tmp_path / "at64.yaml"
    config.write_text(yaml.safe_dump({"image_size": 64, "if_resizing": True}))

    def f1(t):
        return 2 * t / (1 + t)

    measured = floor.measure(str(listed), str(config))["test"]
    assert measured["tampered"] == 2  # the authentic image is not averaged in (it would pull the mean to 2/3)
    assert measured["f1"] == pytest.approx((f1(1 / 4) + f1(1 / 16)) / 2)
    assert measured["share"] == pytest.approx((1 / 4 + 1 / 16) / 2)

    # padded to 128: the 64x64 image's own pixels only, not the padding's 3/4 of the square
    config.write_text(yaml.safe_dump({"image_size": 128, "if_padding": True}))
    assert floor.measure(str(listed), str(config))["test"]["f1"] == pytest.approx((f1(1 / 4) + f1(1 / 16)) / 2)
    floor.main(["--list", str(listed), "--config", str(config)])
    assert f"pixel-F1 {(f1(1 / 4) + f1(1 / 16)) / 2:.3f} over its 2 tampered images" in capsys.readouterr().out

    # bad input: one line naming the script's own flag, not a traceback naming benco test's
    with pytest.raises(SystemExit, match=r"--list \S*absent\.json: no such file or folder"):
        floor.main(["--list", str(tmp_path / "absent.json")])
    # a config asking for both: refused as benco test refuses it, not silently padded
    config.write_text(yaml.safe_dump({"image_size": 64, "if_padding": True, "if_resizing": True}))
    with pytest.raises(SystemExit, match="--if_padding and --if_resizing exclude each other"):
        floor.main(["--list", str(listed), "--config", str(config)])

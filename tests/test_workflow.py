"""End to end on a CPU: `benco train`, `test`, `--resume`, baselines, torchrun, predict, robustness, complexity."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import benco, error_of, run
from ncl_plugin.data import synthetic

SMALL_NCL = ["--backbone", "resnet18", "--output_stride", "16", "--patch_size", "16"]
# AUC beside F1: two epochs on 16 images rarely put a pixel above F1's 0.5 threshold.
METRICS = "pixel-f1,pixel-auc"
SMALL_RUN = [
    "--image_size", "64", "--batch_size", "4", "--test_batch_size", "4", "--accum_iter", "1",
    "--warmup_epochs", "1", "--test_period", "1", "--num_workers", "0", "--blr", "0.05",
]


def log_rows(folder):
    return [json.loads(line) for line in (Path(folder) / "log.txt").read_text().splitlines()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return synthetic.build(str(tmp_path_factory.mktemp("synth")), n=20, size=64, seed=1, show_progress=False)


@pytest.fixture(scope="module")
def ncl_run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("ncl")
    result = benco(
        "train", "--model", "ncl", *SMALL_NCL, *SMALL_RUN, "--epochs", "2", "--metrics", METRICS,
        "--data_path", dataset / "train", "--test_data_path", dataset / "test_datasets.json", "--output_dir", out,
    )
    return out, result


def test_train_writes_logs_checkpoints_summary_and_tensorboard(ncl_run):
    out, result = ncl_run
    rows = log_rows(out)
    assert [r["epoch"] for r in rows] == [0, 1]
    for row in rows:
        f1 = row["test_metrics"]["synthetic"]["pixel-level F1"]
        assert 0.0 <= f1 <= 1.0 and row["test_pixel-level F1"] == pytest.approx(f1)
        assert {"train_total", "train_pc", "train_ncl", "train_ncl_pn", "train_ncl_se_pos", "train_ncl_se_neg", "train_lr"} <= set(row)
    assert sorted(p.name for p in out.glob("checkpoint-*.pth")) == ["checkpoint-0.pth", "checkpoint-1.pth"]
    summary = json.loads((out / "summary.json").read_text())
    best = max(rows, key=lambda r: r["test_pixel-level F1"] + r["test_pixel-level AUC"])  # IMDL-BenCo's rule
    assert summary["best_epoch"] == best["epoch"] and summary["best"] == best["test_metrics"]
    assert summary["model_args"]["backbone"] == "resnet18"
    # Checkpoints by name and the folder as given: a kept run holds no path of the machine that ran it.
    assert summary["checkpoints"] == ["checkpoint-0.pth", "checkpoint-1.pth"]
    assert summary["output_dir"] == str(out)
    # The contrastive objective per epoch, each term beside its chance value and how often it was defined.
    assert [e["epoch"] for e in summary["objective"]] == [0, 1]
    defined = 0
    for entry, row in zip(summary["objective"], rows):
        for term in ("ncl_pn", "ncl_se_pos", "ncl_se_neg"):
            record = entry[term]
            assert record["value"] == row[f"train_{term}"] and record["chance"] == row[f"train_{term}_chance"]
            assert 0 <= record["defined"] <= 1 and (record["chance"] > 0) == (record["defined"] > 0)
            if record["defined"]:
                defined += 1
                assert record["ratio"] == pytest.approx(record["value"] / record["chance"])
    assert defined > 0
    assert list(out.glob("events.out.tfevents.*"))
    terminal = result.stderr + result.stdout
    assert "pixel-level F1" in terminal  # the closing table
    # One line per epoch; IMDL-BenCo's MetricLogger lines are in train.log, not on the terminal.
    epoch_lines = [line for line in terminal.splitlines() if line.startswith("epoch ")]
    assert [line.split(" | ")[0] for line in epoch_lines] == ["epoch 0/1", "epoch 1/1"]
    assert all("| loss total " in line and "| test pixel-f1 " in line for line in epoch_lines)
    assert "Epoch: [" not in terminal and "Averaged stats" not in terminal and "---syncronized---" not in terminal
    assert "\x1b" not in terminal  # a pipe gets no control characters
    log = (out / "train.log").read_text()
    assert "Epoch: [0]" in log and "Epoch: [1]" in log and "---syncronized---" in log and epoch_lines[-1] in log


def test_tensorboard_gets_the_training_images_on_tested_epochs_only(dataset, tmp_path):
    """IMDL-BenCo's loop logs the last batch's images every epoch; on an untested epoch they are dropped
    (0.4 s and 1.2 MB an epoch at batch 8 and 256x256, over a small set's hundreds of epochs), its
    scalars kept."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    benco(
        "train", "--model", "ncl", *SMALL_NCL, *SMALL_RUN, "--epochs", "3", "--test_period", "2", "--metrics", METRICS,
        "--data_path", dataset / "train", "--test_data_path", dataset / "test_datasets.json", "--output_dir", out,
    )
    events = EventAccumulator(str(out), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [e.step for e in events.Images("train/image")] == [0, 2]  # the tested epochs: every 2nd, and the last
    assert [e.step for e in events.Images("train/pred_mask")] == [0, 2]
    assert {int(e.step) // 1000 for e in events.Scalars("lr")} == {0, 1, 2}


def test_checkpoint_has_imdlbenco_layout_and_loads_with_weights_only(ncl_run):
    import torch

    out, _ = ncl_run
    checkpoint = torch.load(out / "checkpoint-1.pth", map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "epoch", "scaler", "args"} <= set(checkpoint)
    assert checkpoint["epoch"] == 1 and checkpoint["args"]["model"] == "ncl"


def test_benco_test_reproduces_the_logged_metrics(ncl_run, dataset, tmp_path, capsys):
    out, _ = ncl_run
    # No --model and no model flags: both come from the checkpoints.
    result = run(capsys, "test", "--checkpoint", out, "--test_data_path", dataset / "test_datasets.json",
                   "--test_batch_size", "3", "--num_workers", "0", "--metrics", METRICS, "--out", tmp_path / "results")
    assert "Test: [" not in result.out + result.err and "Test: [" in (tmp_path / "test.log").read_text()
    rows = json.loads((tmp_path / "results.json").read_text())
    logged = {r["epoch"]: r["test_metrics"]["synthetic"] for r in log_rows(out)}
    assert sorted(r["epoch"] for r in rows) == [0, 1]
    for row in rows:
        for metric in ("pixel-level F1", "pixel-level AUC"):
            assert row[metric] == pytest.approx(logged[row["epoch"]][metric], abs=1e-6)
    header = "checkpoint,epoch,test set,precision,imdlbenco,numpy,pixel_mean,pixel-level F1"
    assert (tmp_path / "results.csv").read_text().startswith(header)  # every row says what computed it
    # tested in the precision it was trained in, and saying so
    assert {r["precision"] for r in rows} == {json.loads((out / "summary.json").read_text())["precision"]}


def test_a_checkpoint_that_predicts_nan_is_an_error_not_a_score(ncl_run, dataset, tmp_path, capsys):
    """IMDL-BenCo's evaluators turn NaN probabilities into a finite AUC and an F1 of 0."""
    import torch

    out, _ = ncl_run
    broken = tmp_path / "broken.pth"
    state = torch.load(out / "checkpoint-1.pth", map_location="cpu", weights_only=True)
    weight = next(v for k, v in state["model"].items() if k.endswith("weight") and v.dim() == 4)
    weight[(0,) * weight.dim()] = float("nan")
    torch.save(state, broken)
    code, err = error_of(["test", "--checkpoint", broken, "--test_data_path", dataset / "test_datasets.json",
                          "--num_workers", "0", "--metrics", METRICS, "--out", tmp_path / "results"], capsys)
    # the last line says it, the only error line (a line before may say what the checkpoint was trained on)
    assert code != 0 and "predicted NaN or infinite probabilities" in err[-1], err
    assert "test set synthetic" in err[-1] and not (tmp_path / "results.json").exists()
    assert sum("error:" in line for line in err) == 1 and not any("Traceback" in line for line in err), err
    code, err = error_of(["predict", dataset / "test" / "Tp", "--checkpoint", broken, "--out", tmp_path / "pred"], capsys)
    assert code != 0 and "predicted NaN or infinite probabilities" in err[-1], err
    assert sum("error:" in line for line in err) == 1 and not any("Traceback" in line for line in err), err


def test_resume_continues_from_the_checkpoint(ncl_run, dataset, tmp_path, capsys):
    out, _ = ncl_run
    resumed = tmp_path / "resumed"
    run(
        capsys, "train", "--model", "ncl", *SMALL_NCL, *SMALL_RUN, "--epochs", "3",
        "--data_path", dataset / "train", "--test_data_path", dataset / "test_datasets.json",
        "--output_dir", resumed, "--resume", out / "checkpoint-1.pth",
    )
    assert [r["epoch"] for r in log_rows(resumed)] == [2]
    assert (resumed / "checkpoint-2.pth").exists()


@pytest.mark.parametrize("model,flags", [("deeplabv3plus", ["--backbone", "resnet18", "--output_stride", "16"]), ("segformer", [])])
def test_baselines_train_through_the_same_command(model, flags, dataset, tmp_path, capsys):
    import torch

    if model == "segformer":  # IMDL-BenCo's segformer loads its weights from a file: an empty one is random init
        torch.save({}, tmp_path / "random_init.pth")
        flags = ["--pretrain_pth_path", tmp_path / "random_init.pth"]
    run(
        capsys, "train", "--model", model, *flags, *SMALL_RUN, "--epochs", "1",
        "--data_path", dataset / "train", "--test_data_path", dataset / "test", "--output_dir", tmp_path / "run",
    )
    (row,) = log_rows(tmp_path / "run")
    assert 0.0 <= row["test_metrics"]["test"]["pixel-level F1"] <= 1.0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["model"] == model


@pytest.mark.slow
def test_two_processes_under_torchrun_report_what_one_process_measures(dataset, tmp_path):
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ncl_plugin"]
    # 5 test images, 2 ranks x batch 2: IMDL-BenCo's tail evaluation covers the fifth.
    benco(
        "train", "--model", "ncl", *SMALL_NCL, *SMALL_RUN, "--batch_size", "2", "--test_batch_size", "2",
        "--epochs", "1", "--device", "cpu", "--data_path", dataset / "train",
        "--test_data_path", dataset / "test_datasets.json", "--output_dir", out, launcher=launcher,
    )
    (row,) = log_rows(out)  # rank 0 alone writes the log
    benco("test", "--checkpoint", out / "checkpoint-0.pth", "--test_data_path", dataset / "test_datasets.json",
          "--num_workers", "0", "--out", tmp_path / "single")
    (single,) = json.loads((tmp_path / "single.json").read_text())
    # Same checkpoint, same 4 images: the reduction across ranks must match one process to float precision.
    assert row["test_metrics"]["synthetic"]["pixel-level F1"] == pytest.approx(single["pixel-level F1"], abs=1e-5)


def test_predict_writes_masks_at_the_original_size(ncl_run, tmp_path, capsys):
    out, _ = ncl_run
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (75, 130, 3), dtype=np.uint8)).save(tmp_path / "odd.jpg")
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "gray.png")  # grayscale: converted
    result = run(capsys, "predict", tmp_path, "--checkpoint", out, "--out", tmp_path / "pred")
    assert (tmp_path / "pred" / "predict.log").read_text().startswith("==== benco predict")
    assert "Wrote 2 masks, 2 overlays" in result.err and "\x1b" not in result.err + result.out
    assert "s an image" in result.err
    mask = Image.open(tmp_path / "pred" / "odd_mask.png")
    assert mask.size == (130, 75) and mask.mode == "L"
    assert Image.open(tmp_path / "pred" / "odd_overlay.jpg").size == (130, 75)
    assert Image.open(tmp_path / "pred" / "gray_mask.png").size == (50, 40)
    report = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert all(0 <= r["score"] <= 1 for r in report.values()) and len(report) == 2
    run(capsys, "predict", tmp_path / "odd.jpg", "--checkpoint", out, "--out", tmp_path / "full", "--full_resolution")
    assert Image.open(tmp_path / "full" / "odd_mask.png").size == (130, 75)
    # a photograph longer than --max_side is predicted at that size; its mask is still at its own size
    result = run(capsys, "predict", tmp_path / "odd.jpg", "--checkpoint", out, "--out", tmp_path / "capped",
                 "--full_resolution", "--max_side", "64")
    assert Image.open(tmp_path / "capped" / "odd_mask.png").size == (130, 75)
    assert "1 image(s) longer than --max_side 64 were predicted at that size" in result.err


def test_predict_never_reads_its_own_outputs_nor_masks_nor_mixes_runs(ncl_run, dataset, tmp_path, capsys):
    """A dataset folder's Gt/ masks used to be "predicted" too (and took the plain output names), a second run
    into the same --out replaced predictions.json beside the first run's PNGs, and `benco predict DIR --out DIR`
    run twice predicted on its own outputs."""
    import shutil

    from helpers import error_of

    out, _ = ncl_run
    folder = tmp_path / "set"
    for sub in ("Tp", "Gt"):
        (folder / sub).mkdir(parents=True)
        for file in sorted((dataset / "test" / sub).iterdir())[:2]:
            shutil.copy(file, folder / sub / file.name)
    code, err = error_of(["predict", folder, "--checkpoint", out, "--out", folder / "pred"], capsys)
    assert code == 0, err
    report = json.loads((folder / "pred" / "predictions.json").read_text())
    assert sorted(Path(k).parent.name for k in report) == ["Tp", "Tp"]
    names = sorted(p.relative_to(folder / "pred").as_posix() for p in (folder / "pred" / "Tp").iterdir())
    tp = sorted(p.stem for p in (folder / "Tp").iterdir())
    assert names == sorted([f"Tp/{n}_mask.png" for n in tp] + [f"Tp/{n}_overlay.jpg" for n in tp])
    before = (folder / "pred" / "predictions.json").read_text()
    code, err = error_of(["predict", folder, "--checkpoint", out, "--out", folder / "pred"], capsys)
    assert code == 2 and len(err) == 1 and "holds predictions of an earlier run (predictions.json)" in err[0]
    assert (folder / "pred" / "predictions.json").read_text() == before
    # into the input folder itself: its photographs only, and a second run is refused
    code, err = error_of(["predict", folder / "Tp", "--checkpoint", out, "--out", folder / "Tp"], capsys)
    assert code == 0, err
    assert len(json.loads((folder / "Tp" / "predictions.json").read_text())) == 2
    assert error_of(["predict", folder / "Tp", "--checkpoint", out, "--out", folder / "Tp"], capsys)[0] == 2


def photographs(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for n, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(n).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / name)
    return folder


def predicted(capsys, *argv):
    result = run(capsys, "predict", *argv)
    out = Path(argv[argv.index("--out") + 1])
    return json.loads((out / "predictions.json").read_text()), result.err


def test_predict_passes_over_what_any_earlier_run_wrote_wherever_its_out_was(ncl_run, tmp_path, capsys):
    """Only files below the current --out were passed over: `--out photos` then `--out pred2` predicted on
    au0_mask.png and au0_overlay.jpg (and wrote au0_mask_mask.png), and run1's outputs inside photos_b/ were
    predicted by run2 as photographs. The outputs carry a mark now; an earlier version's are read from its
    predictions.json."""
    out, _ = ncl_run
    photos = photographs(tmp_path / "photos", "au0.jpg", "tp1.png")
    first, _ = predicted(capsys, photos, "--checkpoint", out, "--out", photos)
    assert sorted(Path(k).name for k in first) == ["au0.jpg", "tp1.png"]
    second, said = predicted(capsys, photos, "--checkpoint", out, "--out", tmp_path / "pred2")
    assert sorted(Path(k).name for k in second) == ["au0.jpg", "tp1.png"]
    assert "passed over 4 mask(s) and overlay(s) that benco predict wrote" in said
    assert not list((tmp_path / "pred2").glob("*_mask_mask.png"))
    nested = photographs(tmp_path / "photos_b", "a.jpg")
    predicted(capsys, nested, "--checkpoint", out, "--out", nested / "run1")
    again, said = predicted(capsys, nested, "--checkpoint", out, "--out", nested / "run2")
    assert list(again) == [str(nested / "a.jpg")] and "passed over 2 mask(s)" in said
    # a file given by name is passed over too
    code, err = error_of(["predict", nested / "run1" / "a_mask.png", "--checkpoint", out, "--out", tmp_path / "x"], capsys)
    assert code == 2 and "no image" in err[-1]
    # outputs of an earlier version: no mark, listed in its predictions.json with the --out it was given
    legacy = photographs(tmp_path / "legacy", "b.jpg", "old/b_mask.png", "old/b_overlay.jpg")
    (legacy / "old" / "predictions.json").write_text(json.dumps({"legacy/b.jpg": {
        "mask": "legacy/old/b_mask.png", "overlay": "legacy/old/b_overlay.jpg", "score": 0.1}}))
    found, said = predicted(capsys, legacy, "--checkpoint", out, "--out", tmp_path / "pred3")
    assert list(found) == [str(legacy / "b.jpg")] and "passed over 2 mask(s)" in said


def test_predict_gives_every_input_its_own_outputs_and_overwrites_nothing(ncl_run, tmp_path, capsys):
    """coll/a.jpg, coll/a_2.jpg and coll/sub/a.jpg: the third was renamed a_2, onto a_2.jpg's outputs ("Wrote
    3 masks", 2 files). A user's own a_overlay.jpg beside a.jpg in --out was overwritten by a's overlay."""
    out, _ = ncl_run
    coll = photographs(tmp_path / "coll", "a.jpg", "a_2.jpg", "sub/a.jpg", "A.png")
    inputs = [coll / "a.jpg", coll / "a_2.jpg", coll / "sub" / "a.jpg", coll / "A.png", coll / "a.jpg"]
    found, said = predicted(capsys, *inputs, "--checkpoint", out, "--out", tmp_path / "collout")
    assert sorted(found) == sorted({str(p) for p in inputs}) and "Wrote 4 masks" in said
    masks = [Path(entry["mask"]) for entry in found.values()]
    overlays = [Path(entry["overlay"]) for entry in found.values()]
    assert len({p.name.lower() for p in masks}) == 4 and len({p.name.lower() for p in overlays}) == 4
    assert all(p.is_file() for p in masks + overlays)
    assert Path(found[str(coll / "a_2.jpg")]["mask"]).name == "a_2_mask.png"  # its own name, never taken
    mine = photographs(tmp_path / "mine", "a.jpg", "a_overlay.jpg")
    before = (mine / "a_overlay.jpg").read_bytes()
    found, _ = predicted(capsys, mine, "--checkpoint", out, "--out", mine)
    assert (mine / "a_overlay.jpg").read_bytes() == before
    assert len({entry["overlay"] for entry in found.values()}) == 2


def test_robustness_grid_covers_every_perturbation(ncl_run, dataset, tmp_path, capsys):
    out, _ = ncl_run
    run(capsys, "test-robust", "--checkpoint", out, "--test_data_path", dataset / "test", "--num_workers", "0",
        "--jpeg", "90", "--blur", "0,3", "--noise", "5", "--resize", "0.5", "--metrics", METRICS,
        "--out", tmp_path / "robust")
    assert "Test: [" in (tmp_path / "test-robust.log").read_text()
    rows = json.loads((tmp_path / "robust.json").read_text())
    assert [(r["perturbation"], r["parameter"]) for r in rows] == [("jpeg", 90), ("blur", 0), ("blur", 3), ("noise", 5), ("resize", 0.5)]
    # blur 0 is no perturbation: the clean score of the best checkpoint.
    summary = json.loads((out / "summary.json").read_text())
    clean = [r for r in log_rows(out) if r["epoch"] == summary["best_epoch"]][0]
    for metric in ("pixel-level F1", "pixel-level AUC"):
        assert rows[1][metric] == pytest.approx(clean["test_metrics"]["synthetic"][metric], abs=1e-6)
    assert rows[2]["pixel-level AUC"] != rows[1]["pixel-level AUC"]


def complexity_of(*argv):
    from ncl_plugin.commands import complexity, config_keys
    from ncl_plugin.config import parse

    return complexity.complexity(*parse(complexity.parser(), ["--device", "cpu", "--image_size", "64", *argv], config_keys()))


def test_complexity_counts_parameters_and_inference_flops():
    from ncl_plugin import NCL

    ncl = complexity_of("--model", "ncl", "--backbone", "resnet18")
    baseline = complexity_of("--model", "deeplabv3plus", "--backbone", "resnet18")
    model = NCL(backbone="resnet18")
    branches = sum(p.numel() for p in model.contrastive_loss.parameters())
    assert ncl["parameters"] == sum(p.numel() for p in model.parameters())
    # The two branches only train: inference uses exactly the baseline's parameters and FLOPs.
    assert ncl["inference_parameters"] == ncl["parameters"] - branches == baseline["parameters"]
    assert ncl["flops"] == pytest.approx(baseline["flops"], rel=1e-3) and ncl["flops"] > 1e8
    doubled = complexity_of("--model", "deeplabv3plus", "--backbone", "resnet18", "--image_size", "128")
    assert doubled["flops"] == pytest.approx(4 * baseline["flops"], rel=0.05)


def test_the_readme_python_example_loads_a_run_and_predicts(ncl_run, tmp_path):
    """The README's "From Python" example, as written, on a run folder of `benco train`."""
    import re
    import subprocess

    out, _ = ncl_run
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = re.search(r"## From Python\n\n```python\n(.*?)```", readme, re.S).group(1)
    assert '"output_dir/quickstart"' in example
    script = tmp_path / "example.py"
    script.write_text(example.replace('"output_dir/quickstart"', repr(str(out))))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    shape, score = result.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert shape == "torch.Size([1, 1, 128, 128])" and 0.0 <= float(score) <= 1.0


# ---------------------------------------------------------------- thresholds chosen on a validation list
def json_list(folder, names, path):
    path.write_text(json.dumps([[str(folder / "Tp" / n), str(folder / "Gt" / m)] for n, m in names]))
    return path


def test_thresholds_are_chosen_on_the_list_given_and_never_reported_on_it(ncl_run, dataset, tmp_path, capsys):
    out, _ = ncl_run
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(out / "checkpoint-1.pth", run_dir)
    shutil.copy(out / "summary.json", run_dir)
    folder = dataset / "test"
    pairs = list(zip(sorted(p.name for p in (folder / "Tp").iterdir()), sorted(p.name for p in (folder / "Gt").iterdir())))
    half = len(pairs) // 2
    val, test = json_list(folder, pairs[:half], tmp_path / "val.json"), json_list(folder, pairs[half:], tmp_path / "test.json")
    # both lists hold authentic images too (the image thresholds, the false positives): the set's own, and
    # training photographs given as authentic (the threshold was chosen on none of them)
    authentic = sorted((folder / "Au").iterdir()) + sorted((dataset / "train" / "Tp").iterdir())[:3]
    val.write_text(json.dumps(json.loads(val.read_text()) + [[str(a), "Negative"] for a in authentic[::2]]))
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(json.loads(test.read_text()) + [[str(a), "Negative"] for a in authentic[1::2]]))
    checkpoint = run_dir / "checkpoint-1.pth"
    common = ["--image_size", "64", "--num_workers", "0"]

    said = run(capsys, "calibrate", "--checkpoint", checkpoint, "--val_data_path", val, *common).err
    record = json.loads((run_dir / "threshold.json").read_text())["checkpoint-1.pth"]
    assert record["images"] == sorted([n for n, _ in pairs[:half]] + [a.name for a in authentic[::2]])
    assert record["chosen_on"] == str(val) and record["image_threshold"] is not None
    assert f"pixel threshold {record['pixel_threshold']:.2f}" in said
    # the pixel threshold is bounded by what it flags on the authentic validation images, and says it
    assert record["authentic_images"] == len(authentic[::2]) and record["max_authentic_fpr"] == 0.05
    assert record["authentic_fpr"] <= 0.05 or not record["pixel_rule"]
    assert f"flags {record['authentic_fpr']:.1%} of the pixels of its {len(authentic[::2])} authentic images" in said
    # every --image_score compared on the same images, the one the model uses named, each with its threshold
    assert record["image_score"] == "max" and set(record["image_scores"]) == {"max", "top1", "area", "mean"}
    assert set(record["image_thresholds"]) == {"max", "top1", "area", "mean"}
    assert record["image_thresholds"]["max"]["threshold"] == record["image_threshold"]
    assert f"max (used) {record['image_scores']['max']['auc']:.3f}" in said
    assert json.loads((run_dir / "summary.json").read_text())["thresholds"]["checkpoint-1.pth"]["pixel_threshold"] == record["pixel_threshold"]

    # On other images: F1 at the chosen threshold beside IMDL-BenCo's F1 at 0.5, which stays, and what the
    # threshold flags on the authentic test images.
    run(capsys, "test", "--checkpoint", checkpoint, "--test_data_path", mixed, *common, "--out", tmp_path / "on-test",
        "--metrics", "pixel-f1,image-auc")
    (row,) = json.loads((tmp_path / "on-test.json").read_text())
    assert "pixel-level F1" in row and "pixel-level F1 (validation threshold)" in row
    assert 0 <= row["authentic FPR (validation threshold)"] <= 1 and "image-level AUC" in row
    assert "image-level F1 (validation threshold)" in row
    # A set of tampered images only: image F1 meant nothing there (0.963 on a real run); left out, and said.
    said = run(capsys, "test", "--checkpoint", checkpoint, "--test_data_path", test, *common,
               "--out", tmp_path / "tampered-only", "--metrics", "pixel-f1,image-auc").err
    (row,) = json.loads((tmp_path / "tampered-only.json").read_text())
    assert "pixel-level F1 (validation threshold)" in row and "authentic FPR (validation threshold)" not in row
    assert not [k for k in row if k.startswith("image-level")]
    assert "lists no authentic image" in said and "image-level F1 (validation threshold)" in said
    # On the images that chose it: left out, and said.
    said = run(capsys, "test", "--checkpoint", checkpoint, "--test_data_path", val, *common, "--out", tmp_path / "on-val").err
    (row,) = json.loads((tmp_path / "on-val.json").read_text())
    assert "pixel-level F1 (validation threshold)" not in row and "pixel-level F1" in row
    assert f"its thresholds were chosen on {len(record['images'])} of these images" in said

    # predict draws with the chosen threshold and says what it flags on authentic images; --threshold still wins
    image = folder / "Tp" / pairs[-1][0]
    said = run(capsys, "predict", image, "--checkpoint", checkpoint, "--out", tmp_path / "pred", *common).err
    (result,) = json.loads((tmp_path / "pred" / "predictions.json").read_text()).values()
    assert result["pixel_threshold"] == record["pixel_threshold"] and "chosen by benco calibrate on" in said
    assert f"it flags {record['authentic_fpr']:.1%} of an authentic validation image's pixels" in said
    assert result["image_threshold"] == record["image_thresholds"]["max"]["threshold"]
    said = run(capsys, "predict", image, "--checkpoint", checkpoint, "--out", tmp_path / "pred2", "--threshold", "0.7",
               *common).err
    (result,) = json.loads((tmp_path / "pred2" / "predictions.json").read_text()).values()
    assert result["pixel_threshold"] == 0.7
    curves = record["curves"]  # the sweep, kept: what any threshold of it flags on authentic validation images
    assert curves["threshold"][69] == 0.7 and len(curves["pixel_f1"]) == len(curves["authentic_fpr"]) == 99
    assert f"it flags {curves['authentic_fpr'][69]:.1%} of an authentic validation image's pixels" in said
    assert curves["authentic_fpr"][curves["threshold"].index(record["pixel_threshold"])] == pytest.approx(
        record["authentic_fpr"], abs=1e-6)
    # another image score: its own threshold, never max's
    run(capsys, "predict", image, "--checkpoint", checkpoint, "--out", tmp_path / "pred3", "--image_score", "mean", *common)
    (result,) = json.loads((tmp_path / "pred3" / "predictions.json").read_text()).values()
    assert result["image_threshold"] == record["image_thresholds"]["mean"]["threshold"]
    assert result["verdict"] == ("tampered" if result["score"] > result["image_threshold"] else "authentic")
    # a record of an earlier version holds max's threshold alone: another score is refused in one line
    old = json.loads((run_dir / "threshold.json").read_text())
    del old["checkpoint-1.pth"]["image_thresholds"]
    (run_dir / "threshold.json").write_text(json.dumps(old))
    for command in (["predict", image, "--out", tmp_path / "pred4"], ["test", "--test_data_path", mixed]):
        code, err = error_of([*command, "--checkpoint", checkpoint, "--image_score", "mean", *common], capsys)
        assert code == 2 and len(err) == 1, err
        assert "chosen for --image_score max, not mean; run benco calibrate again" in err[0]
    assert not (tmp_path / "pred4" / "predictions.json").exists()


def test_calibrate_names_a_list_without_tampered_images(ncl_run, dataset, tmp_path, capsys):
    out, _ = ncl_run
    folder = dataset / "test"
    image = sorted((folder / "Tp").iterdir())[0]
    (tmp_path / "authentic.json").write_text(json.dumps([[str(image), "Negative"]]))
    shutil.copy(out / "checkpoint-1.pth", tmp_path)
    code, err = error_of(["calibrate", "--checkpoint", tmp_path / "checkpoint-1.pth", "--val_data_path",
                          tmp_path / "authentic.json", "--image_size", "64", "--num_workers", "0"], capsys)
    assert code == 2 and err[-1].endswith("no image with tampered pixels; a pixel threshold needs some")
    assert not (tmp_path / "threshold.json").exists()

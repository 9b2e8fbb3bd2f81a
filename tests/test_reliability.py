"""Bad input gets one clear line; faults lose nothing; interrupted runs resume exactly."""
import errno
import json
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ncl_plugin import cli, synthetic
from ncl_plugin.checkpoint import CheckpointError, load_checkpoint
from ncl_plugin.errors import RunError
from ncl_plugin.resumable import GuardedScaler
from ncl_plugin.training_state import INTERRUPTED_NAME, resume, save_checkpoint
from ncl_plugin.validation import ImageLoader, BadSample

SMALL = [
    "--model", "ncl", "--backbone", "resnet18", "--output_stride", "16", "--patch_size", "16",
    "--image_size", "64", "--batch_size", "2", "--test_batch_size", "4", "--accum_iter", "1",
    "--warmup_epochs", "1", "--test_period", "1", "--blr", "0.05",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return synthetic.build(str(tmp_path_factory.mktemp("synth")), n=40, size=64, seed=3, show_progress=False)


def copy_mani(source: Path, target: Path, count=None) -> Path:
    for sub in ("Tp", "Gt"):
        (target / sub).mkdir(parents=True)
        for file in sorted((source / sub).iterdir())[:count]:
            (target / sub / file.name).write_bytes(file.read_bytes())
    return target


def error_of(argv, capsys):
    """Run `benco` in this process; return (exit code, the lines it wrote to stderr)."""
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


def train_args(data, test, out, *extra):
    return ["train", *SMALL, "--epochs", "1", "--num_workers", "0", "--data_path", data,
            "--test_data_path", test, "--output_dir", out, *extra]


# ---------------------------------------------------------------- bad input
def test_empty_tp_folder(tmp_path, capsys):
    (tmp_path / "set" / "Tp").mkdir(parents=True)
    (tmp_path / "set" / "Gt").mkdir()
    code, err = error_of(train_args(tmp_path / "set", tmp_path / "set", tmp_path / "out"), capsys)
    assert code == 2 and err == [f"benco train: error: --data_path {tmp_path / 'set'}: Tp/ is empty"]


def test_tp_and_gt_counts_differ(dataset, tmp_path, capsys):
    folder = copy_mani(dataset / "train", tmp_path / "set", count=5)
    extra = sorted((folder / "Gt").iterdir())[0]
    extra.rename(folder / "Gt" / "zz_orphan.png")
    (folder / "Tp" / "yy_alone.png").write_bytes(b"")
    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out"), capsys)
    assert code == 2 and len(err) == 1
    assert "Tp/ has 6 files but Gt/ has 5; they are paired in sorted order; for example" in err[0]


def test_json_entry_that_does_not_exist_is_named(dataset, tmp_path, capsys):
    entries = json.loads((dataset / "train.json").read_text())[:4]
    entries[2][0] = str(tmp_path / "gone.png")
    listing = tmp_path / "train.json"
    listing.write_text(json.dumps(entries))
    code, err = error_of(train_args(listing, dataset / "test", tmp_path / "out"), capsys)
    assert code == 2
    assert err == [f"benco train: error: --data_path {listing}: {tmp_path / 'gone.png'}: file not found; "
                   "fix the files or pass --skip_bad_samples to leave them out"]


def test_test_set_json_that_is_a_list(dataset, capsys, tmp_path):
    code, err = error_of(train_args(dataset / "train", dataset / "test.json", tmp_path / "out"), capsys)
    assert code == 2 and len(err) == 1
    assert "expected a JSON map of test-set names to dataset paths" in err[0] and "got a list" in err[0]


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


def test_truncated_image_fails_at_decode_naming_it_or_is_skipped_and_counted(dataset, tmp_path, capsys):
    folder = copy_mani(dataset / "train", tmp_path / "set", count=8)
    truncated = sorted((folder / "Tp").iterdir())[4]
    truncated.write_bytes(truncated.read_bytes()[:300])  # the header survives, the pixels do not
    code, err = error_of(train_args(folder, dataset / "test", tmp_path / "out"), capsys)
    assert code == 2  # the error is the last line, after the progress bar of the epoch it stopped
    assert err[-1].startswith(f"benco train: error: {truncated}: unreadable or truncated image")
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


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--patch_size", "30"], "--patch_size must be a positive multiple of 4"),
        (["--patch_size", "128"], "--patch_size 128 is larger than --image_size 64"),
        (["--image_size", "100"], "--image_size 100: must be a multiple of 32"),
    ],
)
def test_bad_sizes_are_one_line_errors(dataset, tmp_path, capsys, extra, message):
    code, err = error_of(train_args(dataset / "train", dataset / "test", tmp_path / "out", *extra), capsys)
    assert code == 2 and len(err) == 1 and message in err[0]


def test_invalid_yaml_names_the_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model: ncl\nepochs: [3\n")
    code, err = error_of(["train", "--config", config], capsys)
    assert code == 2 and len(err) == 1 and f"--config {config}: invalid YAML at line" in err[0]


def test_yaml_is_read_safely(tmp_path, capsys):
    config = tmp_path / "evil.yaml"
    config.write_text("model: !!python/object/apply:os.system ['touch " + str(tmp_path / "pwned") + "']\n")
    code, err = error_of(["train", "--config", config], capsys)
    assert code == 2 and "invalid YAML" in err[0]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu(dataset, tmp_path, capsys):
    code, err = error_of(train_args(dataset / "train", dataset / "test", tmp_path / "out", "--device", "cuda"), capsys)
    assert code == 2 and err == ["benco train: error: --device cuda: no CUDA GPU is visible on this machine; use --device cpu"]


def test_more_processes_than_gpus(monkeypatch):
    import argparse

    from ncl_plugin import compat
    from ncl_plugin.errors import UsageError

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    args = argparse.Namespace(device="cuda", dist_url="env://")
    with pytest.raises(UsageError, match="--nproc_per_node 4 is larger than the 2 GPU"):
        compat.init_distributed(args)


# ---------------------------------------------------------------- checkpoints
def small_model():
    from ncl_plugin import NCL

    return NCL(backbone="resnet18", patch_size=16)


def saving_args(tmp_path):
    import argparse

    return argparse.Namespace(output_dir=str(tmp_path), resume="auto", start_epoch=0, model="ncl")


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    model = small_model()
    optimizer = torch.optim.AdamW(model.parameters())
    scaler = GuardedScaler(torch.amp.GradScaler("cpu", enabled=False))
    args = saving_args(tmp_path)
    assert save_checkpoint(args, {}, 0, model, optimizer, scaler)
    before = (tmp_path / "checkpoint-0.pth").read_bytes()

    real_save = torch.save

    def disk_full(obj, handle, *a, **k):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    assert save_checkpoint(args, {}, 0, model, optimizer, scaler) is None
    message = capsys.readouterr().err
    assert "could not write" in message and "the disk is full" in message and "previous checkpoint is kept" in message
    monkeypatch.setattr(torch, "save", real_save)
    assert (tmp_path / "checkpoint-0.pth").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0.pth"]  # no temporary file left


def test_a_non_finite_model_is_never_saved(tmp_path):
    model = small_model()
    with torch.no_grad():
        model.net.decoder.heads[0].weight[0, 0, 0, 0] = float("nan")
    scaler = GuardedScaler(torch.amp.GradScaler("cpu", enabled=False))
    with pytest.raises(RunError, match="weights are not finite"):
        save_checkpoint(saving_args(tmp_path), {}, 3, model, torch.optim.AdamW(model.parameters()), scaler)
    assert not (tmp_path / "checkpoint-3.pth").exists()


def test_resume_auto_skips_a_corrupt_checkpoint(tmp_path, capsys):
    model = small_model()
    optimizer = torch.optim.AdamW(model.parameters())
    scaler = GuardedScaler(torch.amp.GradScaler("cpu", enabled=False))
    args = saving_args(tmp_path)
    save_checkpoint(args, {}, 4, model, optimizer, scaler)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    save_checkpoint(args, {}, 5, model, optimizer, scaler)
    data = (tmp_path / "checkpoint-5.pth").read_bytes()
    (tmp_path / "checkpoint-5.pth").write_bytes(data[: len(data) // 2])  # killed mid-copy by another tool

    fresh = small_model()
    step, rng = resume(args, fresh, torch.optim.AdamW(fresh.parameters()), scaler)
    assert args.start_epoch == 5 and step == 0 and rng is None
    message = capsys.readouterr().err
    assert "skipping --resume" in message and "checkpoint-5.pth" in message
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in good.items())


def test_arbitrary_pickles_need_an_explicit_flag(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"model": {}, "note": Fraction(1, 3)}, path)
    with pytest.raises(CheckpointError, match="pass --trust_checkpoint only if you trust its source"):
        load_checkpoint(str(path))
    assert load_checkpoint(str(path), trusted=True)["note"] == Fraction(1, 3)


def test_imdlbenco_checkpoints_with_a_namespace_load_without_full_unpickling(tmp_path):
    import argparse

    path = tmp_path / "checkpoint-0.pth"
    torch.save({"model": {"w": torch.ones(1)}, "epoch": 0, "args": argparse.Namespace(lr=1e-4, model="x")}, path)
    assert load_checkpoint(str(path))["args"].lr == 1e-4


# ---------------------------------------------------------------- non-finite losses
def test_non_finite_losses_are_skipped_then_stop_the_run():
    parameter = torch.nn.Parameter(torch.ones(()))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    inner_calls = []
    guarded = GuardedScaler(lambda loss, opt, **k: inner_calls.append(loss.item()), max_nonfinite=3)
    guarded(parameter * float("nan"), optimizer)
    guarded(parameter * float("inf"), optimizer)
    guarded(parameter * 2.0, optimizer)  # a finite one resets the count
    assert inner_calls == [2.0] and guarded.skipped == 2 and guarded.consecutive == 0
    guarded(parameter * float("nan"), optimizer)
    guarded(parameter * float("nan"), optimizer)
    with pytest.raises(RunError, match="not finite for 3 steps in a row"):
        guarded(parameter * float("nan"), optimizer)


# ---------------------------------------------------------------- interruption
def run_train(out, *extra, env=None, dataset=None):
    argv = [sys.executable, "-m", "ncl_plugin", "train", *SMALL, "--epochs", "2", "--save_period", "1", "--num_workers", "1",
            "--data_path", str(dataset / "train"), "--test_data_path", str(dataset / "test_datasets.json"),
            "--output_dir", str(out), *extra]
    return argv, {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1", **(env or {})}


def test_sigterm_mid_epoch_then_resume_ends_exactly_like_an_uninterrupted_run(dataset, tmp_path):
    argv, env = run_train(tmp_path / "whole", dataset=dataset)
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=600)

    argv, env = run_train(tmp_path / "cut", dataset=dataset)
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if "Epoch: [1]" in line:  # IMDL-BenCo's loop has finished the first batch of the second epoch
            process.send_signal(signal.SIGTERM)
            break
    output = process.stdout.read()
    assert process.wait(timeout=600) == 128 + signal.SIGTERM, output[-2000:]
    state = torch.load(tmp_path / "cut" / INTERRUPTED_NAME, weights_only=True)
    assert state["resume_epoch"] == 1 and 0 < state["resume_step"] < 16  # stopped mid-epoch
    assert "continue with --resume auto" in output

    argv, env = run_train(tmp_path / "cut", "--resume", "auto", dataset=dataset)
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=600)
    whole = [json.loads(l) for l in (tmp_path / "whole" / "log.txt").read_text().splitlines()]
    cut = [json.loads(l) for l in (tmp_path / "cut" / "log.txt").read_text().splitlines()]
    assert [r["epoch"] for r in cut] == [0, 1]
    assert cut[-1]["test_metrics"] == whole[-1]["test_metrics"]
    final_whole = torch.load(tmp_path / "whole" / "checkpoint-1.pth", weights_only=True)["model"]
    final_cut = torch.load(tmp_path / "cut" / "checkpoint-1.pth", weights_only=True)["model"]
    assert all(torch.equal(final_whole[k], final_cut[k]) for k in final_whole)  # bit for bit
    assert not (tmp_path / "cut" / INTERRUPTED_NAME).exists()  # a finished run leaves no stale state


def test_resume_after_a_completed_epoch_is_exact(dataset, tmp_path):
    argv, env = run_train(tmp_path / "whole", dataset=dataset)
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=600)
    argv, env = run_train(tmp_path / "later", "--resume", tmp_path / "whole" / "checkpoint-0.pth", dataset=dataset)
    subprocess.run([str(a) for a in argv], env=env, check=True, capture_output=True, timeout=600)
    whole = json.loads((tmp_path / "whole" / "log.txt").read_text().splitlines()[-1])
    later = json.loads((tmp_path / "later" / "log.txt").read_text().splitlines()[-1])
    assert later["epoch"] == 1 and later["test_metrics"] == whole["test_metrics"]

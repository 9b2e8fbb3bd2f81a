"""Checkpoints: saved atomically, never with non-finite weights, loaded without running code, resumed."""
import argparse
import errno
from fractions import Fraction

import pytest
import torch

from helpers import small_ncl
from ncl_plugin.engine.checkpoints import CheckpointError, load_checkpoint, resume, save_checkpoint
from ncl_plugin.engine.training import GuardedScaler
from ncl_plugin.errors import RunError


def saving_args(tmp_path):
    return argparse.Namespace(output_dir=str(tmp_path), resume="auto", start_epoch=0, model="ncl")


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    model = small_ncl()
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
    model = small_ncl()
    with torch.no_grad():
        model.net.decoder.heads[0].weight[0, 0, 0, 0] = float("nan")
    scaler = GuardedScaler(torch.amp.GradScaler("cpu", enabled=False))
    with pytest.raises(RunError, match="weights are not finite"):
        save_checkpoint(saving_args(tmp_path), {}, 3, model, torch.optim.AdamW(model.parameters()), scaler)
    assert not (tmp_path / "checkpoint-3.pth").exists()


def test_resume_auto_skips_a_corrupt_checkpoint(tmp_path, capsys):
    model = small_ncl()
    optimizer = torch.optim.AdamW(model.parameters())
    scaler = GuardedScaler(torch.amp.GradScaler("cpu", enabled=False))
    args = saving_args(tmp_path)
    save_checkpoint(args, {}, 4, model, optimizer, scaler)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    save_checkpoint(args, {}, 5, model, optimizer, scaler)
    data = (tmp_path / "checkpoint-5.pth").read_bytes()
    (tmp_path / "checkpoint-5.pth").write_bytes(data[: len(data) // 2])  # killed mid-copy by another tool

    fresh = small_ncl()
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


@pytest.mark.parametrize("command", [["test"], ["test-robust"], ["predict", "."]])
def test_a_missing_or_foreign_checkpoint_is_named_before_any_question_about_the_model(command, tmp_path, capsys):
    """Without --model, the checkpoint supplies it: a missing one said "--model is required", a text file
    raised KeyError from deep inside pickle."""
    from helpers import error_of

    text = tmp_path / "notackpt.pth"
    text.write_text("not a checkpoint\n")
    for path, message in ((tmp_path / "nope.pth", "no such file or folder"), (text, "not a PyTorch checkpoint")):
        data = [] if command[0] == "predict" else ["--test_data_path", tmp_path]
        code, err = error_of([*command, "--checkpoint", path, *data], capsys)
        assert code == 2 and len(err) == 1 and f"--checkpoint {path}: {message}" in err[0], err


def test_imdlbenco_checkpoints_with_a_namespace_load_without_full_unpickling(tmp_path):
    path = tmp_path / "checkpoint-0.pth"
    torch.save({"model": {"w": torch.ones(1)}, "epoch": 0, "args": argparse.Namespace(lr=1e-4, model="x")}, path)
    assert load_checkpoint(str(path))["args"].lr == 1e-4



def test_a_checkpoint_says_what_it_was_trained_on(tmp_path):
    from ncl_plugin.engine.checkpoints import SYNTHETIC_WARNING, trained_on

    quickstart = {"args": {"training_data": "synthetic:the embedded synthetic set (1000 generated images)"}}
    assert trained_on(quickstart) == f"the embedded synthetic set (1000 generated images): {SYNTHETIC_WARNING}"
    older = {"args": {"data_path": "/home/u/.cache/ncl_plugin/synthetic-v4-n1000-s128-seed0/train"}}
    assert trained_on(older).endswith(SYNTHETIC_WARNING)  # saved before training_data was recorded
    real = {"args": {"data_path": "/data/casiav1_split/train.json", "training_data": "/data/casiav1_split/train.json"}}
    assert trained_on(real) == "/data/casiav1_split/train.json"
    assert trained_on({"model": {}}) == "unknown training data (the checkpoint does not say)"


def test_a_checkpoint_of_another_model_names_the_weights_that_do_not_fit(tmp_path):
    from ncl_plugin import DeepLabV3Plus
    from ncl_plugin.engine.checkpoints import load_weights

    path = tmp_path / "checkpoint-0.pth"
    torch.save({"model": small_ncl().state_dict(), "args": {"model": "ncl"}}, path)
    with pytest.raises(CheckpointError) as raised:
        load_weights(DeepLabV3Plus(backbone="resnet50", patch_size=16), str(path))
    message = str(raised.value)
    assert "does not fit this model:" in message and "it was trained as --model ncl" in message
    assert "differ in shape (e.g. " in message and " in the file, " in message


def test_a_checkpoint_saved_before_pivot_norm_loads_with_its_batchnorm_branches(tmp_path):
    from ncl_plugin import NCL
    from ncl_plugin.engine.checkpoints import checkpoint_defaults, load_weights

    old = NCL(backbone="resnet18", patch_size=16, pivot_norm="batch")  # what every NCL had before the option
    model_args = {"backbone": "resnet18", "patch_size": 16}  # ... and its record, without pivot_norm
    torch.save({"model": old.state_dict(), "args": {"model": "ncl"}, "model_args": model_args}, tmp_path / "checkpoint-0.pth")
    name, defaults = checkpoint_defaults(str(tmp_path / "checkpoint-0.pth"))
    assert name == "ncl" and defaults["pivot_norm"] == "batch"
    load_weights(NCL(**defaults), str(tmp_path / "checkpoint-0.pth"))  # fits: no error
    new = {"model": small_ncl().state_dict(), "args": {"model": "ncl"}, "model_args": model_args}
    torch.save(new, tmp_path / "checkpoint-1.pth")
    assert "pivot_norm" not in checkpoint_defaults(str(tmp_path / "checkpoint-1.pth"))[1]

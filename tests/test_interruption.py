"""An interrupted run resumes exactly: the same weights, bit for bit, as a run never interrupted."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from helpers import SMALL_TRAIN
from ncl_plugin.engine.checkpoints import INTERRUPTED_NAME


def run_train(out, *extra, env=None, dataset=None):
    argv = [sys.executable, "-m", "ncl_plugin", "train", *SMALL_TRAIN, "--epochs", "2", "--save_period", "1", "--num_workers", "1",
            "--data_path", str(dataset / "train"), "--test_data_path", str(dataset / "test_datasets.json"),
            "--output_dir", str(out), *extra]
    return argv, {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1", **(env or {})}


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_ends_exactly_like_an_uninterrupted_run(dataset, tmp_path):
    argv, env = run_train(tmp_path / "whole", dataset=dataset)
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=600)

    argv, env = run_train(tmp_path / "cut", "--verbose", dataset=dataset)  # IMDL-BenCo's lines show its progress
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
    whole = [json.loads(line) for line in (tmp_path / "whole" / "log.txt").read_text().splitlines()]
    cut = [json.loads(line) for line in (tmp_path / "cut" / "log.txt").read_text().splitlines()]
    assert [r["epoch"] for r in cut] == [0, 1]
    assert cut[-1]["test_metrics"] == whole[-1]["test_metrics"]
    final_whole = torch.load(tmp_path / "whole" / "checkpoint-1.pth", weights_only=True)["model"]
    final_cut = torch.load(tmp_path / "cut" / "checkpoint-1.pth", weights_only=True)["model"]
    assert all(torch.equal(final_whole[k], final_cut[k]) for k in final_whole)  # bit for bit
    assert not (tmp_path / "cut" / INTERRUPTED_NAME).exists()  # a finished run leaves no stale state


@pytest.mark.slow
def test_resume_after_a_completed_epoch_is_exact(dataset, tmp_path):
    argv, env = run_train(tmp_path / "whole", dataset=dataset)
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=600)
    argv, env = run_train(tmp_path / "later", "--resume", tmp_path / "whole" / "checkpoint-0.pth", dataset=dataset)
    subprocess.run([str(a) for a in argv], env=env, check=True, capture_output=True, timeout=600)
    whole = json.loads((tmp_path / "whole" / "log.txt").read_text().splitlines()[-1])
    later = json.loads((tmp_path / "later" / "log.txt").read_text().splitlines()[-1])
    assert later["epoch"] == 1 and later["test_metrics"] == whole["test_metrics"]

"""Devices, processes and sizes: what cannot run is said in one line before anything starts."""
import argparse

import pytest
import torch

from helpers import error_of, train_args
from ncl_plugin.engine import compat
from ncl_plugin.errors import UsageError


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


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu(dataset, tmp_path, capsys):
    code, err = error_of(train_args(dataset / "train", dataset / "test", tmp_path / "out", "--device", "cuda"), capsys)
    assert code == 2 and err == ["benco train: error: --device cuda: no CUDA GPU is visible on this machine; use --device cpu"]


def test_more_processes_than_gpus(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    args = argparse.Namespace(device="cuda", dist_url="env://")
    with pytest.raises(UsageError, match="--nproc_per_node 4 is larger than the 2 GPU"):
        compat.init_distributed(args)

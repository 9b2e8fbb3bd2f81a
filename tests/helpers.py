"""Small builders shared by the tests."""
import os
import subprocess
import sys

import torch


def benco(*argv, cwd=None, timeout=600, launcher=None, check=True, env=None):
    """Run `python -m ncl_plugin ARGV` (or under ``launcher``); assert success unless check=False."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    command = (launcher or [sys.executable, "-m", "ncl_plugin"]) + [str(a) for a in argv]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def rect_mask(height, width, *boxes):
    """A (1, 1, H, W) binary mask with 1 inside each (top, left, bottom, right) box."""
    mask = torch.zeros(height, width)
    for top, left, bottom, right in boxes:
        mask[top:bottom, left:right] = 1
    return mask[None, None]


SMALL_TRAIN = [
    "--model", "ncl", "--backbone", "resnet18", "--output_stride", "16", "--patch_size", "16",
    "--image_size", "64", "--batch_size", "2", "--test_batch_size", "4", "--accum_iter", "1",
    "--warmup_epochs", "1", "--test_period", "1", "--blr", "0.05",
]


def train_args(data, test, out, *extra):
    """`benco train` of one small epoch on ``data``, tested on ``test``, in this process."""
    return ["train", *SMALL_TRAIN, "--epochs", "1", "--num_workers", "0", "--data_path", data,
            "--test_data_path", test, "--output_dir", out, *extra]


def run(capsys, *argv):
    """Run `benco ARGV` in this process and assert success; returns what it wrote (``.out``, ``.err``).
    A subprocess would prove nothing more here and costs an interpreter start with torch and IMDL-BenCo."""
    from ncl_plugin import cli

    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, f"benco {' '.join(map(str, argv))}\n{captured.out[-3000:]}\n{captured.err[-3000:]}"
    return captured


def error_of(argv, capsys):
    """Run `benco` in this process; return (exit code, the lines it wrote to stderr)."""
    from ncl_plugin import cli

    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


def small_ncl():
    from ncl_plugin import NCL

    return NCL(backbone="resnet18", patch_size=16)

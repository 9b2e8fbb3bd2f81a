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

"""CI's own footing: the suite leaves no passing test's files behind, and `.ci/run` refuses a short disk at once."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ci_script(tmp_path):
    """A copy of .ci/run alone: it cds to its own parent, so nothing of this checkout is touched."""
    (tmp_path / ".ci").mkdir()
    return shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")


def test_a_passing_tests_folder_is_not_kept(request):
    # A full run writes about 8 GB of checkpoints; pytest's default ("all", last 3 runs) kept 24 GB.
    assert request.config.getini("tmp_path_retention_policy") == "failed"


def test_ci_stops_in_one_line_when_the_disk_is_short(ci_script):
    done = subprocess.run(
        ["bash", str(ci_script)], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "NEED_GB": str(10**9)},
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "GB free under" in lines[0] and "NEED_GB" in lines[0], done.stderr
    assert not done.stdout  # no install began


def test_ci_stops_where_an_install_fails(ci_script, tmp_path):
    # A failing venv creation used to fall through (set -e ignores failures inside an && list)
    # to `python -m pytest` under whatever Python the shell had.
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("python3", "python"):
        (fake / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/calls"\nexit 1\n')
        (fake / name).chmod(0o755)
    done = subprocess.run(
        ["bash", str(ci_script)], capture_output=True, text=True, timeout=60,
        env={"PATH": f"{fake}:/usr/bin:/bin", "NEED_GB": "0"},
    )  # fmt: skip
    assert done.returncode != 0
    assert (tmp_path / "calls").read_text().splitlines() == ["python3 -m venv .venv"]

"""What the repository tracks is what a clone can carry, on any system.

Kept benchmark runs keep what their tables read (log.txt, summary.json, bench.json, a test's result), never
training output nothing reads; no tracked path holds a character Windows refuses; the
benchmarks folder stays small; a summary names its checkpoints, not the machine's paths.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_LIMIT = 4 * 1024 * 1024
KEPT = {"log.txt", "summary.json", "bench.json"}


def tracked():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [p for p in out.split("\0") if p and (ROOT / p).exists()]


def test_no_tracked_path_holds_a_character_windows_refuses():
    bad = [p for p in tracked() if any(c in p for c in ':*?"<>|')]
    assert not bad, f"{len(bad)} tracked paths cannot be checked out on Windows, e.g. {bad[:3]}"


def test_kept_runs_keep_only_what_their_tables_read():
    runs = [p for p in tracked() if p.startswith("benchmarks/results/runs/")]
    inside = [p for p in runs if len(Path(p).relative_to("benchmarks/results/runs").parts) > 2]
    # a run's test on a real list (OUT/on-<list>/<run>.json, benco test's result) is what its table reads
    tested = [p for p in inside if Path(p).parent.name.startswith("on-") and Path(p).suffix == ".json"]
    extra = [p for p in inside if Path(p).name not in KEPT and p not in tested]
    assert not extra, f"kept runs track files no table reads: {extra[:5]}"


def test_benchmarks_folder_stays_small():
    size = sum((ROOT / p).stat().st_size for p in tracked() if p.startswith("benchmarks/"))
    assert size <= BENCHMARKS_LIMIT, f"benchmarks/ tracks {size / 2**20:.1f} MiB, more than 4 MiB"


def test_kept_summaries_name_their_checkpoints_not_the_machine():
    for path in (p for p in tracked() if p.endswith("/summary.json") and "/runs/" in p):
        summary = json.loads((ROOT / path).read_text())
        assert all("/" not in c for c in summary.get("checkpoints", [])), path
        assert not str(summary.get("output_dir", "")).startswith("/"), path

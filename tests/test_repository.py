"""What the repository tracks is what a clone can carry, on any system.

Kept benchmark runs keep what their tables read (log.txt.gz, summary.json, bench.json, a test's result), never
training output nothing reads; no tracked path holds a character Windows refuses; the
benchmarks folder stays small; a summary names its checkpoints, not the machine's paths; a kept run
names its data as any clone can read it, and pins it by the images it held.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# 4 MiB for benchmarks/, its scripts, tables, figures and kept runs: a run is kept compact
# (ncl_plugin.bench.keep; a 50-image run of the real-data curve, 206 epochs, about 28 kB with its log
# compressed), a figure of photographs as JPEG, so that a clone stays light as tables accrue
BENCHMARKS_LIMIT = 4 * 1024 * 1024
KEPT = {"log.txt.gz", "summary.json", "bench.json", "calibrated.json"}  # calibrated.json: benco bench --calibrate_on


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
    assert size <= BENCHMARKS_LIMIT, (
        f"benchmarks/ tracks {size / 2**20:.1f} MiB, more than {BENCHMARKS_LIMIT / 2**20:.0f} MiB: keep what rebuilds "
        f"a table (python -m ncl_plugin.bench.keep), or drop runs no table reads")


def test_kept_summaries_name_their_checkpoints_not_the_machine():
    for path in (p for p in tracked() if p.endswith("/summary.json") and "/runs/" in p):
        summary = json.loads((ROOT / path).read_text())
        assert all("/" not in c for c in summary.get("checkpoints", [])), path
        assert not str(summary.get("output_dir", "")).startswith("/"), path


def strings_in(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, str):
        yield value


def test_kept_runs_name_their_data_as_any_clone_can_read_it():
    """No absolute path (a cache in a home folder, a data disk, the clone's own folder): data_efficiency.py
    --whole_from and the runner take a kept run in a clone anywhere by the images its lists held, which its
    bench.json pins by a digest."""
    from ncl_plugin.bench.datarefs import DATA_FLAGS, flag_value

    records = [p for p in tracked() if p.startswith("benchmarks/results/runs/") and p.endswith(".json")]
    for path in records:
        record = json.loads((ROOT / path).read_text())
        absolute = [s for s in strings_in(record) if re.search(r"(^|[ (;=])/\w", s)]
        assert not absolute, f"{path} names a path of the machine it ran on: {absolute[0]}"
        if path.endswith("/bench.json"):
            for flag in (f for f in DATA_FLAGS if flag_value(record["command"], f)):
                assert record.get("data", {}).get(flag, {}).get("digest"), f"{path}: {flag} is not pinned by a digest"

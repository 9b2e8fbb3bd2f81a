"""A kept run: what ``benchmarks/results/runs/`` tracks of a finished ``benco train`` folder.

A kept run must rebuild its tables (``benco compare``, ``benco compare --objective``, the harnesses'
``--no_train``), draw ``benchmarks/figures.py``'s curves, be recognised as finished by the runner and
the harnesses (``summary.json``; ``bench.json``'s command and data digests) and stay readable. Its
kept form drops only what nothing reads, and changes no value that is read:

- only :data:`KEPT_FILES` (weights, resumable states, TensorBoard events, ``train.out`` stay out);
- ``summary.json`` without ``objective`` where ``log.txt`` gives it back: it is
  :func:`~ncl_plugin.engine.training_log.objective_by_epoch` of the log's rows, record for record
  (a 50-image run's is about 100 kB, pretty-printed), and ``benco compare --objective`` reads the log;
- ``log.txt`` rows without :data:`UNREAD_LOG_KEYS`, one compact JSON line each, gzip-compressed as
  ``log.txt.gz`` (a sixth of the size; :func:`~ncl_plugin.engine.training_log.read_log` reads either);
- the run's folder as its summary names it (``output_dir``) where it can be said portably: a run
  trained in ``runs/<table>/`` and kept in ``benchmarks/results/runs/<table>/`` names where it lies.

``bench.json`` and ``calibrated.json`` are kept byte for byte (the runner compares the first's command
and digests, :mod:`.report` reads the second). Each kept file keeps its source's modification time:
``benchmarks/figures.py`` orders runs by their summary's. Compacting a kept run again changes nothing.
"""

import gzip
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ncl_plugin.bench import datarefs
from ncl_plugin.bench.report import CALIBRATED
from ncl_plugin.bench.runner import RECORD
from ncl_plugin.engine.training_log import (
    KEPT_LOG_NAME,
    LOG_NAME,
    SUMMARY_NAME,
    log_file,
    objective_by_epoch,
    read_log,
)
from ncl_plugin.errors import UsageError

# What a table reads of a run folder (tests/test_repository.py's KEPT): the rest is training output.
KEPT_FILES = (KEPT_LOG_NAME, SUMMARY_NAME, RECORD, CALIBRATED)
# Log keys that no table, figure or command reads. train_lr: the schedule's rate, a function of the
# summary's args (lr, min_lr, warmup_epochs, epochs); figures.py draws train_total (or another
# *loss* key), report.py reads test_metrics, train_seconds and train_steps, objective.py the train_ncl_*
# keys. About 0.3 MB over the kept runs.
UNREAD_LOG_KEYS = ("train_lr",)
# log.txt as one JSON object a line (read_log's format), without the spaces json.dumps puts after
# "," and ":" by default: about 7% of a log. Values are written as json writes them (repr), so every
# float reads back exactly.
LOG_SEPARATORS = (",", ":")
# summary.json stays indented, as benco train and benco calibrate write it: the file a reader opens.
SUMMARY_INDENT = 2
OBJECTIVE = "objective"


def kept_rows(rows: List[Dict]) -> List[Dict]:
    """The log's rows without :data:`UNREAD_LOG_KEYS`, every other key and value as it was, in its order."""
    return [{k: v for k, v in row.items() if k not in UNREAD_LOG_KEYS} for row in rows]


def kept_summary(summary: Dict, rows: List[Dict], where: Optional[str] = None) -> Dict:
    """``summary`` without ``objective`` where ``rows`` (the kept log) give it back exactly, and with its
    folder named ``where`` (output_dir, and args' output_dir and log_dir where they named the same folder)."""
    kept = dict(summary)
    # Dropped only where the log reproduces it: an objective the log cannot give back (rows cut, a NaN,
    # another version's record) stays.
    if OBJECTIVE in kept and kept[OBJECTIVE] == objective_by_epoch(rows):
        del kept[OBJECTIVE]
    recorded = kept.get("output_dir")
    if where is not None and recorded is not None and where != recorded:
        kept["output_dir"] = where
        if isinstance(kept.get("args"), dict):
            args = dict(kept["args"])
            for key in ("output_dir", "log_dir"):  # log_dir elsewhere (its own TensorBoard folder) is left
                if args.get(key) == recorded:
                    args[key] = where
            kept["args"] = args
    training_data = (kept.get("args") or {}).get("training_data")
    if isinstance(training_data, str) and os.path.isabs(training_data):
        # benco train records the data it read by absolute path; a kept run names it as any clone reads it
        here = os.path.abspath(os.getcwd())
        # as given below this folder (a list reached through a link stays named by the link), else resolved
        if training_data.startswith(here + os.sep):
            portable = Path(os.path.relpath(training_data, here)).as_posix()
        else:
            portable = portable_name(Path(training_data))
        if portable is not None:
            kept["args"] = {**kept["args"], "training_data": portable}
    return kept


def portable_name(folder: Path) -> Optional[str]:
    """The folder as a kept summary names it: relative to the current folder (the repository's root, where
    the benchmarks run) as :func:`.datarefs.reference` says paths; None where only an absolute path would say it."""
    name = datarefs.reference(str(folder))
    return None if os.path.isabs(name) else name


def kept_files(source: Path, where: Optional[str] = None) -> Dict[str, bytes]:
    """{file name: its kept content} of the finished run in ``source``; ``where``: the folder its summary
    names (None: as recorded)."""
    source = Path(source)
    if not (source / SUMMARY_NAME).is_file():
        raise UsageError(f"{source}: no {SUMMARY_NAME}, not a finished benco train run; only finished runs are kept")
    rows = kept_rows(read_log(str(source)))
    summary = kept_summary(json.loads((source / SUMMARY_NAME).read_text(encoding="utf-8")), rows, where)
    text = "".join(json.dumps(row, separators=LOG_SEPARATORS) + "\n" for row in rows).encode("utf-8")
    files = {
        # mtime 0: the same rows give the same bytes, so that a kept run compacts to itself
        KEPT_LOG_NAME: gzip.compress(text, compresslevel=9, mtime=0),
        SUMMARY_NAME: json.dumps(summary, indent=SUMMARY_INDENT).encode("utf-8"),
    }
    if log_file(str(source)) is None:
        del files[KEPT_LOG_NAME]  # a run whose table reads a benco test result: nothing to write for a log
    for name in (RECORD, CALIBRATED):
        if (source / name).is_file():
            files[name] = (source / name).read_bytes()
    return files


def keep_run(source, target, where: Optional[str] = None) -> Dict[str, Tuple[int, int]]:
    """Write the kept form of the finished run in ``source`` into ``target`` (the same folder: in place);
    ``where``: how its summary names ``target`` (default: :func:`portable_name`). Other files in ``target``
    are left as they are, but for a log.txt, which the compressed log replaces. Returns {file name: (bytes in source, bytes kept)}."""
    source, target = Path(source), Path(target)
    files = kept_files(source, where if where is not None else portable_name(target))
    target.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, content in files.items():
        before = Path(log_file(str(source))) if name == KEPT_LOG_NAME else source / name
        stat = before.stat()
        sizes[name] = (stat.st_size, len(content))
        path = target / name
        if path.is_file() and path.read_bytes() == content:
            shutil.copystat(before, path)
            continue
        tmp = path.with_name(path.name + ".tmp")  # atomically: a harness may read the folder meanwhile
        tmp.write_bytes(content)
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(tmp, path)
    if KEPT_LOG_NAME in files and (target / LOG_NAME).is_file():
        (target / LOG_NAME).unlink()  # in place: the compressed log holds its rows now
    return sizes


def compact(folder, where: Optional[str] = None) -> Dict[str, Tuple[int, int]]:
    """A finished run's folder in its kept form, in place (:func:`keep_run` onto itself)."""
    return keep_run(folder, folder, where)


def is_kept(folder, where: Optional[str] = None) -> bool:
    """Whether compacting ``folder`` would change none of its kept files."""
    folder = Path(folder)
    files = kept_files(folder, where if where is not None else portable_name(folder))

    def same(name: str, content: bytes) -> bool:
        held = (folder / name).read_bytes()
        # the log by what it holds: gzip's header differs between Python versions (3.12 set its OS byte)
        return gzip.decompress(held) == gzip.decompress(content) if name == KEPT_LOG_NAME else held == content

    return not (folder / LOG_NAME).is_file() and all(
        (folder / name).is_file() and same(name, content) for name, content in files.items()
    )


def run_folders(paths) -> List[Path]:
    """The finished runs among ``paths``: each a run folder (with summary.json) or a table's folder of them."""
    found = []
    for path in map(Path, paths):
        if (path / SUMMARY_NAME).is_file():
            found.append(path)
        else:
            found += sorted(p.parent for p in path.glob(f"*/{SUMMARY_NAME}"))
    return found


def main(argv=None) -> int:
    """python -m ncl_plugin.bench.keep FOLDER...: every finished run in them compacted in place."""
    folders = run_folders(argv if argv is not None else sys.argv[1:])
    if not folders:
        print("keep: give finished run folders (with summary.json), or folders of them", file=sys.stderr)
        return 2
    before = after = 0
    for folder in folders:
        sizes = compact(folder)
        before += sum(b for b, _ in sizes.values())
        after += sum(a for _, a in sizes.values())
    print(f"{len(folders)} run(s) kept: {before} bytes before, {after} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())

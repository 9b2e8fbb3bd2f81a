"""``benco compare --objective``: does NCL's contrastive objective learn? Each term against its chance.

A term's chance value is the loss when every similarity is equal, for the batches' own patch counts:
log(1 + negatives). A term that ends near it (ratio near 1) has learned nothing it can pass on to the
segmentation, whatever the metrics say.
"""

from pathlib import Path
from typing import Dict, List, Optional

from ncl_plugin.engine.training_log import LOG_NAME, OBJECTIVE_TERMS, log_file, objective_by_epoch, read_log
from ncl_plugin.errors import UsageError

LABELS = {"ncl_pn": "pn", "ncl_se_pos": "se+", "ncl_se_neg": "se-"}


def _ratio(entry: Dict, term: str) -> str:
    ratio = entry[term]["ratio"]
    return "–" if ratio is None else f"{ratio:.2f}"


def _defined(entry: Dict) -> str:
    shares = [entry[t]["defined"] for t in OBJECTIVE_TERMS]
    return "/".join("–" if s is None else f"{s:.2f}" for s in shares)


def run_objective(path: str) -> Optional[List[Dict]]:
    folder = Path(path)
    if folder.name.startswith(LOG_NAME):  # log.txt, or a kept run's log.txt.gz
        folder = folder.parent
    if log_file(str(folder)) is None:
        raise UsageError(f"{path}: no log.txt here; --objective reads benco train output folders")
    return objective_by_epoch(read_log(str(folder)))


def objective_table(runs: List[str]) -> str:
    """Markdown: per run, L_NCL at the first and last epoch and each term / chance at both."""
    header = (
        "| run | epochs | L_NCL first → last (last / first) | "
        + " | ".join(f"{LABELS[t]} / chance, first → last" for t in OBJECTIVE_TERMS)
        + " | defined pn/se+/se- (last) |"
    )
    lines = [header, "|" + "---|" * 2 + "---:|" * (len(OBJECTIVE_TERMS) + 1) + "---:|"]
    notes = []
    for path in runs:
        epochs = run_objective(path)
        if not epochs:
            notes.append(f"{path}: no contrastive objective in its log (not NCL, or logged before the record)")
            continue
        first, last = epochs[0], epochs[-1]
        ncl = f"{first['ncl']:.3f} → {last['ncl']:.3f} ({last['ncl'] / first['ncl']:.2f})" if first["ncl"] else "–"
        terms = [f"{_ratio(first, t)} → {_ratio(last, t)}" for t in OBJECTIVE_TERMS]
        span = f"{first['epoch']}–{last['epoch']}"
        lines.append(f"| {path} | {span} | {ncl} | " + " | ".join(terms) + f" | {_defined(last)} |")
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "\n".join(notes) + "\n"
    return text + "\nA term / chance of 1 is a term that learned nothing; 0 separates its patches perfectly.\n"

"""The record a training run keeps beside its checkpoints.

``log.txt``: one JSON row per epoch, as IMDL-BenCo's train.py writes it
(``train_<loss>``, ``test_<metric>``, ``epoch``), plus ``test_metrics`` per
test set. ``summary.json``: the best epoch by :data:`metrics.SELECTION_RULE`,
the last tested epoch, every setting of the run and, for NCL, the contrastive
objective per epoch against its chance value (:func:`objective_by_epoch`).
"""

import gzip
import json
import os
from typing import Dict, List, Optional

from ncl_plugin.engine import imdlbenco_line
from ncl_plugin.engine.checkpoints import plain
from ncl_plugin.engine.metrics import SELECTION_RULE, best_epoch, mean_metrics

LOG_NAME = "log.txt"
# A kept benchmark run's log (ncl_plugin.bench.keep): the same rows, gzip-compressed, a sixth of the size.
KEPT_LOG_NAME = LOG_NAME + ".gz"
SUMMARY_NAME = "summary.json"


def log_file(output_dir: str) -> Optional[str]:
    """The run's log: its log.txt, or a kept run's log.txt.gz; None without either."""
    for name in (LOG_NAME, KEPT_LOG_NAME):
        path = os.path.join(output_dir, name)
        if os.path.isfile(path):
            return path
    return None


def read_log(output_dir: str) -> List[Dict]:
    path = log_file(output_dir)
    if path is None:
        return []
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def append_row(output_dir: str, row: Dict) -> None:
    with open(os.path.join(output_dir, LOG_NAME), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def tested_epochs(rows: List[Dict]) -> Dict[int, Dict[str, Dict[str, float]]]:
    """{epoch: {test set: {metric: value}}} of the rows that hold test metrics, in epoch order."""
    return {row["epoch"]: row["test_metrics"] for row in rows if row.get("test_metrics")}


OBJECTIVE_TERMS = ("ncl_pn", "ncl_se_pos", "ncl_se_neg")


def objective_by_epoch(rows: List[Dict]) -> List[Dict]:
    """Per epoch, L_NCL and each of its terms beside its chance value (every similarity equal, for the
    batches' own patch counts), their ratio and the share of images the term was defined on.

    The epoch's means come from IMDL-BenCo's logger; a batch where a term is undefined adds 0 to the
    term and to its chance alike, so the ratio of the two means is the term's over the batches that
    define it. A ratio near 1 is a term that has learned nothing. Empty for runs without the record
    (another model, or NCL logged before it)."""
    epochs = []
    for row in rows:
        if "train_ncl_pn_chance" not in row:
            continue
        entry = {"epoch": row["epoch"], "ncl": row.get("train_ncl")}
        for term in OBJECTIVE_TERMS:
            value, chance = row.get(f"train_{term}"), row[f"train_{term}_chance"]
            entry[term] = {
                "value": value,
                "chance": chance,
                "ratio": value / chance if value is not None and chance else None,
                "defined": row.get(f"train_{term}_defined"),
            }
        epochs.append(entry)
    return epochs


def ran_in(rows: List[Dict], key: str) -> Optional[str]:
    """What the epochs recorded under ``key`` (precision, imdlbenco): a run resumed under another one ran in
    both, and says so ("float32+bfloat16"); None where no row records it."""
    values = list(dict.fromkeys(row[key] for row in rows if row.get(key)))
    return "+".join(values) if values else None


# A run saved before it recorded its IMDL-BenCo ran under this one: the plugin installed no other then.
UNRECORDED_LINE = "imdlbenco 0.1.45"
# What run_record reads of how a run's figures were computed
RECORDED = ("precision", "imdlbenco", "pixel_mean")


def run_record(output_dir: str) -> Dict[str, Optional[str]]:
    """How a run folder computed: its precision, IMDL-BenCo line and pixel-metric mean, from summary.json, else
    from its log's rows (a run still training); each None where the folder holds neither. A run saved before
    a record reads as what it ran in: --if_not_amp for the precision, UNRECORDED_LINE; its pixel mean stays
    None (not recorded)."""
    from ncl_plugin.engine import amp

    path = os.path.join(output_dir, SUMMARY_NAME)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return {
            "precision": data.get("precision") or amp.recorded(data.get("args") or {}),
            "imdlbenco": data.get("imdlbenco") or UNRECORDED_LINE,
            "pixel_mean": data.get("pixel_mean"),
        }
    # a log without a summary may be IMDL-BenCo's own train.py's, under either line: unknown unless recorded
    rows = read_log(output_dir)
    line = ran_in(rows, "imdlbenco")
    return {
        "precision": ran_in(rows, "precision"),
        "imdlbenco": line,
        "pixel_mean": imdlbenco_line.PIXEL_MEAN if line else None,
    }


def write_summary(args, model_args, checkpoints: List[str], parameters: Optional[Dict[str, int]] = None) -> Dict:
    """summary.json: the best epoch's metrics per test set, by SELECTION_RULE, and the last epoch's;
    ``parameters``: the model's parameter counts."""
    rows = read_log(args.output_dir)
    tested = tested_epochs(rows)
    summary = {"model": args.model, "model_args": plain(model_args), "selection": SELECTION_RULE, **(parameters or {})}
    line = imdlbenco_line.installed()
    summary["precision"] = ran_in(rows, "precision") or getattr(args, "precision", None)
    # the line's record, naming every line a resumed run ran under
    summary.update(line.record(), imdlbenco=ran_in(rows, "imdlbenco") or line.name)
    if tested:
        best, last = best_epoch(tested), max(tested)
        summary.update(
            best_epoch=best, best=tested[best], best_mean=mean_metrics(tested[best]), last_epoch=last, last=tested[last]
        )
    objective = objective_by_epoch(rows)
    if objective:
        summary["objective"] = objective
    # Checkpoints by name, the folder as given: a kept run reads the same on any machine.
    summary.update(
        output_dir=args.output_dir,
        checkpoints=[os.path.relpath(p, args.output_dir) for p in checkpoints],
        args=plain(args),
    )
    tmp = os.path.join(args.output_dir, SUMMARY_NAME + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(tmp, os.path.join(args.output_dir, SUMMARY_NAME))
    return summary

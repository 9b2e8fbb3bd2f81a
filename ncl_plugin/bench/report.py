"""``benco compare``: runs side by side, as Markdown, LaTeX or CSV tables and grouped bars.

A run is a ``benco train`` output folder (its ``log.txt`` and ``summary.json``)
or a ``benco test`` result (``test_results.json``, or a folder holding one).
Runs whose settings differ only in ``--seed`` form one row: mean ± standard
deviation over the seeds.
"""

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ncl_plugin.bench import datarefs
from ncl_plugin.config import model_defaults
from ncl_plugin.engine import amp
from ncl_plugin.engine.metrics import SELECTION_RULE, best_epoch, evaluator_name, is_false_alarm_rate
from ncl_plugin.engine.training_log import RECORDED, UNRECORDED_LINE, log_file, read_log, run_record, tested_epochs
from ncl_plugin.errors import UsageError

COST = "cost"  # the column group of COSTS
# Settings every row names where runs differ in them: no value of theirs is the usual one
NAMED_WHEN_VARYING = {"precision", "imdlbenco"}

RULES = {
    "best": SELECTION_RULE,  # the rule summary.json's best epoch follows
    "last": "the last tested epoch",
}
# Settings that say where or how a run executed, not what it learned.
IGNORED = {
    "output_dir",
    "log_dir",
    "resume",
    "start_epoch",
    "seed",
    "rank",
    "gpu",
    "world_size",
    "distributed",
    "device",
    "num_workers",
    "pin_mem",
    "debug",
    "dist_url",
    "local_rank",
    "config",
    "trust_checkpoint",
    "skip_bad_samples",
    "test_batch_size",
    "log_per_epoch_count",
    "save_period",
    "max_nonfinite_steps",
    "if_not_amp",  # the precision the run recorded stands for it
    "no_model_eval",
    "metrics",
    "test_period",
    "channels_last",
    "training_data",  # data_path, in words
}


@dataclass
class Run:
    name: str
    path: str
    settings: Dict
    epoch: int
    metrics: Dict[str, Dict[str, float]]  # test set -> metric -> value
    seed: Optional[int] = None
    costs: Dict[str, float] = field(default_factory=dict)  # COSTS name -> value, where the run recorded it
    pixel_mean: Optional[str] = None  # how its pixel metrics average over images (imdlbenco_line); None: unrecorded


@dataclass
class Row:
    label: str
    runs: List[Run] = field(default_factory=list)

    def values(self, test_set: str, metric: str) -> List[float]:
        return [r.metrics[test_set][metric] for r in self.runs if metric in r.metrics.get(test_set, {})]


# What a run costs, shown by `benco compare --costs` after the metrics (never in bold: lower is not "best"
# in the same sense, and the plot leaves them out).
RUNS, PARAMETERS, STEP_TIME = "runs", "parameters (M)", "s / step"
COSTS = (RUNS, PARAMETERS, STEP_TIME)  # runs: how many seeds a row pools (a heavy model may have fewer)


def run_costs(summary: Dict, rows: List[Dict]) -> Dict[str, float]:
    """Parameters from summary.json; seconds per optimiser step as the median over the epochs of
    log.txt (the training loop alone), so that a first epoch's start-up or a resumed part-epoch does not weigh."""
    costs = {}
    if "parameters" in summary:
        costs[PARAMETERS] = summary["parameters"] / 1e6
    per_step = [r["train_seconds"] / r["train_steps"] for r in rows if r.get("train_steps")]
    if per_step:
        costs[STEP_TIME] = statistics.median(per_step)
    return costs


def metric_key(name: str) -> str:
    """'pixel-F1', 'pixel-level F1' and 'pixel_f1' all name the same metric (``--metrics`` names
    such as 'pixel-acc' or 'pixel-f1-best' are first mapped by evaluator_name)."""
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("level", ""))


def _pick(tested: Dict[int, Dict], select: str) -> Tuple[int, Dict]:
    """The (epoch, metrics) ``--select`` names: SELECTION_RULE's best epoch, or the last tested one."""
    epoch = max(tested) if select == "last" else best_epoch(tested)
    return epoch, tested[epoch]


def _test_results_in(folder: Path) -> Path:
    """The ``benco test`` result in a folder: test_results.json, or its one test_results-<test set>.json."""
    found = sorted(folder.glob("test_results-*.json")) if folder.is_dir() else []
    if (folder / "test_results.json").is_file() or not found:
        return folder / "test_results.json"
    if len(found) > 1 and log_file(str(folder)) is None:
        names = ", ".join(f.name for f in found)
        raise UsageError(f"{folder}: holds several benco test results ({names}); name the one to compare")
    return found[0]


def load_run(path: str, select: str) -> Run:
    folder = Path(path)
    results = folder if folder.is_file() else _test_results_in(folder)
    logged = folder.is_dir() and log_file(str(folder)) is not None  # log.txt, or a kept run's log.txt.gz
    summary = folder / "summary.json"
    settings: Dict = {}
    data: Dict = {}
    rows: List[Dict] = []
    if summary.is_file():
        data = json.loads(summary.read_text())
        settings = {**data.get("args", {}), **data.get("model_args", {})}
    if logged:
        rows = read_log(str(folder))
        tested = tested_epochs(rows)
        if not tested:
            raise UsageError(f"{path}: log.txt holds no test metrics yet")
        epoch, metrics = _pick(tested, select)
    elif results.is_file():
        by_epoch: Dict[int, Dict] = {}
        for row in json.loads(results.read_text()):
            values = {k: v for k, v in row.items() if isinstance(v, float)}
            by_epoch.setdefault(row["epoch"], {})[row["test set"]] = values
        epoch, metrics = _pick(by_epoch, select)
        if not settings and (results.parent / "summary.json").is_file():
            data = json.loads((results.parent / "summary.json").read_text())
            settings = {**data.get("args", {}), **data.get("model_args", {})}
    else:
        raise UsageError(f"{path}: neither a training folder (log.txt) nor a benco test result (test_results.json)")
    if logged:
        metrics = with_calibrated(folder, epoch, metrics)
    settings = _portable_data(settings)
    record = _record(folder, results, logged)
    if settings:
        # named by what ran, not by the flag: a run saved before the record read if_not_amp
        settings["precision"] = record["precision"] or amp.recorded(settings)
        settings["imdlbenco"] = record["imdlbenco"] or UNRECORDED_LINE
    return Run(
        name=folder.name if folder.is_dir() else folder.stem,
        path=str(path),
        settings=settings,
        epoch=epoch,
        metrics=metrics,
        seed=settings.get("seed"),
        costs=run_costs(data, rows),
        pixel_mean=record["pixel_mean"],
    )


def _record(folder: Path, results: Path, logged: bool) -> Dict[str, Optional[str]]:
    """How the figures were computed (training_log.run_record): a benco test result by its own rows (it may
    have run under another IMDL-BenCo than the training), else its training folder's."""
    if not logged and results.is_file():
        rows = json.loads(results.read_text())
        first = rows[0] if rows else {}
        if first.get("pixel_mean"):
            return {key: first.get(key) for key in RECORDED}
        return run_record(str(results.parent))
    return run_record(str(folder))


# benco test of the checkpoint a table reports, written by benco bench --calibrate_on (runner.calibrate)
CALIBRATED = "calibrated.json"


def with_calibrated(folder: Path, epoch: int, metrics: Dict[str, Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """A training folder's metrics at ``epoch``, plus what ``benco test`` of that same epoch's checkpoint
    added in calibrated.json (F1 at the thresholds chosen on validation, image F1): only for the epoch the
    table reports, and never replacing a value the training log holds."""
    path = folder / CALIBRATED
    if not path.is_file():
        return metrics
    merged = {name: dict(values) for name, values in metrics.items()}
    for row in json.loads(path.read_text()):
        if row.get("epoch") == epoch and row.get("test set") in merged:
            extra = {k: v for k, v in row.items() if isinstance(v, float) and k not in merged[row["test set"]]}
            merged[row["test set"]].update(extra)
    return merged


DATA_SETTINGS = ("data_path", "test_data_path")


def _portable_data(settings: Dict) -> Dict:
    """Runs on the same lists share a row wherever the clone lies: a data path is read as its portable
    reference (relative to the repository, inside the synthetic sets' cache), not as this machine's path."""
    return {
        k: datarefs.reference(v) if k in DATA_SETTINGS and isinstance(v, str) and v else v for k, v in settings.items()
    }


def _canonical(value) -> str:
    """A setting's value as text to compare: 0 and 0.0 alike, in a list too."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
    elif isinstance(value, (list, tuple)):
        value = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
    return json.dumps(value, sort_keys=True)


def _model_defaults(model: Optional[str], config: Optional[str], cache: Dict) -> Dict[str, str]:
    """The model's own flags as a plain run of (model, config) sets them, as canonical text; empty for
    a model this installation does not register."""
    if (model, config) not in cache:
        try:
            values = model_defaults(model, config) if model else {}
        except UsageError:
            values = {}
        cache[model, config] = {k: _canonical(v) for k, v in values.items()}
    return cache[model, config]


def group(runs: List[Run], labels: Optional[Dict[str, str]] = None) -> List[Row]:
    """Rows labelled by the model and the settings where a run departs from its usual value; seeds are pooled.

    Only settings whose values differ among the runs are named. A model's own flag is named where it
    departs from the value a plain run of that model and config gives (NCL's contrast_weight=0 reads
    as such beside deeplabv3plus, whatever most runs hold); any other setting where it departs from
    the value most runs hold.

    labels: {run path: row label}, for a caller that knows better names (runs sharing a label are pooled)."""
    keys = sorted({k for r in runs for k in r.settings} - IGNORED - {"model"})
    varying, majority = [], {}
    for key in keys:
        values = [_canonical(r.settings[key]) for r in runs if key in r.settings]
        if len(set(values)) > 1:
            varying.append(key)
            majority[key] = max(sorted(set(values)), key=values.count)
    cache: Dict = {}
    rows: Dict[str, Row] = {}
    for run in runs:
        model = run.settings.get("model") or run.name
        defaults = _model_defaults(run.settings.get("model"), run.settings.get("config"), cache)
        parts = [
            f"{k}={run.settings[k]}"
            for k in varying
            if k in run.settings
            and (k in NAMED_WHEN_VARYING or _canonical(run.settings[k]) != defaults.get(k, majority[k]))
        ]
        label = model + (f" ({', '.join(parts)})" if parts else "")
        if not run.settings:  # no recorded settings: one row per run
            label = run.name
        if labels and run.path in labels:
            label = labels[run.path]
        rows.setdefault(label, Row(label)).runs.append(run)
    return list(rows.values())


@dataclass
class Table:
    columns: List[Tuple[str, str]]  # (test set or "mean", metric)
    rows: List[Row]
    cells: List[List[Tuple[Optional[float], Optional[float], int]]]  # (mean, std, n)
    best: List[List[int]]  # rows holding the best value of each column (ties: all; a column all equal: none)
    rule: str


def build_table(
    runs: List[Run],
    metrics: Optional[List[str]],
    select: str,
    labels: Optional[Dict[str, str]] = None,
    costs: bool = False,
) -> Table:
    check_pixel_means(runs)
    rows = group(runs, labels)
    test_sets = sorted({s for r in runs for s in r.metrics})
    names = sorted({m for r in runs for per_set in r.metrics.values() for m in per_set})
    if metrics:
        wanted = {metric_key(evaluator_name(m)): m for m in metrics}
        chosen = [n for n in names if metric_key(n) in wanted]
        unknown = set(wanted) - {metric_key(n) for n in chosen}
        if unknown:
            raise UsageError(
                f"--metric {', '.join(wanted[u] for u in sorted(unknown))}: not in these runs (they have {', '.join(names)})"
            )
        names = chosen
    columns = [(s, m) for m in names for s in test_sets]
    if len(test_sets) > 1:  # with one test set the mean would repeat its columns
        columns += [("mean", m) for m in names]
    if costs:
        columns += [(COST, c) for c in COSTS]
    cells = []
    for row in rows:
        line = []
        for test_set, metric in columns:
            if test_set == COST and metric == RUNS:
                values = [float(len(row.runs))]
            elif test_set == COST:
                values = [r.costs[metric] for r in row.runs if metric in r.costs]
            elif test_set == "mean":
                per_run = []
                for run in row.runs:
                    values = [run.metrics[s][metric] for s in test_sets if metric in run.metrics.get(s, {})]
                    if values:
                        per_run.append(sum(values) / len(values))
                values = per_run
            else:
                values = row.values(test_set, metric)
            if not values:
                line.append((None, None, 0))
            else:
                std = statistics.stdev(values) if len(values) > 1 else None
                line.append((statistics.fmean(values), std, len(values)))
        cells.append(line)
    best = []
    for j in range(len(columns)):
        if columns[j][0] == COST:
            best.append([])
            continue
        # Compared as printed (3 decimals), so that a bold value is visibly the best.
        shown = {i: round(line[j][0], 3) for i, line in enumerate(cells) if line[j][0] is not None}
        # a rate of false alarms is best low
        top = (min if is_false_alarm_rate(columns[j][1]) else max)(shown.values(), default=None)
        winners = [i for i, value in shown.items() if value == top]
        best.append(winners if len(shown) > 1 and len(winners) < len(shown) else [])
    return Table(columns, rows, cells, best, RULES[select])


def _header(column: Tuple[str, str]) -> str:
    test_set, metric = column
    return metric if test_set == COST else f"{test_set} {metric}"


def _cell(value: Tuple[Optional[float], Optional[float], int], digits: int = 3, pm: str = " ± ") -> str:
    mean, std, _ = value
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + (f"{pm}{std:.{digits}f}" if std is not None else "")


def _cells(table: "Table", i: int, pm: str = " ± ") -> List[str]:
    """Row i as printed: metrics to 3 decimals; the number of runs; parameters in millions to 1 decimal, without a
    spread (seeds share a network); seconds per step to 3 significant places."""
    texts = []
    for (test_set, metric), value in zip(table.columns, table.cells[i]):
        if test_set == COST and metric == RUNS:
            texts.append(str(int(value[0])))
        elif test_set == COST and metric == PARAMETERS:
            texts.append("–" if value[0] is None else f"{value[0]:.1f}")
        elif test_set == COST:
            texts.append(_cell(value, digits=3 if value[0] is not None and value[0] < 10 else 1, pm=pm))
        else:
            texts.append(_cell(value, pm=pm))
    return texts


def _seeds_note(table: Table) -> str:
    counts = sorted({len(r.runs) for r in table.rows})
    if counts == [1]:
        return "one run per row"
    return "mean ± standard deviation over " + "/".join(str(c) for c in counts) + " runs (seeds) per row"


def _setting_note(table: Table, key: str, one: str, several: str) -> str:
    """A setting of NAMED_WHEN_VARYING under a table: ``one`` naming the value all runs share, or ``several``
    where each row's label names its own; nothing where no run records it."""
    values = sorted({r.settings[key] for row in table.rows for r in row.runs if r.settings.get(key)})
    if not values:
        return ""
    return one.format(values[0]) if len(values) == 1 else f"; {several} differ (each row names its own)"


def precision_note(table: Table) -> str:
    """The precision the runs computed in: one for all, or each row's label names its own."""
    return _setting_note(table, "precision", "; precision {}", "precisions")


def imdlbenco_note(table: Table) -> str:
    """The IMDL-BenCo the runs computed under, and how their pixel metrics average over a test set's images."""
    runs = [r for row in table.rows for r in row.runs]
    note = _setting_note(table, "imdlbenco", "; {}", "IMDL-BenCo versions")
    means = sorted({r.pixel_mean for r in runs if r.pixel_mean})
    unrecorded = sum(1 for r in runs if not r.pixel_mean)
    if means:
        note += f"; pixel metrics: means over {means[0]}"
    if unrecorded:
        note += f"; pixel-metric mean not recorded for {unrecorded} of {len(runs)} runs (saved before the record)"
    return note


def check_pixel_means(runs: List[Run]) -> None:
    """Two ways of averaging pixel metrics never share a column (0.5 and 1.0 for the same predictions)."""
    means: Dict[str, List[str]] = {}
    for run in runs:
        if run.pixel_mean:
            means.setdefault(run.pixel_mean, []).append(run.name)
    if len(means) > 1:
        found = "; ".join(f"over {mean}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                          for mean, names in sorted(means.items()))  # fmt: skip
        raise UsageError(
            f"these runs average pixel metrics differently ({found}), and one column would set 0.5 beside 1.0 for the "
            "same predictions: compare each kind in its own table (docs: Results, pixel-metric conventions)"
        )


def to_markdown(table: Table) -> str:
    lines = [
        f"Epoch of each run: {table.rule}; {_seeds_note(table)}{precision_note(table)}{imdlbenco_note(table)}; best value per column in bold "
        "(none where a column is all equal).",
        "",
    ]
    lines.append("| run | " + " | ".join(_header(c) for c in table.columns) + " |")
    lines.append("| --- |" + " ---: |" * len(table.columns))
    for i, row in enumerate(table.rows):
        cells = [f"**{v}**" if i in table.best[j] else v for j, v in enumerate(_cells(table, i))]
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    lines = [
        f"% Epoch of each run: {table.rule}; {_seeds_note(table)}{precision_note(table)}{imdlbenco_note(table)}; best value per column in bold (none where a column is all equal).",
        "% Needs \\usepackage{booktabs}.",
        "\\begin{tabular}{l" + "r" * len(table.columns) + "}",
        "\\toprule",
        "Run & " + " & ".join(latex_escape(_header(c)) for c in table.columns) + " \\\\",
        "\\midrule",
    ]
    for i, row in enumerate(table.rows):
        cells = []
        for j, value in enumerate(_cells(table, i, pm=" $\\pm$ ")):
            text = value.replace("–", "--")
            cells.append(f"\\textbf{{{text}}}" if i in table.best[j] else text)
        lines.append(latex_escape(row.label) + " & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    header = ["run", "runs"]
    for column in table.columns:
        header += [_header(column), f"{_header(column)} std"]
    writer.writerow(header)
    for i, row in enumerate(table.rows):
        line = [row.label, len(row.runs)]
        for mean, std, _ in table.cells[i]:
            line += ["" if mean is None else repr(round(mean, 6)), "" if std is None else repr(round(std, 6))]
        writer.writerow(line)
    best = ["best", ""]
    for j in range(len(table.columns)):
        best += [" / ".join(table.rows[i].label for i in table.best[j]), ""]
    writer.writerow(best)
    return out.getvalue()


def plot(table: Table, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = [j for j, c in enumerate(table.columns) if c[0] != COST]  # costs are not on the metrics' 0-1 scale
    columns = [table.columns[j] for j in kept]
    width = 0.8 / max(1, len(table.rows))
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(columns) * max(1, len(table.rows)) / 2), 4))
    for i, row in enumerate(table.rows):
        cells = [table.cells[i][j] for j in kept]
        means = [c[0] if c[0] is not None else 0 for c in cells]
        errors = [c[1] if c[1] is not None else 0 for c in cells]
        positions = [j + (i - (len(table.rows) - 1) / 2) * width for j in range(len(columns))]
        axis.bar(positions, means, width, yerr=errors, capsize=3, label=row.label)
    axis.set_xticks(range(len(columns)))
    axis.set_xticklabels([_header(c) for c in columns], rotation=20, ha="right")
    axis.set_ylim(0, 1)
    axis.set_title(f"Epoch: {table.rule.split(' (')[0]}", fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path, dpi=120)


def save_figure(figure, path, dpi: int) -> None:
    """Save a matplotlib figure as a 256-colour PNG and close it: plots have few colours, and
    the palette makes the figures the repository keeps about 2.5 times smaller."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, "PNG", optimize=True)


FORMATS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


def compare(
    paths: List[str],
    fmt: str = "markdown",
    metrics: Optional[List[str]] = None,
    select: str = "best",
    out: Optional[str] = None,
    plot_path: Optional[str] = None,
    labels: Optional[Dict[str, str]] = None,
    costs: bool = False,
) -> str:
    if select not in RULES:
        raise UsageError(f"--select {select}: use best or last")
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: use markdown, latex or csv")
    runs = [load_run(p, select) for p in paths]
    table = build_table(runs, metrics, select, labels, costs)
    text = FORMATS[fmt](table)
    if out:
        Path(out).write_text(text)
    if plot_path:
        plot(table, plot_path)
    return text

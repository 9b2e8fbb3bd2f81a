"""`benco compare`: numbers from the runs' logs, three formats, seeds pooled, grouped bars."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ncl_plugin import cli
from ncl_plugin.bench.report import compare

FIXTURES = Path(__file__).parent / "fixtures"


# What a run under IMDL-BenCo 0.1.45 records of how it computed (fixed here: the fixture reads the same on any line)
RECORD = {"imdlbenco": "imdlbenco 0.1.45", "numpy": "1.26.4", "pixel_mean": "tampered images"}


def make_run(folder: Path, model: str, seed: int, epochs, extra=None, record=RECORD):
    """A training folder as `benco train` writes it: log.txt lines and summary.json (``record``: None for one
    saved before the record)."""
    folder.mkdir(parents=True)
    lines = []
    for epoch, metrics in epochs:
        lines.append(json.dumps({"train_total": 1.0, "epoch": epoch, "test_metrics": metrics}))
    lines.insert(1, json.dumps({"train_total": 0.9, "epoch": 99}))  # an epoch without a test
    (folder / "log.txt").write_text("\n".join(lines) + "\n")
    args = {"model": model, "seed": seed, "epochs": 3, "output_dir": str(folder), "image_size": 128}
    model_args = {"backbone": "resnet18", "temperature": 0.1, **(extra or {})} if model != "segformer" else {}
    (folder / "summary.json").write_text(json.dumps({"args": args, "model_args": model_args, **(record or {})}))
    return folder


def m(f1_a, auc_a, f1_b, auc_b):
    return {"CASIAv1": {"pixel-level F1": f1_a, "pixel-level AUC": auc_a},
            "Columbia": {"pixel-level F1": f1_b, "pixel-level AUC": auc_b}}


@pytest.fixture
def runs(tmp_path):
    return [
        # NCL, two seeds. Best epochs by the mean of all four numbers: seed 0 -> epoch 1, seed 1 -> epoch 0.
        make_run(tmp_path / "ncl-s0", "ncl", 0, [(0, m(0.1, 0.6, 0.2, 0.7)), (1, m(0.3, 0.8, 0.4, 0.9)), (2, m(0.2, 0.7, 0.3, 0.8))]),
        make_run(tmp_path / "ncl-s1", "ncl", 1, [(0, m(0.5, 0.9, 0.6, 0.9)), (1, m(0.1, 0.5, 0.1, 0.5))]),
        make_run(tmp_path / "seg-s0", "segformer", 0, [(0, m(0.45, 0.7, 0.05, 0.6))]),
        make_run(tmp_path / "ncl-t", "ncl", 0, [(0, m(0.2, 0.6, 0.2, 0.6))], extra={"temperature": 0.5}),
    ]


def test_markdown_numbers_come_from_the_logs(runs):
    text = compare([str(r) for r in runs], "markdown", metrics=["pixel-F1"])
    lines = text.splitlines()
    assert lines[0].startswith("Epoch of each run: the epoch with the best mean of all test metrics over all test sets")
    assert "mean ± standard deviation over 1/2 runs (seeds) per row" in lines[0]
    assert lines[2] == "| run | CASIAv1 pixel-level F1 | Columbia pixel-level F1 | mean pixel-level F1 |"
    rows = {line.split(" | ")[0][2:]: line for line in lines[4:]}
    # NCL seeds: CASIAv1 F1 0.3 and 0.5 -> 0.400 ± 0.141; Columbia 0.4 and 0.6 -> 0.500 ± 0.141; means 0.35, 0.55.
    assert rows["ncl"] == "| ncl | 0.400 ± 0.141 | **0.500 ± 0.141** | **0.450 ± 0.141** |"
    assert rows["segformer"] == "| segformer | **0.450** | 0.050 | 0.250 |"
    assert rows["ncl (temperature=0.5)"] == "| ncl (temperature=0.5) | 0.200 | 0.200 | 0.200 |"


def test_the_imdlbenco_line_and_pixel_mean_are_named_and_two_means_are_refused(runs, tmp_path):
    from ncl_plugin.errors import UsageError

    first = compare([str(r) for r in runs], "markdown").splitlines()[0]
    assert "; imdlbenco 0.1.45; pixel metrics: means over tampered images;" in first
    # a run of the numpy-2 line: the same convention, another version, named in its row
    numpy2 = make_run(tmp_path / "ncl-np2", "ncl", 0, [(0, m(0.3, 0.6, 0.2, 0.6))],
                      record={**RECORD, "imdlbenco": "imdlbenco13 0.2.9"})  # fmt: skip
    text = compare([str(runs[0]), str(numpy2)], "markdown")
    assert "IMDL-BenCo versions differ (each row names its own)" in text.splitlines()[0]
    assert "| ncl (imdlbenco=imdlbenco13 0.2.9) |" in text and "| ncl (imdlbenco=imdlbenco 0.1.45) |" in text
    # IMDL-BenCo 0.1.x's own mean over all images: never in one column with the tampered-image mean
    diluted = make_run(tmp_path / "raw", "ncl", 0, [(0, m(0.1, 0.6, 0.2, 0.6))],
                       record={**RECORD, "pixel_mean": "all images, an authentic one at 0"})  # fmt: skip
    with pytest.raises(UsageError, match="average pixel metrics differently .*over all images, an authentic one at 0: raw"):
        compare([str(runs[0]), str(diluted)], "markdown")
    # saved before the record: computed under 0.1.45 (the only line installed then), its mean unrecorded
    old = make_run(tmp_path / "old", "ncl", 0, [(0, m(0.1, 0.6, 0.2, 0.6))], record=None)
    first = compare([str(runs[0]), str(old)], "markdown").splitlines()[0]
    assert "; imdlbenco 0.1.45; pixel metrics: means over tampered images; pixel-metric mean not recorded for 1 of 2" in first


def test_last_epoch_rule(runs):
    text = compare([str(runs[0])], "markdown", metrics=["pixel-F1"], select="last")
    assert "the last tested epoch" in text and "| ncl | 0.200 | 0.300 | 0.250 |" in text


def test_latex_matches_the_fixture(runs):
    text = compare([str(r) for r in runs], "latex")
    assert text == (FIXTURES / "compare.tex").read_text()


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(runs, tmp_path):
    body = compare([str(r) for r in runs], "latex")
    document = "\\documentclass{article}\\usepackage{booktabs}\\usepackage[margin=1cm,landscape]{geometry}\\begin{document}\n" + body + "\\end{document}\n"
    (tmp_path / "t.tex").write_text(document)
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path, capture_output=True, timeout=120)
    assert result.returncode == 0 and (tmp_path / "t.pdf").exists()


def test_csv_holds_means_stds_and_the_best_row(runs):
    import csv
    import io

    rows = list(csv.reader(io.StringIO(compare([str(r) for r in runs], "csv", metrics=["pixel-AUC"]))))
    header = rows[0]
    assert header[:4] == ["run", "runs", "CASIAv1 pixel-level AUC", "CASIAv1 pixel-level AUC std"]
    ncl = rows[1]
    assert ncl[0] == "ncl" and ncl[1] == "2"
    assert float(ncl[2]) == pytest.approx(0.85) and float(ncl[3]) == pytest.approx(0.0707107, abs=1e-6)
    assert rows[-1][0] == "best" and rows[-1][2] == "ncl"


def test_benco_compare_command_writes_file_and_plot(runs, tmp_path, capsys):
    out, plot = tmp_path / "table.md", tmp_path / "bars.png"
    assert cli.main(["compare", *map(str, runs), "--out", str(out), "--plot", str(plot), "--metric", "pixel-F1,pixel-AUC"]) == 0
    assert out.read_text() == capsys.readouterr().out
    from PIL import Image

    assert Image.open(plot).size[0] > 300


def test_benco_test_results_are_runs_too(tmp_path):
    results = [
        {"checkpoint": "checkpoint-0.pth", "epoch": 0, "test set": "CASIAv1", "pixel-level F1": 0.2},
        {"checkpoint": "checkpoint-5.pth", "epoch": 5, "test set": "CASIAv1", "pixel-level F1": 0.6},
    ]
    (tmp_path / "test_results.json").write_text(json.dumps(results))
    text = compare([str(tmp_path / "test_results.json")], "markdown")
    assert "| test_results | 0.600 |\n" in text  # epoch 5, the best; one test set: no mean column


def test_unknown_metric_is_named(runs, capsys):
    assert cli.main(["compare", str(runs[0]), "--metric", "pixel-IoU"]) == 2
    assert "--metric pixel-IoU: not in these runs" in capsys.readouterr().err


def test_one_test_set_has_no_mean_columns_and_ties_are_not_bolded(tmp_path):
    one = {"synthetic": {"pixel-level F1": 0.0, "pixel-level AUC": 0.7}}
    other = {"synthetic": {"pixel-level F1": 0.0, "pixel-level AUC": 0.6}}
    a = make_run(tmp_path / "a", "ncl", 0, [(0, one)])
    b = make_run(tmp_path / "b", "segformer", 0, [(0, other)])
    lines = compare([str(a), str(b)], "markdown").splitlines()
    assert lines[2] == "| run | synthetic pixel-level AUC | synthetic pixel-level F1 |"
    assert lines[4] == "| ncl | **0.700** | 0.000 |"  # the F1 column is all equal: nothing in bold
    assert lines[5] == "| segformer | 0.600 | 0.000 |"


def test_metrics_are_chosen_by_their_benco_names_too(tmp_path):
    metrics = {"synthetic": {"pixel-level F1": 0.5, "pixel-level F1 (best threshold)": 0.7, "pixel-level Accuracy": 0.9}}
    run = make_run(tmp_path / "a", "ncl", 0, [(0, metrics)])
    lines = compare([str(run)], "markdown", metrics=["pixel-f1-best", "pixel-acc"]).splitlines()
    assert lines[2] == "| run | synthetic pixel-level Accuracy | synthetic pixel-level F1 (best threshold) |"
    assert lines[4] == "| ncl | 0.900 | 0.700 |"


def test_a_caller_may_name_the_rows(runs):
    labels = {str(runs[0]): "recipe", str(runs[1]): "recipe", str(runs[3]): "hot"}
    text = compare([str(runs[0]), str(runs[1]), str(runs[3])], "markdown", metrics=["pixel-F1"], labels=labels)
    rows = [line.split(" | ")[0][2:] for line in text.splitlines()[4:]]
    assert rows == ["recipe", "hot"]  # seeds pooled under one name


def test_costs_are_the_median_epoch_and_the_parameters_never_bold(tmp_path, capsys):
    runs = []
    for seed, seconds in ((0, (9.0, 2.0, 2.2)), (1, (8.0, 2.4, 2.6))):
        folder = make_run(tmp_path / f"ncl-s{seed}", "ncl", seed, [(0, m(0.3, 0.8, 0.4, 0.9)), (1, m(0.3, 0.8, 0.4, 0.9))])
        rows = [json.loads(line) for line in (folder / "log.txt").read_text().splitlines()]
        for row, took in zip(rows, seconds):  # 10 steps an epoch; the first epoch's start-up is slow
            row.update(train_seconds=took * 10, train_steps=10)
        (folder / "log.txt").write_text("".join(json.dumps(r) + "\n" for r in rows))
        summary = json.loads((folder / "summary.json").read_text())
        (folder / "summary.json").write_text(json.dumps({**summary, "parameters": 12_345_678}))
        runs.append(folder)
    runs.append(make_run(tmp_path / "seg-s0", "segformer", 0, [(0, m(0.45, 0.7, 0.05, 0.6))]))  # no costs recorded
    assert cli.main(["compare", *map(str, runs), "--metric", "pixel-F1", "--costs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].endswith("| mean pixel-level F1 | runs | parameters (M) | s / step |")
    rows = {line.split(" | ")[0][2:]: line for line in lines[4:]}
    # Medians 2.2 and 2.6 s per step -> 2.400 ± 0.283; 12.3 M parameters, no spread, no bold.
    assert rows["ncl"].endswith("| 2 | 12.3 | 2.400 ± 0.283 |")
    assert rows["segformer"].endswith("| 1 | – | – |")
    csv_text = compare(list(map(str, runs)), "csv", metrics=["pixel-F1"], costs=True)
    assert "s / step std" in csv_text.splitlines()[0]


def test_objective_table_sets_each_term_against_its_chance(tmp_path, capsys):
    from helpers import error_of, run

    row = {"train_ncl": 4.0, "train_ncl_pn": 4.5, "train_ncl_pn_chance": 5.0, "train_ncl_pn_defined": 1.0,
           "train_ncl_se_pos": 2.5, "train_ncl_se_pos_chance": 5.0, "train_ncl_se_pos_defined": 0.5,
           "train_ncl_se_neg": 1.0, "train_ncl_se_neg_chance": 2.0, "train_ncl_se_neg_defined": 0.5}
    last = {**row, "train_ncl": 1.0, "train_ncl_pn": 1.0, "train_ncl_se_pos": 0.5, "train_ncl_se_neg": 2.0}
    learned = tmp_path / "learned"
    learned.mkdir()
    (learned / "log.txt").write_text(json.dumps({**row, "epoch": 0}) + "\n" + json.dumps({**last, "epoch": 3}) + "\n")
    old = tmp_path / "old"
    old.mkdir()
    (old / "log.txt").write_text(json.dumps({"train_ncl": 4.0, "epoch": 0}) + "\n")
    out = run(capsys, "compare", str(learned), str(old), "--objective").out
    line = [x for x in out.splitlines() if x.startswith(f"| {learned} ")][0]
    assert "| 0–3 | 4.000 → 1.000 (0.25) | 0.90 → 0.20 | 0.50 → 0.10 | 0.50 → 1.00 | 1.00/0.50/0.50 |" in line
    assert f"{old}: no contrastive objective in its log" in out
    code, lines = error_of(["compare", str(tmp_path / "none"), "--objective"], capsys)
    assert code == 2 and lines[-1].endswith("no log.txt here; --objective reads benco train output folders")


def test_a_models_own_flag_is_named_against_its_default_not_the_majority(tmp_path):
    """NCL without its terms is the row that departs, even where most runs (a baseline's and its own)
    hold contrast_weight 0: the label says which row is NCL as its defaults build it."""
    epochs = [(0, {"test": {"pixel-level F1": 0.3}})]
    folders = [
        make_run(tmp_path / "ncl-s0", "ncl", 0, epochs, extra={"contrast_weight": 0.5}),
        make_run(tmp_path / "pc-s0", "ncl", 0, epochs, extra={"contrast_weight": 0.0}),
        make_run(tmp_path / "pc-s1", "ncl", 1, epochs, extra={"contrast_weight": 0.0}),
        make_run(tmp_path / "base-s0", "ncl", 0, epochs, extra={"contrast_weight": 0.0, "temperature": 0.5}),
    ]
    lines = compare([str(f) for f in folders], "markdown").splitlines()
    labels = sorted(line.split(" | ")[0][2:] for line in lines[4:])
    assert labels == ["ncl", "ncl (contrast_weight=0.0)", "ncl (contrast_weight=0.0, temperature=0.5)"]


def test_a_setting_no_model_owns_is_named_against_the_majority(tmp_path):
    epochs = [(0, {"test": {"pixel-level F1": 0.3}})]
    folders = [make_run(tmp_path / f"s{i}", "ncl", i, epochs) for i in range(2)]
    odd = make_run(tmp_path / "odd", "ncl", 0, epochs)
    summary = json.loads((odd / "summary.json").read_text())
    summary["args"]["image_size"] = 256
    (odd / "summary.json").write_text(json.dumps(summary))
    lines = compare([str(f) for f in [*folders, odd]], "markdown").splitlines()
    assert sorted(line.split(" | ")[0][2:] for line in lines[4:]) == ["ncl", "ncl (image_size=256)"]


def test_a_false_alarm_rate_is_bolded_where_it_is_lowest(tmp_path):
    metrics = {"CASIAv1": {"pixel-level F1": 0.2, "authentic FPR (validation threshold)": 0.09}}
    better = {"CASIAv1": {"pixel-level F1": 0.1, "authentic FPR (validation threshold)": 0.04}}
    runs = [make_run(tmp_path / "a", "ncl", 0, [(0, metrics)]),
            make_run(tmp_path / "b", "ncl", 0, [(0, better)], {"temperature": 0.5})]
    text = compare([str(r) for r in runs], "markdown")
    assert "| **0.040** |" in text and "| **0.200** |" in text and "**0.090**" not in text

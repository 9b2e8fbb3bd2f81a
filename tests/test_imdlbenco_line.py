"""The installed IMDL-BenCo line (imdlbenco 0.1.x or the numpy-2 imdlbenco13 0.2.x), told apart and named."""

import json
from importlib import metadata
from pathlib import Path

import pytest

from ncl_plugin.engine import imdlbenco_line


def test_the_line_is_told_by_what_installed_it_and_by_its_own_evaluators():
    line = imdlbenco_line.installed()
    assert line.version == metadata.version(line.distribution)
    assert line.numpy == metadata.version("numpy")
    # the numpy-2 line's pixel evaluators keep their own sums and average over tampered images; 0.1.x's do not
    assert line.keeps_sums == (line.distribution == imdlbenco_line.NUMPY2_LINE)
    assert line.native_pixel_mean == (imdlbenco_line.TAMPERED_IMAGES if line.keeps_sums else imdlbenco_line.ALL_IMAGES)
    assert int(line.numpy.split(".")[0]) == (2 if line.keeps_sums else 1)


def test_benco_env_names_the_line_numpy_and_how_each_averages(capsys):
    from ncl_plugin import cli

    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    line = imdlbenco_line.installed()
    assert "Albumentations version" in out  # IMDL-BenCo's own lines first
    assert f"IMDL-BenCo {line.version} ({line.distribution}" in out and f"numpy {line.numpy}" in out
    assert "pixel metrics: means over tampered images" in out
    assert f"IMDL-BenCo's own train.py/test.py under this line: pixel metrics are means over {line.native_pixel_mean}" in out


def test_a_zoo_model_the_installed_imdlbenco_lacks_is_skipped_in_one_line(monkeypatch, capsys):
    """MSCDI_Net left IMDL-BenCo after 0.1.45: named in --models, it is skipped and the rest runs; a name no
    IMDL-BenCo ever had is still an error."""
    from ncl_plugin import zoo
    from ncl_plugin.bench.runner import Budget, jobs
    from ncl_plugin.errors import UsageError

    known = {name: model for name, model in zoo.registry().items() if name != "MSCDI_Net"}
    monkeypatch.setattr(zoo, "registry", lambda: known)
    budget = Budget("quickstart", {}, [], [], {"image_size": 128})
    assert [job.model for job in jobs("ncl,MSCDI_Net", budget, Path("/tmp/zoo"))] == ["ncl"]
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [f"--models MSCDI_Net: skipped, not in {imdlbenco_line.installed().name}'s MODELS"]
    with pytest.raises(UsageError, match="MSCDI_Nett is not in IMDL-BenCo's MODELS"):
        jobs("MSCDI_Nett", budget, Path("/tmp/zoo"))
    assert "MSCDI_Net" in zoo.listing() and "absent" in zoo.listing()


def test_a_benchmark_never_extends_a_run_trained_under_another_imdlbenco(tmp_path):
    from ncl_plugin.bench import runner
    from ncl_plugin.errors import UsageError

    here = imdlbenco_line.installed().name
    other = "imdlbenco 0.1.45" if imdlbenco_line.installed().keeps_sums else "imdlbenco13 0.2.9"
    folder = tmp_path / "ncl-seed0"
    folder.mkdir()
    command = ["train", "--model", "ncl", "--device", "cpu", "--if_not_amp"]
    summary = {"args": {"if_not_amp": True}, "imdlbenco": other, "pixel_mean": "tampered images"}
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(UsageError, match=f"trained under {other}, and {here} is installed: give another --out"):
        runner.check_records([runner.Run(runner.Job("ncl", "ncl"), 0, folder, command)])
    (folder / "summary.json").write_text(json.dumps({**summary, "imdlbenco": here}))
    runner.check_records([runner.Run(runner.Job("ncl", "ncl"), 0, folder, command)])
    # bench.json, beside every run, records it too
    from ncl_plugin.bench import datarefs

    assert datarefs.record(command)["imdlbenco"] == here and datarefs.record(command)["pixel_mean"] == "tampered images"

"""NCL in ForensicHub's registries, and ForensicHub's training script run with NCL registered.

Against the PyPI release (forensichub 0.0.1: its registries and base classes,
no training scripts). The script itself lives only in ForensicHub's GitHub
repository; ``replica_train_script`` stands in for it: the same contract
(``--config`` only, models built by name from ForensicHub's MODELS, IMDL-BenCo's
CUDA-only lines on the way, the rank guard train.py writes), nothing of its code.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import benco

forensichub = pytest.importorskip("ForensicHub.registry", reason="ForensicHub is not installed (pip install -e '.[test]')")

EXAMPLE = Path(__file__).parents[1] / "configs" / "forensichub" / "ncl.yaml"
SMALL = {"backbone": "resnet10t", "decoder_channels": 32, "output_stride": 16, "patch_size": 16}


def test_ncl_is_built_by_name_from_forensichubs_registry_and_returns_what_its_loop_reads():
    from ncl_plugin import NCL, DeepLabV3Plus
    from ncl_plugin.forensichub import register

    register()
    register()  # twice: no error, nothing replaced
    assert forensichub.MODELS.get("NCL") is NCL and forensichub.MODELS.get("ncl") is NCL
    assert forensichub.MODELS.get("DeepLabV3Plus") is DeepLabV3Plus
    model = forensichub.build_from_registry(forensichub.MODELS, {"name": "NCL", "init_config": SMALL})
    mask = torch.zeros(2, 1, 64, 64)
    mask[0, :, 8:40, 8:40] = 1
    out = model(image=torch.randn(2, 3, 64, 64), mask=mask, label=torch.tensor([1.0, 0.0]))
    assert {"backward_loss", "pred_mask", "pred_label", "visual_loss"} <= set(out)
    out["backward_loss"].backward()
    assert out["pred_mask"].shape == (2, 1, 64, 64) and torch.isfinite(out["backward_loss"])


def test_a_name_forensichub_holds_for_another_model_is_an_error_not_overwritten(monkeypatch):
    from ncl_plugin.forensichub import register

    register()
    saved = dict(forensichub.MODELS._module_dict)
    try:
        forensichub.MODELS._module_dict["ncl"] = torch.nn.Identity
        with pytest.raises(RuntimeError, match="already holds another model named 'ncl'"):
            register()
        assert forensichub.MODELS.get("ncl") is torch.nn.Identity
    finally:
        forensichub.MODELS._module_dict.clear()
        forensichub.MODELS._module_dict.update(saved)


def test_importing_the_plugin_after_forensichub_registers_ncl():
    code = "import ForensicHub.registry as r; import ncl_plugin; print(r.MODELS.get('ncl').__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "NCL", out.stderr[-2000:]


def test_a_dataset_list_that_is_not_there_is_named_in_one_line(tmp_path):
    result = benco("forensichub", "--config", EXAMPLE, check=False, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "JsonDataset path data/synthetic/train.json: no such file or folder" in line and "benco synth" in line


def test_the_pypi_release_has_no_training_script_and_says_where_to_get_one(tmp_path):
    benco("synth", tmp_path / "data" / "synthetic", "--n", "20", "--size", "64")
    result = benco("forensichub", "--config", EXAMPLE, check=False, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "has no training_scripts/train.py (the PyPI release ships none)" in line
    assert "github.com/scu-zjz/ForensicHub" in line and "--train_script" in line


REPLICA = '''
import argparse, json, os
import torch, yaml
from IMDLBenCo.training_scripts.utils import misc
from ForensicHub.registry import MODELS, build_from_registry


def main(args, config):
    if args.distributed:
        global_rank = misc.get_rank()
    if global_rank == 0 and args.log_dir is not None:
        os.makedirs(args.log_dir, exist_ok=True)
    print(f"master port: {os.environ['MASTER_PORT']}")
    model = build_from_registry(MODELS, config["model"])
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, :20] = 1
    out = model(image=torch.randn(2, 3, 64, 64), mask=mask, label=torch.ones(2))
    out["backward_loss"].backward()
    torch.cuda.synchronize()  # IMDL-BenCo's trainer, every step
    with open(os.path.join(args.log_dir, "result.json"), "w") as handle:
        json.dump({"model": type(model).__name__, "keys": sorted(out), "loss": float(out["backward_loss"])}, handle)


parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
args = parser.parse_args()
config = yaml.safe_load(open(args.config))
args.distributed, args.log_dir = False, config["log_dir"]
main(args, config)
'''


def test_forensichubs_script_runs_ncl_on_a_cpu_with_its_lines_adapted(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(REPLICA)
    config = tmp_path / "ncl.yaml"
    config.write_text(json.dumps({"log_dir": str(tmp_path / "log"), "device": "cpu", "model": {"name": "NCL", "init_config": SMALL}}))
    # as ForensicHub wrote it, the script fails in a single CPU process
    plain = subprocess.run([sys.executable, str(script), "--config", str(config)], capture_output=True, text=True, timeout=300)
    assert plain.returncode != 0 and "global_rank" in plain.stderr
    result = benco("forensichub", "--config", config, "--train_script", script, cwd=tmp_path)
    assert f"ForensicHub's {script} on cpu, NCL and DeepLabV3Plus in its MODELS; model NCL" in result.stdout + result.stderr
    written = json.loads((tmp_path / "log" / "result.json").read_text())
    assert written["model"] == "NCL" and "backward_loss" in written["keys"] and written["loss"] > 0
    assert script.read_text() == REPLICA  # ForensicHub's file is never edited


def test_a_script_of_another_forensichub_than_the_installed_one_is_one_line(tmp_path):
    """GitHub main's train.py imports ForensicHub.training_scripts, which the PyPI release lacks."""
    script = tmp_path / "train.py"
    script.write_text("import ForensicHub.training_scripts.utils.misc as misc\n")
    config = tmp_path / "ncl.yaml"
    config.write_text(json.dumps({"device": "cpu", "model": {"name": "NCL"}}))
    result = benco("forensichub", "--config", config, "--train_script", script, check=False, cwd=tmp_path)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"benco forensichub: error: {script} needs ForensicHub.training_scripts")
    assert "install the ForensicHub that script belongs to" in line


def test_the_example_yaml_builds_ncl_with_its_own_flags():
    import yaml

    from ncl_plugin.forensichub import register

    register()
    config = yaml.safe_load(EXAMPLE.read_text())
    assert config["model"]["name"] == "NCL" and config["device"] == "cpu"
    model = forensichub.build_from_registry(forensichub.MODELS, config["model"])
    assert model.patch_size == config["model"]["init_config"]["patch_size"]

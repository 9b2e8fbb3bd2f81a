"""A normal (non-editable) install: registry/ lands inside the package, nothing at the top level."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )
    (path,) = out.glob("*.whl")
    return path


def test_wheel_maps_registry_into_the_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "ncl_plugin/registry/__init__.py" in names
    assert not any(name.startswith("registry/") for name in names)
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"ncl_plugin"}


def test_wheel_installs_benco_and_a_name_imdlbenco_never_overwrites(wheel):
    """Reinstalling imdlbenco puts its own `benco` back; `ncl-benco` is the plugin's command whatever happens."""
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    scripts = archive.read(entry_points).decode()
    assert "benco = ncl_plugin.cli:console_main" in scripts and "ncl-benco = ncl_plugin.cli:console_main" in scripts


def test_wheel_carries_the_real_data_recipe_its_split_and_metadata(wheel):
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert "ncl_plugin/configs/casia-cpu.yaml" in names
    assert "ncl_plugin/configs/forensichub/ncl.yaml" in names  # the ForensicHub example
    assert {f"ncl_plugin/configs/splits/casiav1/{side}.txt" for side in ("train", "val", "test")} <= set(names)
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = archive.read(metadata).decode()
    assert "\nAuthor: " in text and "\nProject-URL: " in text


def test_installed_wheel_registers_ncl(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=600,
    )
    script = (
        "import ncl_plugin, ncl_plugin.registry as r, ncl_plugin.cli as cli; from IMDLBenCo.registry import MODELS; "
        "print(sorted(cli.COMMANDS)); print(ncl_plugin.__version__); print(r.__file__); print(MODELS.get('ncl').__module__)"
    )
    # The installed copy comes first on the path, and the repository is not on it at all.
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    commands, version, registry_file, model_module = result.stdout.strip().splitlines()[-4:]
    assert commands == str(sorted(["train", "test", "calibrate", "test-robust", "complexity", "predict", "synth", "data", "compare", "bench", "forensichub"]))
    assert wheel.name.startswith(f"ncl_imdlbenco-{version}-")  # one version number, in ncl_plugin/__init__.py
    assert Path(registry_file).is_relative_to(target)
    assert model_module == "ncl_plugin.method.model"

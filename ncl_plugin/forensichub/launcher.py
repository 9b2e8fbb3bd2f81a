"""``benco forensichub --config X.yaml``: ForensicHub's own ``training_scripts/train.py``, NCL registered.

ForensicHub's script imports no plugin and takes only ``--config``, so it is run
here, in this process, after :func:`ncl_plugin.forensichub.register`: as
``python training_scripts/train.py`` would run it, on GPUs under torchrun
(``torchrun --nproc_per_node=N -m ncl_plugin.forensichub --config X.yaml``).
Nothing in ForensicHub's files is edited. On a CPU, which the script was not
written for, three of its lines are adapted for the run (:data:`CPU_ADAPTATIONS`,
and IMDL-BenCo's CUDA-only lines as ``benco train`` adapts them).

ForensicHub's PyPI release (0.0.1) holds its registries and base classes but no
``training_scripts/``; GitHub's main holds them (docs: ForensicHub).
"""

import argparse
import contextlib
import os
import sys
import types
from pathlib import Path
from typing import Iterator, List, Optional

from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import say

# (the line as ForensicHub's train.py writes it, what the run reads instead, why)
CPU_ADAPTATIONS = (
    (
        "    if global_rank == 0 and args.log_dir is not None:",
        "    if misc.get_rank() == 0 and args.log_dir is not None:",
        "global_rank is set only when distributed (one CPU process: UnboundLocalError)",
    ),
)
GITHUB = "https://github.com/scu-zjz/ForensicHub"
DEEPFAKEBENCH = "DeepfakeBench"  # ForensicHub main's deepfake task imports it when ForensicHub is imported


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benco forensichub",
        description="ForensicHub's own training script (training_scripts/train.py), with NCL in its MODELS.",
    )
    p.add_argument("--config", required=True, help="ForensicHub's YAML (example: configs/forensichub/ncl.yaml)")
    p.add_argument(
        "--train_script",
        default=None,
        help="ForensicHub's training_scripts/train.py (default: the one beside the installed ForensicHub)",
    )
    p.add_argument(
        "--without_deepfakebench",
        action="store_true",
        help="ForensicHub main imports DeepfakeBench (GitHub only) for its deepfake task: stand an empty one in "
        "for image manipulation work",
    )
    return p


def _import_forensichub(without_deepfakebench: bool):
    if without_deepfakebench:
        for name in (DEEPFAKEBENCH, f"{DEEPFAKEBENCH}.training", f"{DEEPFAKEBENCH}.training.detectors"):
            module = sys.modules.setdefault(name, types.ModuleType(name))
            module.__path__, module.__all__ = [], []
    try:
        import ForensicHub
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] == DEEPFAKEBENCH:
            raise UsageError(
                "ForensicHub imports DeepfakeBench (github.com/scu-zjz/DeepfakeBench) for its deepfake task: "
                "install it, or give --without_deepfakebench to train image manipulation models without it"
            ) from None
        if err.name and err.name.split(".")[0] == "ForensicHub":
            raise UsageError(f"ForensicHub is not installed: pip install -e a clone of {GITHUB}") from None
        raise
    from ncl_plugin.forensichub import register

    register()
    return ForensicHub


def train_script(forensichub, given: Optional[str]) -> Path:
    if given:
        path = Path(given)
        if not path.is_file():
            raise UsageError(f"--train_script {given}: no such file")
        return path
    found = Path(forensichub.__file__).parent / "training_scripts" / "train.py"
    if not found.is_file():
        from ncl_plugin.engine.imdlbenco_line import NOT_INSTALLED, version_of

        version = version_of("forensichub")
        version = "as installed" if version == NOT_INSTALLED else version
        raise UsageError(
            f"ForensicHub {version} ({Path(forensichub.__file__).parent}) has no training_scripts/train.py (the PyPI "
            f"release ships none): pip install -e a clone of {GITHUB}, or give --train_script PATH/train.py"
        )
    return found


def _config(path: str) -> dict:
    import yaml

    if not os.path.isfile(path):
        raise UsageError(f"--config {path}: no such file")
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise UsageError(f"--config {path}: not a ForensicHub training YAML (it has no model: section)")
    # ForensicHub's datasets meet a missing list with a traceback, after the model is built
    tests = config.get("test_dataset") or []
    for entry in [config.get("train_dataset"), *(tests if isinstance(tests, list) else [tests])]:
        data = ((entry or {}).get("init_config") or {}).get("path") if isinstance(entry, dict) else None
        if isinstance(data, str) and not os.path.exists(data):
            raise UsageError(
                f"--config {path}: {entry.get('name')} path {data}: no such file or folder (the example's lists: "
                "benco synth data/synthetic --n 200 --size 64)"
            )
    return config


def adapted_source(source: str, cpu: bool) -> str:
    if not cpu:
        return source
    for line, instead, _ in CPU_ADAPTATIONS:
        source = source.replace(line, instead)
    return source


@contextlib.contextmanager
def _cpu_run(device) -> Iterator[None]:
    """IMDL-BenCo's loop (which ForensicHub's script runs) as ``benco train`` adapts it to a CPU."""
    from ncl_plugin.engine import compat

    # the script prints the rendezvous port even when it runs a single process
    os.environ.setdefault("MASTER_PORT", "29500")
    with compat.adapted(device):
        yield


def main(argv: List[str]) -> int:
    args = parser().parse_args(argv)
    config = _config(args.config)
    forensichub = _import_forensichub(args.without_deepfakebench)
    script = train_script(forensichub, args.train_script)
    import torch

    device = torch.device(str(config.get("device", "cuda")))
    cpu = device.type == "cpu"
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--config {args.config}: device {device}, and no GPU is visible here: set device: cpu")
    say(f"ForensicHub's {script} on {device}, NCL and DeepLabV3Plus in its MODELS; model {config['model'].get('name')}")
    source = adapted_source(script.read_text(encoding="utf-8"), cpu)
    saved = sys.argv
    sys.argv = [str(script), "--config", args.config]
    try:
        with _cpu_run(device) if cpu else contextlib.nullcontext():
            exec(compile(source, str(script), "exec"), {"__name__": "__main__", "__file__": str(script)})
    except ImportError as err:
        # a script of another ForensicHub than the one installed (main's train.py beside the PyPI release)
        if not (err.name or "").startswith("ForensicHub"):
            raise
        raise UsageError(
            f"{script} needs {err.name} ({err}), which the installed ForensicHub lacks: install the ForensicHub that "
            f"script belongs to (pip install -e its clone of {GITHUB})"
        ) from None
    finally:
        sys.argv = saved
    return 0

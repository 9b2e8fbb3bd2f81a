import os
import socket
import urllib.request

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_configure(config):
    # IMDL-BenCo, albumentations and timm warn about their own deprecations at import.
    for category in ("FutureWarning", "DeprecationWarning"):
        config.addinivalue_line("filterwarnings", f"ignore::{category}")
    config.addinivalue_line(
        "markers", "slow: end-to-end runs of several minutes; CI runs them too, `-m 'not slow'` skips them"
    )
    config.addinivalue_line(
        "markers",
        "lines: what must hold under both IMDL-BenCo lines (imdlbenco 0.1.x, imdlbenco13 0.2.x): CI runs `-m lines` "
        "in a Python 3.13 environment too",
    )


# Run on both IMDL-BenCo lines: registry, model, losses, evaluators, thresholds, config, augmentations, the
# line's record and tables, and (test_amp) two short `benco train` runs that record what computed them.
LINES = {
    "test_registry.py", "test_model.py", "test_losses.py", "test_sampler.py", "test_evaluators.py",
    "test_thresholds.py", "test_config.py", "test_imdlbenco_line.py", "test_augmentations.py", "test_compare.py",
    "test_compat.py", "test_amp.py", "test_terminal.py",
}  # fmt: skip


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in LINES:
            item.add_marker(pytest.mark.lines)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """40 synthetic 64x64 images (Tp/Gt folders, JSON lists, a test-set map), built once per session."""
    from ncl_plugin.data import synthetic

    return synthetic.build(str(tmp_path_factory.mktemp("synth")), n=40, size=64, seed=3, show_progress=False)


@pytest.fixture
def offline(monkeypatch):
    """Any download fails: the recipes must not need the network."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

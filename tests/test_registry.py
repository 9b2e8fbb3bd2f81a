import subprocess
import sys
import textwrap

import pytest
import torch
from IMDLBenCo.registry import MODELS
from IMDLBenCo.training_scripts.utils import misc

from ncl_plugin import LOSSES, NCL, SAMPLERS, DeepLabV3Plus, TriClassPatchSampler


def test_models_are_registered_under_both_names():
    assert MODELS.get("ncl") is NCL and MODELS.get("NCL") is NCL
    assert MODELS.get("deeplabv3plus") is DeepLabV3Plus and MODELS.get("DeepLabV3Plus") is DeepLabV3Plus


def test_components_are_registered_in_the_plugin_registries():
    assert SAMPLERS.get("TriClassPatchSampler") is TriClassPatchSampler
    assert {"NCLContrastiveLoss", "PivotConsistentLoss"} <= set(LOSSES.module_dict)
    assert type(SAMPLERS).__module__ == "IMDLBenCo.registry"


def test_imdlbenco_argparser_turns_model_arguments_into_typed_flags():
    args = misc.create_argparser(NCL).parse_args(["--patch_size", "16", "--temperature", "0.2"])
    assert args.patch_size == 16 and isinstance(args.patch_size, int)
    assert args.temperature == pytest.approx(0.2) and isinstance(args.temperature, float)
    assert args.backbone == "resnet101" and args.contrast_weight == 0.5 and args.pretrained_path == ""
    baseline = misc.create_argparser(DeepLabV3Plus).parse_args([])
    assert "contrast_weight" not in vars(baseline) and baseline.contour_weight == 0.0


def test_importing_twice_and_alongside_imdlbenco_does_not_raise():
    script = textwrap.dedent(
        """
        import importlib, warnings
        warnings.simplefilter("error", UserWarning)  # our own re-registration must not even warn
        import IMDLBenCo
        import ncl_plugin
        import ncl_plugin.registry
        importlib.reload(ncl_plugin.registry)
        import ncl_plugin
        from IMDLBenCo.registry import MODELS
        print(MODELS.get("ncl").__name__)
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore::FutureWarning", "-W", "ignore::DeprecationWarning", "-c", script],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("NCL")


def test_a_registered_variant_is_selected_by_flag():
    class CountingSampler(TriClassPatchSampler):
        calls = 0

        def forward(self, *args, **kwargs):
            CountingSampler.calls += 1
            return super().forward(*args, **kwargs)

    SAMPLERS.register_module(name="CountingSampler", module=CountingSampler, force=True)
    try:
        flags = misc.create_argparser(NCL).parse_args(["--sampler", "CountingSampler", "--backbone", "resnet18"])
        model = NCL(**vars(flags))
        assert isinstance(model.sampler, CountingSampler)
        mask = torch.zeros(1, 1, 64, 64)
        mask[..., 10:40, 10:40] = 1
        model(torch.randn(1, 3, 64, 64), mask)
        assert CountingSampler.calls == 1
    finally:
        SAMPLERS.module_dict.pop("CountingSampler")


def test_unknown_component_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"--contrastive_loss 'Nope' is not registered in LOSSES \(known: "):
        NCL(backbone="resnet18", contrastive_loss="Nope")

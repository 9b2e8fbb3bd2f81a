"""Mixed precision: the dtype each command picks, what runs in it, what stays float32, and the records."""
import argparse
import json

import pytest
import torch
from torch.nn.modules import module as torch_module

from helpers import SMALL_TRAIN, run, small_ncl, train_args
from ncl_plugin.data import synthetic
from ncl_plugin.engine import amp, imdlbenco_line, training_log

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return synthetic.build(str(tmp_path_factory.mktemp("synth")), n=12, size=64, seed=3, show_progress=False)


@pytest.fixture
def conv_dtypes(monkeypatch):
    """The dtypes that convolutions output, in training and in inference, while the test runs."""
    monkeypatch.setattr(torch_module, "_global_forward_hooks", type(torch_module._global_forward_hooks)())
    seen = {"train": {}, "eval": {}}

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            counts = seen["train" if module.training else "eval"]
            counts[output.dtype] = counts.get(output.dtype, 0) + 1

    torch_module.register_module_forward_hook(hook)
    return seen


def majority(counts):
    return max(counts, key=counts.get)


# ---------------------------------------------------------------- the choice
@pytest.mark.parametrize(
    "device,has_bf16,if_not_amp,expected",
    [
        ("cuda", False, False, "float16"),  # IMDL-BenCo's own autocast
        ("cpu", True, False, "bfloat16"),
        ("cpu", False, False, "float32"),
        ("cpu", True, True, "float32"),
        ("cuda", True, True, "float32"),
    ],
)
def test_the_precision_follows_the_device_the_cpu_and_the_switch(monkeypatch, device, has_bf16, if_not_amp, expected):
    monkeypatch.setattr(amp, "cpu_has_bfloat16", lambda: has_bf16)
    assert amp.precision_for(torch.device(device), if_not_amp) == expected


def test_a_cpu_without_bfloat16_says_once_that_it_keeps_float32(monkeypatch, capsys):
    monkeypatch.setattr(amp, "cpu_has_bfloat16", lambda: False)
    monkeypatch.setattr(amp, "_said", set())
    for _ in range(2):
        args = argparse.Namespace(if_not_amp=False)
        assert amp.choose(args, CPU) == "float32" and args.if_not_amp is True and args.precision == "float32"
    said = capsys.readouterr()
    assert (said.out + said.err).count("has no bfloat16 instructions") == 1
    amp.choose(argparse.Namespace(if_not_amp=True), CPU)  # asked for float32: nothing to say
    assert "bfloat16" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "line,machine,expected",
    [
        ("flags\t\t: fpu avx512f avx512_bf16 amx_tile", "x86_64", True),
        ("flags\t\t: fpu avx512f avx512_vnni", "x86_64", False),  # AVX-512 alone: emulated bfloat16
        ("flags\t\t: fpu amx_bf16", "x86_64", True),
        ("Features\t: fp asimd bf16 i8mm", "aarch64", True),
        ("Features\t: fp asimd", "aarch64", False),
    ],
)
def test_bfloat16_instructions_are_read_from_cpuinfo(line, machine, expected):
    assert amp.bfloat16_in_cpuinfo(f"processor\t: 0\n{line}\n", machine) is expected


# ---------------------------------------------------------------- what runs in it
def test_ncls_sampler_and_losses_stay_float32_under_cpu_autocast(conv_dtypes):
    model = small_ncl().train()
    seen = {}

    def record(name, dtypes):
        def hook(module, inputs, output):
            seen[name] = dtypes(output)  # and the output unchanged (a hook that returns None)

        return hook

    model.sampler.register_forward_hook(record("sampler", lambda o: o.features.dtype))
    model.contrastive_loss.register_forward_hook(record("ncl", lambda o: {v.dtype for v in o.values()}))
    model.segmentation_loss.register_forward_hook(record("pc", lambda o: o["loss"].dtype))
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 8:40, 12:44] = 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(image=torch.randn(2, 3, 64, 64), mask=mask)
    assert majority(conv_dtypes["train"]) == torch.bfloat16  # the network did run in bfloat16
    assert seen == {"sampler": torch.float32, "ncl": {torch.float32}, "pc": torch.float32}
    assert out["backward_loss"].dtype == torch.float32 and out["pred_mask"].dtype == torch.float32
    out["backward_loss"].backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())


def test_inference_runs_reduced_and_returns_float32():
    class Bare(torch.nn.Module):  # a zoo model that returns its convolution's dtype
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 1)

        def forward(self, image):
            mask = self.conv(image)
            return {"pred_mask": mask, "visual": {"inner": mask}, "inner_dtype": mask.dtype}

    model = Bare().eval()
    with torch.no_grad(), amp.running(model, CPU, "bfloat16"):
        out = model(torch.randn(1, 3, 8, 8))
    assert out["inner_dtype"] == torch.bfloat16
    assert out["pred_mask"].dtype == torch.float32 and out["visual"]["inner"].dtype == torch.float32
    assert model(torch.randn(1, 3, 8, 8))["pred_mask"].dtype == torch.float32  # the hook is gone after


@pytest.mark.skipif(not amp.cpu_has_bfloat16(), reason="this CPU has no bfloat16 instructions: benco keeps float32")
def test_benco_trains_and_tests_in_bfloat16_by_default_and_records_it(dataset, tmp_path, capsys, conv_dtypes):
    out = tmp_path / "amp"
    said = run(capsys, *train_args(dataset / "train", dataset / "test_datasets.json", out))
    assert "AMP bfloat16" in said.out + said.err
    assert majority(conv_dtypes["train"]) == torch.bfloat16 and majority(conv_dtypes["eval"]) == torch.bfloat16
    rows = [json.loads(line) for line in (out / "log.txt").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["precision"] for r in rows] == ["bfloat16"] and summary["precision"] == "bfloat16"
    # and the IMDL-BenCo that computed its figures, named first and recorded with the pixel mean
    line = imdlbenco_line.installed()
    assert line.described() in said.out + said.err
    assert [r["imdlbenco"] for r in rows] == [line.name] and summary["imdlbenco"] == line.name
    assert summary["pixel_mean"] == "tampered images" and summary["numpy"] == line.numpy
    assert summary["args"]["if_not_amp"] is False
    assert "Auto Mixed Precision (AMP) is enabled" in (out / "train.log").read_text()  # IMDL-BenCo's own word

    conv_dtypes["train"].clear(), conv_dtypes["eval"].clear()
    plain = tmp_path / "fp32"
    run(capsys, *train_args(dataset / "train", dataset / "test_datasets.json", plain, "--if_not_amp"))
    assert set(conv_dtypes["train"]) == set(conv_dtypes["eval"]) == {torch.float32}
    assert json.loads((plain / "summary.json").read_text())["precision"] == "float32"

    # benco compare names the precision: one row per precision, each labelled
    from ncl_plugin.bench.report import compare

    table = compare([str(out), str(plain)], fmt="markdown")
    assert "precisions differ" in table
    assert "precision=bfloat16" in table and "precision=float32" in table
    assert "; precision float32;" in compare([str(plain)], fmt="markdown")


def test_a_run_saved_before_the_record_reads_as_the_precision_it_ran_in():
    assert amp.recorded({"if_not_amp": True}) == "float32"  # every CPU run: AMP was always off there
    assert amp.recorded({"if_not_amp": False}) == "float16"  # a GPU run under IMDL-BenCo's autocast
    assert amp.recorded({"precision": "bfloat16", "if_not_amp": False}) == "bfloat16"


def test_a_benchmark_never_extends_a_run_of_another_precision(tmp_path, monkeypatch):
    from ncl_plugin.bench import runner
    from ncl_plugin.errors import UsageError

    monkeypatch.setattr(amp, "cpu_has_bfloat16", lambda: True)
    folder = tmp_path / "ncl-seed0"
    folder.mkdir()
    record = {"imdlbenco": imdlbenco_line.installed().name}
    (folder / "summary.json").write_text(json.dumps({"args": {"if_not_amp": True}, **record}))  # a float32 run
    command = ["train", "--model", "ncl", *SMALL_TRAIN, "--device", "cpu"]
    run_ = runner.Run(runner.Job("ncl", "ncl"), 0, folder, command)
    with pytest.raises(UsageError, match="trained in float32, and this command trains in bfloat16: add --if_not_amp"):
        runner.check_records([run_])
    runner.check_records([runner.Run(runner.Job("ncl", "ncl"), 0, folder, [*command, "--if_not_amp"])])
    assert training_log.run_record(str(tmp_path / "nothing"))["precision"] is None

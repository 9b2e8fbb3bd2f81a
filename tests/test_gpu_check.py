"""benchmarks/gpu_check.py, rehearsed on the CPU: every check reports and gpu_check.json is complete.

The script waits for the first GPU the project gets, where it must run unchanged; its rehearsal runs the
same command lines at tiny sizes, so that a change to a flag or a file the checks read fails here first. What
only a GPU shows (the bfloat16 autocast switch, SyncBatchNorm, a gradient overflow) is checked on the
script's observers directly. Every fault a CPU can seed is seeded, and each must fail its check.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
STATUSES = {"passed", "failed", "skipped", "not run"}
RECORD_KEYS = {"name", "title", "status", "seconds", "limit_s", "figures", "brief", "note", "log", "log_tail"}
CUDA_ONLY = {"train-ncl-fp16", "train-deeplabv3plus-fp16", "imdlbenco-train-py"}
CPU_HAS_BF16 = "bf16" in open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else False


@pytest.fixture(scope="module")
def gpu_check():
    """benchmarks/gpu_check.py, imported from its file (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location("benchmarks_gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def results(out):
    return json.loads((Path(out) / "gpu_check.json").read_text())


def by_name(report):
    return {check["name"]: check for check in report["checks"]}


def assert_complete(report, names):
    assert [c["name"] for c in report["checks"]] == names  # every check, in the script's order
    for check in report["checks"]:
        assert set(check) == RECORD_KEYS, check["name"]
        assert check["status"] in STATUSES, check
        assert check["status"] == "passed" or check["note"], check  # a failure, a skip or a check not run says why
    assert report["finished"] is True


def test_a_rehearsed_training_and_its_test_report_with_every_other_check(gpu_check, tmp_path, capsys):
    out = tmp_path / "out"
    code = gpu_check.main([str(out), "--rehearse", "--only", "train-ncl-fp16,train-ncl-channels_last,test"])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    report = results(out)
    assert_complete(report, [c.name for c in gpu_check.CHECKS])
    assert report["verdict"] == "passed (the checks --only selected)"
    checks = by_name(report)
    assert {n for n, c in checks.items() if c["status"] == "passed"} == {"versions", "data", "train-ncl-channels_last", "test"}
    assert "a GPU's" in checks["train-ncl-fp16"]["note"]  # selected, and skipped: float16 is a GPU's
    assert checks["complexity"]["status"] == "not run" and checks["complexity"]["note"] == "not selected (--only)"
    import IMDLBenCo

    assert checks["versions"]["figures"]["IMDL-BenCo"] == IMDLBenCo.__version__ and checks["versions"]["figures"]["device"] == "CPU"

    train = checks["train-ncl-channels_last"]["figures"]
    assert train["steps"] == 8 and train["finite_gradient_steps"] == 8  # 16 training images in batches of 2
    assert math.isfinite(train["loss_first"]) and train["step_seconds_median"] > 0
    assert train["channels_last_weights"] > 0  # the flag took
    # what the convolutions output: the CPU's AMP where it has bfloat16, float32 elsewhere
    dtypes = train["convolution_dtypes"]
    assert max(dtypes, key=dtypes.get) == train["expected_convolution_dtype"] == ("bfloat16" if CPU_HAS_BF16 else "float32")
    assert {"total", "pc", "ncl"} <= set(train["logged_losses"])
    # benco test reads back the checkpoint the training just wrote, in the same precision: the same metrics.
    test = checks["test"]
    assert test["figures"]["largest_difference_from_training_log"] < 1e-4
    assert [r["checkpoint"] for r in test["figures"]["rows"]] == ["checkpoint-0.pth"]
    assert "--checkpoint" in (out / test["log"]).read_text() and test["log_tail"].endswith("[exit 0]")

    assert "gpu_check on CPU (rehearsal): 4 passed, 0 failed, 1 skipped, 14 not run" in printed
    assert printed.rstrip().splitlines()[-2] == "Verdict: passed (the checks --only selected)"


def test_the_essential_checks_fit_the_gpu_budget_in_order(gpu_check):
    essential = [c for c in gpu_check.CHECKS if c.essential]
    assert sum(gpu_check.GPU.limits[c.limit] for c in essential) <= gpu_check.GPU.budget_s
    # essential first: an optional check never takes an essential one's time
    flags = [c.essential for c in gpu_check.CHECKS]
    assert flags == sorted(flags, reverse=True)
    assert all(c.limit in gpu_check.GPU.limits and c.limit in gpu_check.REHEARSAL.limits for c in gpu_check.CHECKS)
    for name, (checks, _, _) in gpu_check.FAULTS.items():
        assert set(checks) <= {c.name for c in gpu_check.CHECKS}, name


def test_an_essential_check_that_never_ran_fails_the_verdict(gpu_check, tmp_path, capsys):
    # A budget that no check fits: nothing passes, and nothing that did not run reads as passed or skipped.
    assert gpu_check.main([str(tmp_path), "--rehearse", "--budget", "1"]) == 1
    report = results(tmp_path)
    assert report["counts"] == {"passed": 0, "failed": 0, "skipped": 0, "not run": len(gpu_check.CHECKS)}
    assert report["verdict"].startswith("failed: essential checks not run: versions, data, train-ncl-fp16")
    assert "Verdict: failed: essential checks not run" in capsys.readouterr().out


def test_an_import_that_fails_stops_the_run_in_one_line(gpu_check, tmp_path, capsys):
    import IMDLBenCo  # noqa: F401 -- imported before the fault, so that albumentations is the import that fails

    assert gpu_check.main([str(tmp_path), "--rehearse", "--fault", "import-missing"]) == 2
    assert sys.modules.get("albumentations") is not None  # the fault is put back
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpu_check: cannot import albumentations: ")
    assert err[0].endswith("(docs/development.md lists the wheels a GPU machine needs)")
    checks = results(tmp_path)["checks"]
    assert checks[0]["status"] == "failed" and "albumentations" in checks[0]["note"]
    assert {c["status"] for c in checks[1:]} == {"not run"}  # the file still lists what never ran


@pytest.mark.parametrize("argv,message", [
    (["--only", "trian-ncl-fp16"], "gpu_check: --only trian-ncl-fp16: no check named trian-ncl-fp16; the checks are versions, data,"),
    (["--budget", "0"], "gpu_check: --budget 0: must be a positive number of seconds"),
    (["--fault", "slow-ncl,amp-of"], "gpu_check: --fault slow-ncl,amp-of: no fault named amp-of; the faults are import-missing,"),
])
def test_bad_flags_are_one_line_errors(gpu_check, tmp_path, capsys, argv, message):
    assert gpu_check.main([str(tmp_path), "--rehearse", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)
    assert not (tmp_path / "gpu_check.json").exists()


def test_an_earlier_run_is_never_overwritten(gpu_check, tmp_path, capsys):
    (tmp_path / "gpu_check.json").write_text("{}")
    assert gpu_check.main([str(tmp_path), "--rehearse"]) == 2
    assert "gpu_check.json exists: give another output folder" in capsys.readouterr().err
    assert (tmp_path / "gpu_check.json").read_text() == "{}"


# ---------------------------------------------------------------- the observers, for what only a GPU shows
def test_the_convolutions_tell_what_autocast_did_not_what_it_claims(gpu_check, monkeypatch):
    from torch.nn.modules import module as torch_module

    # the hooks the observer adds are global: put them back after the test
    monkeypatch.setattr(torch_module, "_global_forward_hooks", type(torch_module._global_forward_hooks)())
    seen = {"convolution_dtypes": {}}
    gpu_check.watch_convolutions(torch, seen)
    layer = torch.nn.Conv2d(3, 2, 3)
    image = torch.randn(1, 3, 8, 8)
    # a disabled autocast still reports a fast_dtype of bfloat16: the convolution says float32
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False) as context:
        assert context.fast_dtype == torch.bfloat16
        layer(image)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(image)
    layer.eval()
    layer(image)  # inference is not counted
    assert seen["convolution_dtypes"] == {"float32": 1, "bfloat16": 1}
    assert gpu_check.dtype_problems({"float32": 1, "bfloat16": 1}, "bfloat16") == []
    assert gpu_check.dtype_problems({"float32": 3, "bfloat16": 1}, "bfloat16") == [
        "25% of the training convolutions produced bfloat16 (seen: {'float32': 3, 'bfloat16': 1})"]


def test_the_bfloat16_check_on_a_gpu_makes_imdlbencos_float16_autocast_bfloat16(gpu_check, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda.amp, "autocast", lambda *args, **kwargs: calls.append(kwargs))
    gpu_check.swap_autocast(torch, torch.bfloat16)
    torch.cuda.amp.autocast()  # trainer.py's own call, which gives no dtype
    assert calls == [{"dtype": torch.bfloat16}]


def test_sync_batchnorm_layers_are_counted_once_through_the_recursive_conversion(gpu_check, monkeypatch):
    monkeypatch.setattr(torch.nn.SyncBatchNorm, "convert_sync_batchnorm", torch.nn.SyncBatchNorm.convert_sync_batchnorm)
    seen = {"sync_batchnorm_layers": 0}
    gpu_check.watch_sync_batchnorm(torch, seen)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4),
                                torch.nn.Sequential(torch.nn.BatchNorm2d(4), torch.nn.Sequential(torch.nn.BatchNorm2d(4))))
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules()) == 3
    assert seen["sync_batchnorm_layers"] == 3


def test_steps_with_gradients_that_are_not_finite_are_counted_and_fail_the_check(gpu_check, monkeypatch):
    from IMDLBenCo.training_scripts.utils import misc

    from ncl_plugin.engine import compat

    monkeypatch.setattr(misc.NativeScalerWithGradNormCount, "__call__", misc.NativeScalerWithGradNormCount.__call__)
    seen = {"losses": [], "norms": [], "starts": [], "channels_last_weights": None, "backend": None,
            "convolution_dtypes": {}, "sync_batchnorm_layers": 0}
    gpu_check.watch_scaler(torch, misc, seen)
    scaler = compat.amp_scaler(torch.device("cpu"), enabled=False)  # as benco train builds it on a CPU
    layer = torch.nn.Conv2d(3, 2, 3).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    image = torch.randn(1, 3, 4, 4)
    for scale in (1.0, float("inf")):
        loss = layer(image * scale).square().mean() if scale == 1.0 else (layer.weight * scale).sum()
        scaler(loss, optimizer, parameters=layer.parameters())  # a generator, as trainer.py passes it
        optimizer.zero_grad()
    summary = gpu_check.observed_summary(seen)
    assert summary["steps"] == 2 and summary["finite_gradient_steps"] == 1 and summary["finite_losses"] == 1
    assert summary["channels_last_weights"] == 1 and summary["gradient_norm_median"] > 0
    assert gpu_check.step_problems(summary, rehearse=True) == [
        "1 of 2 losses were not finite", "1 of 2 steps had non-finite gradients"]
    # On a GPU the loss scaler skips overflowing float16 steps: one finite step is enough there.
    assert gpu_check.step_problems({**summary, "finite_losses": 2}, rehearse=False) == []


def test_the_import_line_goes_after_the_scripts_last_top_level_import(gpu_check, tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import os\nfrom a import (b,\n    c)\n\ndef main():\n    import inner\n")
    gpu_check.add_import_line(script)
    text = script.read_text()
    compile(text, str(script), "exec")  # not inside the parenthesised import
    assert text.splitlines()[3] == gpu_check.IMPORT_LINE and text.count(gpu_check.IMPORT_LINE) == 1


def test_the_equal_steps_table_is_read_one_row_per_model(gpu_check, tmp_path):
    table = tmp_path / "bench.csv"  # as benco bench writes it: its last row names each column's best model
    table.write_text("run,runs,synthetic pixel-level AUC,synthetic pixel-level AUC std,synthetic pixel-level F1,s / step\n"
                     "ncl,1,0.9,,0.5,0.25\ndeeplabv3plus,1,0.8,,,0.2\nbest,,ncl,,ncl,\n")
    rows = gpu_check.bench_rows(table)
    assert rows == [{"run": "ncl", "synthetic pixel-level AUC": 0.9, "synthetic pixel-level F1": 0.5, "s / step": 0.25},
                    {"run": "deeplabv3plus", "synthetic pixel-level AUC": 0.8, "s / step": 0.2}]
    assert gpu_check.bench_brief(rows[0]) == "ncl: AUC 0.900, F1 0.500, 0.250 s/step"


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("GPU_CHECK_REHEARSAL"),
    reason="the whole rehearsal takes minutes on 2 cores; GPU_CHECK_REHEARSAL=1 runs it (the fast subsets run always)",
)
def test_the_whole_rehearsal_passes_every_check_a_cpu_can_run(gpu_check, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), str(out), "--rehearse"],
                            capture_output=True, text=True, timeout=5700)
    report = results(out)
    checks = by_name(report)
    assert_complete(report, [c.name for c in gpu_check.CHECKS])
    failed = {n: c["note"] for n, c in checks.items() if c["status"] == "failed"}
    assert result.returncode == 0 and not failed, f"{failed}\n{result.stdout[-3000:]}"
    assert {n for n, c in checks.items() if c["status"] == "skipped"} == CUDA_ONLY
    assert checks["imdlbenco-train-py"]["figures"]["prepared"] is True  # benco init and the import line ran
    assert checks["torchrun-benco"]["figures"]["backend"] == "gloo"
    assert checks["ranks-syncbn"]["figures"]["ranks"][1]["contour_patches"] == 0
    stopped = checks["sigterm-resume"]["figures"]["stopped_at"]
    assert stopped["epoch"] == 1 and 0 < stopped["step"] < stopped["steps_per_epoch"]
    assert checks["sigterm-resume"]["figures"]["logged_epochs"] == [0, 1]
    models = checks["speed"]["figures"]["models"]
    assert models["deeplabv3plus"]["train_ratio"] == 1.0 and models["ncl"]["train_ms"] > 0
    assert [r["run"] for r in checks["equal-steps"]["figures"]["rows"]] == ["ncl", "ncl (contrast_weight=0)", "deeplabv3plus"]
    assert len(set(checks["equal-steps"]["figures"]["optimiser_steps"].values())) == 1
    assert set(checks["speed-zoo"]["figures"]["models"]) >= {"ncl", "deeplabv3plus"}


def test_every_fault_a_cpu_can_seed_fails_its_check_and_the_run(gpu_check, tmp_path, capsys):
    """Each seeded fault makes each of its checks fail (a GPU's check, skipped here, aside), and the run
    exits non-zero. import-missing, which stops the run at its first check, has its own test above."""
    runs = [
        (["data-short"], "data"),
        (["weights-nan"], "train-ncl-channels_last,test,test-robust,predict"),
        (["amp-off", "channels-last-off", "ddp-unused", "complexity-other-model", "slow-ncl", "unequal-steps"],
         "train-ncl-bf16,train-ncl-channels_last,ranks-syncbn,complexity,speed,equal-steps"),
    ]
    seeded = set()
    for index, (faults, only) in enumerate(runs):
        out = tmp_path / f"run{index}"
        code = gpu_check.main([str(out), "--rehearse", "--only", only, "--fault", ",".join(faults)])
        printed = capsys.readouterr().out
        assert code == 1, printed[-3000:]
        report = results(out)
        assert report["faults"] == sorted(faults) and report["verdict"].startswith("failed: failed ")
        checks = by_name(report)
        for fault in faults:
            for name in gpu_check.FAULTS[fault][0]:
                if name == "train-ncl-fp16" or (name == "train-ncl-bf16" and not CPU_HAS_BF16):
                    assert checks[name]["status"] in ("skipped", "not run")  # a GPU's float16; a CPU without bfloat16
                    continue
                assert checks[name]["status"] == "failed", (fault, name, checks[name]["note"])
            seeded.add(fault)
    assert seeded | {"import-missing"} == {n for n, (_, _, cpu) in gpu_check.FAULTS.items() if cpu}

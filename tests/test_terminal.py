"""What a person sees: IMDL-BenCo's lines go to the command log, the terminal keeps one line per epoch."""
import re

import pytest

from ncl_plugin import terminal


def test_imdlbenco_prints_go_to_the_log_and_messages_to_both(tmp_path, capsys):
    with terminal.command_log(str(tmp_path / "run"), "train") as path:
        print("Epoch: [0]  [0/4]  eta: 0:00:02  lr: 0.000000")
        terminal.say("epoch 0/3 | loss total 1.000")
    captured = capsys.readouterr()
    assert "Epoch: [0]" not in captured.out + captured.err
    assert "epoch 0/3 | loss total 1.000" in captured.err
    log = path.read_text()
    assert path.name == "train.log" and log.startswith("==== benco train")
    assert "Epoch: [0]  [0/4]" in log and "epoch 0/3 | loss total 1.000" in log


def test_verbose_shows_imdlbenco_lines_too_and_appends(tmp_path, capsys):
    with terminal.command_log(str(tmp_path), "test"):
        print("first run")
    with terminal.command_log(str(tmp_path), "test", verbose=True):
        print("---syncronized---")
        print("partial", end="")
    assert capsys.readouterr().err.splitlines() == ["---syncronized---", "partial"]
    log = (tmp_path / "test.log").read_text()
    assert log.count("==== benco test") == 2 and "first run" in log and "---syncronized---" in log


def test_stdout_is_restored_after_the_command(tmp_path, capsys):
    with pytest.raises(RuntimeError):
        with terminal.command_log(str(tmp_path), "predict"):
            raise RuntimeError("boom")
    print("back on stdout")
    assert capsys.readouterr().out == "back on stdout\n"


def test_a_failed_command_leaves_its_error_in_its_log(tmp_path):
    """The log of a command that failed used to end with its header or its last progress line."""
    from ncl_plugin.errors import UsageError

    with pytest.raises(UsageError):
        with terminal.command_log(str(tmp_path), "train"):
            print("Epoch: [0]  [0/4]")
            raise UsageError("--data_path x: no such file or folder")
    assert (tmp_path / "train.log").read_text().splitlines()[-1] == "==== error: --data_path x: no such file or folder"
    with pytest.raises(RuntimeError):
        with terminal.command_log(str(tmp_path), "predict"):
            raise RuntimeError("boom")
    log = (tmp_path / "predict.log").read_text()
    assert "==== failed:" in log and "Traceback" in log and log.rstrip().endswith("RuntimeError: boom")


def test_an_unwritable_log_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(terminal.UsageError, match=r"cannot write .*train\.log"):
        with terminal.command_log(str(blocker / "sub"), "train"):
            pass


def test_epoch_line_shows_top_level_loss_terms_and_the_best_epoch():
    stats = {"lr": 0.00063, "total": 1.9653, "pc": 0.7382, "ncl": 2.4543, "ncl_pn": 2.3066, "ncl_se_pos": 4.29}
    line = terminal.epoch_line(1, 9, stats, {"pixel-level F1": 0.25, "pixel-level AUC": 0.5},
                               best_epoch=0, seconds=75, metric_names={"pixel-level F1": "pixel-f1"})
    assert line == ("epoch 1/8 | loss total 1.965 pc 0.738 ncl 2.454 | lr 6.3e-04 | "
                    "test pixel-f1 0.250 pixel-level AUC 0.500 | best epoch 0 | 1 min 15 s")
    untested = terminal.epoch_line(2, 9, {"loss": 0.5}, None, best_epoch=None, seconds=3, metric_names={})
    assert untested == "epoch 2/8 | loss loss 0.500 | 3 s"


def test_progress_in_a_pipe_is_plain_lines_without_control_characters(capsys, monkeypatch):
    assert not terminal.console.is_terminal  # pytest captures stderr: not a terminal
    progress = terminal.make_progress("batch")
    progress.interval = 0  # report on every step
    with progress:
        task = progress.add_task("epoch 0/1", total=3)
        for _ in range(3):
            progress.advance(task)
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("epoch 0/1: 1/3, ")
    assert len(err.splitlines()) == 2  # the finished step is left to the line that sums the epoch up
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", err)


def test_a_command_log_collected_after_its_file_closed_flushes_nothing(tmp_path):
    """io's finaliser flushes the log once more when it is collected: its file is closed by then
    (Python 3.13 reported the ValueError at every command's end)."""
    from ncl_plugin.terminal import _CommandLog

    with open(tmp_path / "x.log", "w") as handle:
        sink = _CommandLog(handle, echo=False)
        sink.write("a line\n")
    sink.flush()
    sink.close()

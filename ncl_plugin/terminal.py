"""What a person sees while a command runs, and the log that keeps the rest.

The terminal shows progress bars, this plugin's own messages (one line per
training epoch) and the final tables, all through :data:`console` (stderr).
Everything else written to stdout while a command runs, above all IMDL-BenCo's
``MetricLogger`` lines and synchronisation dumps, goes unchanged to
``<command>.log`` in the command's output folder; ``--verbose`` shows it in the
terminal too. In a pipe or a CI log the bars are replaced by a plain line per
minute of long work, so that no control character lands there.
"""

import contextlib
import datetime
import io
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Iterable, Iterator, List, Optional

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ncl_plugin.errors import ReportedError, UsageError

console = Console(stderr=True, soft_wrap=True)  # messages stay one line in logs


def is_main_process() -> bool:
    """Rank 0, or no torchrun. Read from the environment: valid before the process group exists."""
    return os.environ.get("RANK", "0") == "0"


# ---------------------------------------------------------------- the command log
class _CommandLog(io.TextIOBase):
    """stdout during a command: every write goes to the log file, and with ``echo`` to the terminal too."""

    def __init__(self, handle, echo: bool):
        self.handle = handle
        self.echo = echo
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.handle is not None:
            self.handle.write(text)
            self.handle.flush()  # `tail -f` follows a long run
        if self.echo:
            # Whole lines through the console, which keeps them above any live progress bar.
            lines = (self._pending + text).split("\n")
            self._pending = lines.pop()
            for line in lines:
                console.print(line, markup=False, highlight=False)
        return len(text)

    def flush(self) -> None:
        # also called when the object is collected (io's close), after the command closed its file
        if self.handle is not None and not self.handle.closed:
            self.handle.flush()

    def close_pending(self) -> None:
        if self.echo and self._pending:
            console.print(self._pending, markup=False, highlight=False)
        self._pending = ""


_active: List[_CommandLog] = []


@contextlib.contextmanager
def command_log(folder: str, command: str, verbose: bool = False) -> Iterator[Optional[Path]]:
    """Send stdout to ``folder/<command>.log`` (appended) while the block runs. Yields the log's path.

    Other ranks of a torchrun job write no log: IMDL-BenCo already silences their prints.
    """
    path = Path(folder) / f"{command.replace(' ', '-')}.log" if is_main_process() else None
    with contextlib.ExitStack() as stack:
        handle = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = stack.enter_context(open(path, "a", encoding="utf-8"))
            except OSError as err:
                raise UsageError(f"cannot write {path}: {err.strerror or err}; choose another output folder") from None
            started = datetime.datetime.now().isoformat(timespec="seconds")
            line = " ".join(sys.argv[1:]) if sys.argv[1:2] == [command] else command
            handle.write(f"==== benco {line} ({started})\n")
        sink = _CommandLog(handle, echo=verbose and is_main_process())
        _active.append(sink)
        try:
            with contextlib.redirect_stdout(sink):
                yield path
        except BaseException as err:
            # the log of a failed command ends with why it failed, not with its last progress line
            if handle is not None:
                handle.write(_failure(err))
            raise
        finally:
            sink.close_pending()
            _active.remove(sink)


def _failure(err: BaseException) -> str:
    if isinstance(err, KeyboardInterrupt):
        return "==== interrupted\n"
    if isinstance(err, ReportedError):
        return f"==== error: {err}\n"
    return "==== failed:\n" + "".join(traceback.format_exception(type(err), err, err.__traceback__))


def print_plain(renderable, handle) -> None:
    """``renderable`` as plain text (no colour, no escape sequences) into an open file."""
    Console(file=handle, width=120, color_system=None, soft_wrap=True).print(renderable)


def _into_log(renderable) -> None:
    """Plain text of ``renderable`` into the active command log, if any."""
    if _active and _active[-1].handle is not None:
        print_plain(renderable, _active[-1].handle)
        _active[-1].handle.flush()


def say(message: str, style: Optional[str] = None) -> None:
    """A message of this plugin: to the terminal (main process only) and into the command log."""
    if not is_main_process():
        return
    text = Text(message, style=style or "")
    console.print(text, highlight=False)
    _into_log(text)


def warn(message: str) -> None:
    say(message, style="yellow")


def show(renderable) -> None:
    """A table or other rich renderable: to the terminal (main process only) and, as plain text, into the command log."""
    if not is_main_process():
        return
    console.print(renderable)
    _into_log(renderable)


# ---------------------------------------------------------------- progress
class _RateColumn(TextColumn):
    """Items per second, or seconds per item when slower than one a second."""

    def __init__(self, unit: str):
        super().__init__("")
        self.unit = unit

    def render(self, task):
        speed = task.finished_speed or task.speed
        if not speed:
            return super().render(task)
        return Text(_rate(speed, self.unit), style="progress.data.speed")


def _rate(speed: float, unit: str) -> str:
    return f"{speed:.1f} {unit}/s" if speed >= 1 else f"{1 / speed:.1f} s/{unit}"


class _PlainProgress:
    """Progress for a pipe or a log file: a plain line per task every ``interval`` seconds, no bar.

    Offers the part of rich's Progress this plugin uses (add_task, advance, context manager).
    """

    def __init__(self, unit: str, enabled: bool, interval: float = 60.0):
        self.unit = unit
        self.enabled = enabled
        self.interval = interval
        self.tasks = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description: str, total: Optional[float] = None, completed: float = 0) -> int:
        now = time.monotonic()
        self.tasks[len(self.tasks)] = {
            "description": description,
            "total": total,
            "done": completed,
            "start_done": completed,
            "start": now,
            "shown": now,
        }
        return len(self.tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        task = self.tasks[task_id]
        task["done"] += advance
        now = time.monotonic()
        if self.enabled and now - task["shown"] >= self.interval and task["done"] != task["total"]:
            task["shown"] = now
            speed = (task["done"] - task["start_done"]) / max(now - task["start"], 1e-9)
            line = f"{task['description']}: {task['done']:.0f}"
            if task["total"]:
                line += f"/{task['total']:.0f}"
                if speed > 0:
                    line += f", {_rate(speed, self.unit)}, {(task['total'] - task['done']) / speed / 60:.0f} min left"
            console.print(line, markup=False, highlight=False)


def make_progress(unit: str = "it", enabled: bool = True):
    """Live bars in a terminal (gone once done: the line or table that follows sums them up); plain lines elsewhere."""
    if not console.is_terminal:
        return _PlainProgress(unit, enabled and is_main_process())
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and is_main_process()),
        transient=True,
        # stdout belongs to the command log; rich would otherwise print it above the bars.
        redirect_stdout=False,
        redirect_stderr=False,
    )


class TrackedLoader:
    """A DataLoader that advances a progress bar as it is iterated.

    IMDL-BenCo's loop reads ``len(loader)``, ``loader.dataset`` and
    ``loader.collate_fn``; everything else is forwarded to the wrapped loader.
    """

    def __init__(self, loader, progress, description: str):
        self._loader = loader
        self._progress = progress
        self._description = description

    def __len__(self) -> int:
        return len(self._loader)

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def __iter__(self) -> Iterator:
        task = self._progress.add_task(self._description, total=len(self._loader))
        for item in self._loader:
            yield item
            self._progress.advance(task)


def track(items: Iterable, description: str, total: Optional[int] = None, unit: str = "it", enabled: bool = True):
    """Iterate ``items`` under a progress bar of its own."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with make_progress(unit, enabled) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


@contextlib.contextmanager
def progress_session(unit: str = "batch", enabled: bool = True) -> Iterator:
    with make_progress(unit, enabled) as progress:
        yield progress


# ---------------------------------------------------------------- one line per epoch
def _top_level_terms(stats: dict) -> List[str]:
    """Loss terms without their sub-terms: 'ncl_pn' is left out when 'ncl' is there (log.txt keeps all)."""
    names = [k for k in stats if k != "lr"]
    return [k for k in names if not any(k != other and k.startswith(other + "_") for other in names)]


def epoch_line(
    epoch: int,
    epochs: int,
    train_stats: dict,
    test_means: Optional[dict],
    best_epoch: Optional[int],
    seconds: float,
    metric_names: dict,
) -> str:
    """``epoch 3/8 | loss total 1.965 pc 0.738 ncl 2.454 | lr 1.6e-04 | test pixel-f1 0.620 | best epoch 3 | 48 s``.

    Epochs are counted from 0 up to the last one, as in log.txt, checkpoint names and IMDL-BenCo's loop.
    """
    parts = [f"epoch {epoch}/{epochs - 1}"]
    terms = _top_level_terms(train_stats)
    if terms:
        parts.append("loss " + " ".join(f"{k} {train_stats[k]:.3f}" for k in terms))
    if "lr" in train_stats:
        parts.append(f"lr {train_stats['lr']:.1e}")
    if test_means:
        parts.append("test " + " ".join(f"{metric_names.get(k, k)} {v:.3f}" for k, v in test_means.items()))
    if best_epoch is not None:
        parts.append(f"best epoch {best_epoch}")
    minutes, secs = divmod(int(round(seconds)), 60)
    parts.append(f"{minutes} min {secs} s" if minutes else f"{secs} s")
    return " | ".join(parts)


__all__ = [
    "console",
    "say",
    "warn",
    "escape",
    "command_log",
    "make_progress",
    "progress_session",
    "track",
    "TrackedLoader",
    "epoch_line",
    "is_main_process",
]

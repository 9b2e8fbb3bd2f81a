"""Progress bars (rich) for long work: epochs, tests, dataset generation."""
import contextlib
from typing import Iterable, Iterator, Optional

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, soft_wrap=True)  # messages stay one line in logs


class _RateColumn(TextColumn):
    """Items per second, or seconds per item when slower than one a second."""

    def __init__(self, unit: str):
        super().__init__("")
        self.unit = unit

    def render(self, task):
        speed = task.finished_speed or task.speed
        if not speed:
            return super().render(task)
        text = f"{speed:.1f} {self.unit}/s" if speed >= 1 else f"{1 / speed:.1f} s/{self.unit}"
        from rich.text import Text

        return Text(text, style="progress.data.speed")


def make_progress(unit: str = "it", enabled: bool = True) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


class TrackedLoader:
    """A DataLoader that advances a progress bar as it is iterated.

    IMDL-BenCo's loop reads ``len(loader)``, ``loader.dataset`` and
    ``loader.collate_fn``; everything else is forwarded to the wrapped loader.
    """

    def __init__(self, loader, progress: Progress, description: str):
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
    with make_progress(unit, enabled) as progress:
        yield from progress.track(items, total=total, description=description)


@contextlib.contextmanager
def progress_session(unit: str = "batch", enabled: bool = True) -> Iterator[Progress]:
    with make_progress(unit, enabled) as progress:
        yield progress

"""What makes an interrupted run resume exactly: signals, random states, mid-epoch positions.

Every epoch starts from a seed derived from (--seed, rank, epoch), so the
data order, the loader workers' augmentations and the model's randomness of
an epoch do not depend on what ran before it. A run stopped by SIGINT or
SIGTERM stops at an optimiser-step boundary and saves, next to the weights,
the position in the epoch and the random states; resuming replays the
epoch's data up to that position without training on it, restores the
random states, and goes on as if nothing had happened.
"""

import contextlib
import random
import signal
from typing import Dict, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist

from ncl_plugin.engine import compat
from ncl_plugin.terminal import warn


# ---------------------------------------------------------------- seeds and random states
def seed_epoch(seed: int, rank: int, epoch: int) -> None:
    compat.seed_everything(seed + rank + 100_003 * epoch)


def capture_rng() -> Dict:
    """The random states of this process, in types that ``torch.load(weights_only=True)`` accepts."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
    }


def restore_rng(state: Dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"], numpy["has_gauss"], numpy["gauss"])
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))


# ---------------------------------------------------------------- signals
class StopRequest:
    """Turns SIGINT / SIGTERM into a request that training honours at the next optimiser step.

    A second SIGINT stops at once (KeyboardInterrupt). Under DDP every rank
    learns of a request on any rank, so that all stop at the same step.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: Optional[int] = None
        self._previous = {}

    def __enter__(self):
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        warn(f"{signal.Signals(signum).name}: finishing the current step, then saving a resumable checkpoint")

    def requested(self) -> Optional[int]:
        """The signal number to stop for, agreed by every rank, or None."""
        if dist.is_available() and dist.is_initialized():
            flag = torch.tensor([self.signum or 0], dtype=torch.int64, device=compat.collective_device())
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            return int(flag.item()) or None
        return self.signum


class StopAtStep(Exception):
    """Raised out of IMDL-BenCo's train_one_epoch when a stop request is honoured."""

    def __init__(self, step: int, signum: int):
        super().__init__(step, signum)
        self.step = step
        self.signum = signum


class EpochLoader:
    """The training loader of one epoch: progress bar, mid-epoch resume and stop requests.

    ``skip`` batches are drawn and dropped (the data order and the loader
    workers' augmentations stay those of an uninterrupted epoch), then
    ``rng`` is restored. A stop request is honoured before drawing a batch
    whose index is a multiple of ``accum_iter``: the optimiser has just stepped.
    """

    def __init__(
        self,
        loader,
        progress,
        description: str,
        epoch: int,
        accum_iter: int = 1,
        skip: int = 0,
        rng: Optional[Dict] = None,
        stop: Optional[StopRequest] = None,
    ):
        self.loader = loader
        self.progress = progress
        self.description = description
        self.epoch = epoch
        self.accum_iter = max(1, accum_iter)
        self.skip = skip
        self.rng = rng
        self.stop = stop
        self.step = skip

    def __len__(self) -> int:
        return len(self.loader) - self.skip

    def __getattr__(self, name):
        return getattr(self.loader, name)

    @property
    def position(self) -> float:
        """Where IMDL-BenCo's schedule is, in epochs, counting the skipped batches."""
        return self.step / len(self.loader) + self.epoch

    def __iter__(self):
        total = len(self.loader)
        task = self.progress.add_task(self.description, total=total, completed=self.skip)
        batches = iter(self.loader)
        for _ in range(self.skip):
            next(batches)
        if self.rng is not None:
            restore_rng(self.rng)
        for index in range(self.skip, total):
            if self.stop is not None and index % self.accum_iter == 0:
                signum = self.stop.requested()
                if signum:
                    raise StopAtStep(index, signum)
            self.step = index
            yield next(batches)
            self.progress.advance(task)


# trainer.py:79 sets the lr from `data_iter_step / len(data_loader) + epoch`.
SCHEDULE_LINE = "adjust_learning_rate(optimizer, data_iter_step / len(data_loader) + epoch, args)"


@contextlib.contextmanager
def schedule_follows(loader: EpochLoader) -> Iterator[None]:
    """IMDL-BenCo's learning-rate schedule at the loader's position, skipped batches included.

    IMDL-BenCo counts steps from the first batch it iterates; an epoch resumed
    mid-way iterates only its remaining batches, so without this the schedule
    would restart from the epoch's beginning.
    """
    from IMDLBenCo.training_scripts.trainer import trainer

    original = trainer.adjust_learning_rate
    with compat.patched(trainer, "adjust_learning_rate", lambda opt, _, args: original(opt, loader.position, args)):
        yield

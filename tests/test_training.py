"""The training loop's guards."""
import pytest
import torch

from ncl_plugin.engine.training import GuardedScaler
from ncl_plugin.errors import RunError


def test_non_finite_losses_are_skipped_then_stop_the_run():
    parameter = torch.nn.Parameter(torch.ones(()))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    inner_calls = []
    guarded = GuardedScaler(lambda loss, opt, **k: inner_calls.append(loss.item()), max_nonfinite=3)
    guarded(parameter * float("nan"), optimizer)
    guarded(parameter * float("inf"), optimizer)
    guarded(parameter * 2.0, optimizer)  # a finite one resets the count
    assert inner_calls == [2.0] and guarded.skipped == 2 and guarded.consecutive == 0
    guarded(parameter * float("nan"), optimizer)
    guarded(parameter * float("nan"), optimizer)
    with pytest.raises(RunError, match="not finite for 3 steps in a row"):
        guarded(parameter * float("nan"), optimizer)

"""Each IMDL-BenCo line this plugin adapts must still be in the installed IMDL-BenCo.

When an upgrade rewrites one, this fails and names the adaptation that may be dropped.
"""
from pathlib import Path

import IMDLBenCo
import pytest

from ncl_plugin.engine import compat, interruption

SOURCE = Path(IMDLBenCo.__file__).parent
ADAPTED = list(compat.ADAPTED_LINES) + [
    ("training_scripts/trainer/trainer.py", interruption.SCHEDULE_LINE, "interruption.schedule_follows"),
]


@pytest.mark.parametrize("file,line,adaptation", ADAPTED, ids=[a[2] for a in ADAPTED])
def test_the_adapted_imdlbenco_line_is_still_there(file, line, adaptation):
    text = (SOURCE / file).read_text(encoding="utf-8")
    assert line in text, f"IMDLBenCo/{file} no longer has {line!r}: review {adaptation}"


def test_the_patched_names_exist_where_they_are_patched():
    from IMDLBenCo.evaluation import AUC, F1, Accuracy
    from IMDLBenCo.training_scripts.trainer import trainer
    from IMDLBenCo.training_scripts.utils import misc

    assert callable(misc.SmoothedValue.synchronize_between_processes)
    assert callable(misc.all_reduce_mean) and callable(misc.all_reduce)
    assert all(hasattr(module, "dist") for module in (F1, AUC, Accuracy))
    assert callable(trainer.adjust_learning_rate) and callable(trainer.train_one_epoch)

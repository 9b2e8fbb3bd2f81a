"""The ``benco`` commands this plugin adds, one module each.

Each module holds ``NAME``, a one-line ``SUMMARY``, ``TAKES_CONFIG`` (whether
``--config`` files apply), ``parser()`` (its flags) and ``main(argv)``.
"""

from ncl_plugin.commands import (
    bench,
    calibrate,
    compare,
    complexity,
    data,
    forensichub,
    predict,
    robustness,
    synth,
    test,
    train,
)

COMMANDS = {
    module.NAME: module
    for module in (train, test, calibrate, robustness, complexity, predict, synth, data, compare, bench, forensichub)
}


def config_keys() -> set:
    """Keys a --config file may hold: the flags of every command that takes one."""
    return {a.dest for m in COMMANDS.values() if m.TAKES_CONFIG for a in m.parser()._actions} - {"help"}

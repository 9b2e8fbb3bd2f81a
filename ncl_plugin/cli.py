"""``benco``: IMDL-BenCo's command line, extended with the commands of :mod:`ncl_plugin.commands`.

``benco init``, ``benco env`` and ``benco -v`` are handed to IMDL-BenCo's own
CLI unchanged. ``python -m ncl_plugin`` takes the same arguments (and is what
torchrun runs: ``torchrun --nproc_per_node=N -m ncl_plugin train ...``).
"""

import contextlib
import io
import os
import sys
import warnings
from typing import List, Optional

from ncl_plugin.config import closest
from ncl_plugin.errors import Interrupted, ReportedError


def quiet_imports() -> None:
    """IMDL-BenCo, timm and torch warn about their own deprecations at import, and IMDL-BenCo
    prints the torch version; none of it concerns the user of this command."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="HOPE YOU TO READ")
    with contextlib.redirect_stdout(io.StringIO()):
        import IMDLBenCo  # noqa: F401
        import IMDLBenCo.training_scripts.trainer  # noqa: F401


# Before the commands: importing them imports the parts of IMDL-BenCo that print.
quiet_imports()
from ncl_plugin.commands import COMMANDS  # noqa: E402

# IMDL-BenCo's own commands, handed over unchanged.
IMDLBENCO_COMMANDS = {
    "init": "(IMDL-BenCo) write IMDL-BenCo's scripts into this folder",
    "env": "(IMDL-BenCo) show environment information, then the IMDL-BenCo line and how it averages metrics",
    "-v": "(IMDL-BenCo) show IMDL-BenCo's version",
    "--version": None,  # the same as -v
}


def help_text() -> str:
    rows = {name: module.SUMMARY for name, module in COMMANDS.items()}
    rows.update({name: summary for name, summary in IMDLBENCO_COMMANDS.items() if summary})
    width = max(map(len, rows)) + 2
    lines = "\n".join(f"  {name.ljust(width)}{summary}" for name, summary in rows.items())
    return (
        "usage: benco <command> [flags]\n\n"
        "IMDL-BenCo's command line, with NCL and a CPU/GPU/torchrun workflow added.\n\n"
        f"commands:\n{lines}\n\n"
        "`benco <command> --help` lists a command's flags; with --model it adds the model's own flags.\n"
    )


def _delegate_to_imdlbenco(argv: List[str]) -> int:
    from IMDLBenCo.cli import main as imdlbenco_main

    saved = sys.argv
    sys.argv = ["benco", *argv]
    try:
        imdlbenco_main()
    finally:
        sys.argv = saved
    return 0


def one_line(err: Exception) -> str:
    """The message alone. A DataLoader worker's exception comes back with the worker's traceback
    folded into its text; its last line is the original message."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(help_text())
        return 0
    if argv[0] in IMDLBENCO_COMMANDS:
        code = _delegate_to_imdlbenco(argv)
        if argv[0] == "env":
            from ncl_plugin.engine.imdlbenco_line import environment

            print(environment())
        return code
    command = argv[0]
    if command not in COMMANDS:
        print(
            f"benco: unknown command {command!r}{closest(command, list(COMMANDS) + ['init', 'env'])}\n\n{help_text()}",
            file=sys.stderr,
        )
        return 2
    debug = "--debug" in argv or os.environ.get("NCL_DEBUG") == "1"
    try:
        return COMMANDS[command].main(argv[1:])
    except ReportedError as err:
        if debug:
            raise
        label = "" if isinstance(err, Interrupted) else "error: "
        print(f"benco {command}: {label}{one_line(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"benco {command}: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    sys.exit(main())

"""Writes the command reference (reference.md) from the commands' own parsers, at build time,
so that the page cannot drift from the flags."""

import os

import mkdocs_gen_files

os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal's width

from ncl_plugin.cli import help_text  # noqa: E402
from ncl_plugin.commands import COMMANDS  # noqa: E402


def subcommands(module):
    """A command's sub-commands (`benco data split`), each with its own parser."""
    for name, (build, _) in getattr(module, "SUBCOMMANDS", {}).items():
        yield name, build()


with mkdocs_gen_files.open("reference.md", "w") as page:
    page.write("# Command reference\n\n")
    page.write("Every flag of every `benco` command, as `benco <command> --help` prints it. ")
    page.write("With `--model`, `--help` adds the model's own flags ([The method](method.md#model-arguments)).\n\n")
    page.write(f"```text\n{help_text()}```\n\n")
    for name, module in COMMANDS.items():
        parser = module.parser()
        parser.prog = f"benco {name}"
        page.write(f"## `benco {name}`\n\n{module.SUMMARY}\n\n```text\n{parser.format_help()}```\n\n")
        for sub, subparser in subcommands(module):
            page.write(f"### `benco {name} {sub}`\n\n```text\n{subparser.format_help()}```\n\n")

"""The README and the documentation site say what the code does.

The site builds with `mkdocs build --strict` (no broken link or anchor, no page left
out of the navigation), its command reference holds every flag of every command (it is
generated from the parsers), and its result tables are the files the benchmarks write.
The README stays short and its links resolve.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ncl_plugin.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return out


def test_reference_lists_every_flag_of_every_command(site):
    page = (site / "reference" / "index.html").read_text()
    for name, module in COMMANDS.items():
        parsers = [module.parser()] + [build() for build, _ in getattr(module, "SUBCOMMANDS", {}).values()]
        for parser in parsers:
            for action in parser._actions:
                for flag in action.option_strings:
                    assert flag in page, f"benco {name} {flag} is missing from the command reference"


def test_result_tables_are_the_files_the_benchmarks_write(site):
    """A table included from benchmarks/results/ reads, in the site, as its file does."""
    page = (site / "results" / "index.html").read_text()
    source = (ROOT / "docs" / "results.md").read_text()
    included = re.findall(r'--8<-- "([^":]+)', source)
    assert included, "the results page includes no table from benchmarks/results/"
    for path in included:
        rows = [line for line in (ROOT / path).read_text().splitlines() if line.startswith("| ") and "---" not in line]
        first_cell = rows[1].split("|")[1].strip().strip("*`")
        assert first_cell in page, f"{path}: its row '{first_cell}' is not on the results page"


def test_readme_is_short_and_its_links_resolve():
    text = README.read_text()
    assert len(text.splitlines()) <= 300, "the README holds what a newcomer needs; the rest goes to docs/"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_every_docs_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} | {"reference.md"}
    assert pages == set(re.findall(r":\s*([\w-]+\.md)", nav))

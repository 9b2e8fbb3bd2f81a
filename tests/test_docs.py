"""The README and the documentation site say what the code does.

The site builds with `mkdocs build --strict` (no broken link or anchor, no page left
out of the navigation), its command reference holds every flag of every command (it is
generated from the parsers), its result tables are the files the benchmarks write, and
every figure a page cites is shown as an image of that file.
The README stays short and its links resolve.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ncl_plugin.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


# A figure the benchmarks wrote, named anywhere in a page's source (an image, a link, a path in words).
FIGURE = re.compile(r"benchmarks/[\w./=-]+\.(?:png|jpe?g|svg)")


def build(root: Path, out: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict`, without --quiet: under --quiet, MkDocs 1.6 drops the warnings before strict
    mode counts them, and a broken link built."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = build(ROOT, out)
    assert result.returncode == 0, f"mkdocs build --strict:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return out


def built_page(site: Path, source: Path) -> Path:
    return site / "index.html" if source.stem == "index" else site / source.stem / "index.html"


def test_every_figure_a_page_cites_is_shown_as_an_image_of_that_file(site):
    """The figures live in benchmarks/results/, outside docs/: the pages printed '!curves (path)' where
    they should be. Every figure a page names is now an <img> of the very file, copied into the site."""
    cited = []
    for source in sorted((ROOT / "docs").glob("*.md")):
        figures = sorted(set(FIGURE.findall(source.read_text())))
        if not figures:
            continue
        page = built_page(site, source)
        html = page.read_text()
        shown = {(page.parent / src).resolve() for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', html)}
        for figure in figures:
            assert (ROOT / figure).is_file(), f"{source.name} cites {figure}, which does not exist"
            copy = (site / figure).resolve()
            assert copy in shown, f"{source.name}: {figure} is not shown as an image on its page"
            assert copy.read_bytes() == (ROOT / figure).read_bytes(), f"{figure}: the site's copy differs"
            cited.append(figure)
        assert not re.search(r"<p>!\w", html), f"{source.name}: an image still reads as text ('!name (path)')"
    assert "benchmarks/results/casia-data-efficiency-curve.png" in cited and len(cited) >= 10


def test_a_page_citing_a_figure_that_does_not_exist_fails_the_strict_build(tmp_path):
    for name in ("mkdocs.yml", "CHANGELOG.md"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    with open(tmp_path / "docs" / "speed.md", "a") as page:
        page.write("\n![a curve](../benchmarks/results/no-such-curve.png)\n")
    result = build(tmp_path, tmp_path / "site")
    assert result.returncode != 0
    assert "speed.md links ../benchmarks/results/no-such-curve.png" in result.stdout + result.stderr


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

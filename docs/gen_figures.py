"""Brings the files the pages link under benchmarks/ into the site, at build time.

The benchmarks write their figures and outputs to benchmarks/results/, outside docs/, and a page
links them where a reader of the repository finds them (`![curve](../benchmarks/results/curve.png)`,
as GitHub shows it). MkDocs serves only what lies in docs/: each linked file is copied into the
site at the same path below it, and the page's links are pointed at the copy. A link to a file that
does not exist is reported, and the strict build stops there.

The figures are drawn for a wide screen (panels side by side, at 120 dpi). Each is shown whole: at
its own size, or scaled down to the text column where it is wider (docs/stylesheets/figures.css,
which also widens a page with figures on a wide screen); its width and height are given so the page
keeps its place while it loads. A click opens it at full size, where every label can be read."""

import logging
import re
from pathlib import Path

import mkdocs_gen_files
from PIL import Image, UnidentifiedImageError

ROOT = Path(__file__).resolve().parents[1]
# A Markdown image, then any Markdown link, whose target lies under benchmarks/, seen from a page in docs/.
IMAGE = re.compile(r"!\[([^\]]*)\]\(\.\./(benchmarks/[^)\s]+)\)")
LINK = re.compile(r"\]\(\.\./(benchmarks/[^)\s]+)\)")

log = logging.getLogger("mkdocs.plugins.gen_figures")


def linked(text: str) -> list:
    """The repository paths a page links under benchmarks/, in order, each once."""
    return list(dict.fromkeys(match.group(1) for match in LINK.finditer(text)))


def served(path: str) -> bool:
    """Whether the site can serve the file as it is: a Markdown file would become a page of its own."""
    return (ROOT / path).is_file() and not path.endswith(".md")


def image_size(path: str):
    """A figure's width and height in pixels, from its header (PIL reads PNG and JPEG alike); None for a
    file that is no image."""
    try:
        with Image.open(ROOT / path) as image:
            return image.size
    except (UnidentifiedImageError, OSError):
        return None


def figure(match: re.Match) -> str:
    """An image as a figure, linked to the file at full size (attr_list's syntax)."""
    alt, path = match.groups()
    size = image_size(path)
    attrs = f'{{ width="{size[0]}" height="{size[1]}" }}' if size else ""
    return f'[![{alt}]({path}){attrs}]({path}){{ .figure title="open at full size" }}'


def for_the_site(text: str, copied: set) -> str:
    text = IMAGE.sub(lambda m: figure(m) if m.group(2) in copied else m.group(0), text)
    return LINK.sub(lambda m: f"]({m.group(1)})" if m.group(1) in copied else m.group(0), text)


for page in sorted((ROOT / "docs").glob("*.md")):
    text = page.read_text(encoding="utf-8")
    paths = linked(text)
    for path in paths:
        if not served(path):
            log.warning(f"{page.name} links ../{path}, which is not a file the site can serve")
    copied = {path for path in paths if served(path)}
    for path in sorted(copied):
        with mkdocs_gen_files.open(path, "wb") as copy:
            copy.write((ROOT / path).read_bytes())
    if copied:
        with mkdocs_gen_files.open(page.name, "w") as out:
            out.write(for_the_site(text, copied))

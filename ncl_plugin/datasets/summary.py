"""What ``benco data`` reports of a dataset: a table of counts, and warnings where they differ from the publisher's."""

from collections import Counter
from typing import List, Tuple

import numpy as np
from rich.table import Table

from ncl_plugin.datasets.indexing import Index
from ncl_plugin.datasets.layout import Published

# A median tampered area above this suggests masks read the wrong way round.
INVERTED_MEDIAN = 0.5
# An approximate published count ("about 19,000") is met within this fraction.
APPROXIMATE = 0.05


def area_rows(index: Index) -> List[Tuple[str, str]]:
    """The tampered fraction of each listed image: its median, and the range of the middle 90%."""
    areas = np.array([e.area for e in index.tampered])
    if not len(areas):
        return []
    low, median, high = np.percentile(areas, [5, 50, 95]) * 100
    return [("tampered area, median", f"{median:.1f}%"), ("tampered area, 5-95%", f"{low:.1f}-{high:.1f}%")]


def table(index: Index, published: Published, tampered_only: bool) -> Table:
    grid = Table(title=f"{index.name}: {index.root}", title_justify="left")
    grid.add_column("")
    for column in ("listed", "found", "published"):
        grid.add_column(column, justify="right")

    count = published.text
    grid.add_row("tampered images", str(len(index.tampered)), str(index.found_tampered), count(published.tampered))
    listed = "0 (--tampered_only)" if tampered_only else str(len(index.authentic))
    grid.add_row("authentic images", listed, str(index.found_authentic), count(published.authentic))
    for label, value in area_rows(index):
        grid.add_row(label, value, "", "")
    resized = f"{index.resized_masks} resized" if index.resized_masks else "0"
    grid.add_row("mask size mismatches", resized, str(index.size_mismatches), "")
    applied = index.corrections
    if applied.renames_from is not None:
        grid.add_row("paired by a published rename", str(index.listed(applied.renamed)), str(len(applied.renamed)), "")
    for how in sorted({how for _, how in applied.respelt.values()}):
        matched = [image for image, (_, h) in applied.respelt.items() if h == how]
        grid.add_row(f"paired despite {how}", str(index.listed(matched)), str(len(matched)), "")
    if applied.turned:
        grid.add_row("masks turned to fit", str(index.listed(applied.turned)), str(len(applied.turned)), "")
    if applied.revised or applied.unused:
        found = len(applied.revised) + len(applied.unused)
        grid.add_row("revised masks used", str(index.listed(applied.revised)), str(found), "")
    for reason, number in sorted(Counter(s.reason for s in index.skipped).items()):
        grid.add_row(f"skipped: {reason}", "", str(number), "")
    return grid


def warnings(index: Index, published: Published) -> List[str]:
    """One line for each count that differs from the publisher's, and for masks that look inverted."""
    lines = []
    areas = [e.area for e in index.tampered]
    if areas and np.median(areas) > INVERTED_MEDIAN:
        lines.append(
            f"{index.name}: the masks mark {np.median(areas):.0%} of a tampered image at the median; "
            f"tampering seldom covers most of an image: check that the masks are not inverted"
        )
    for kind, listed, found, expected in (
        ("tampered", len(index.tampered), index.found_tampered, published.tampered),
        ("authentic", len(index.authentic), index.found_authentic, published.authentic),
    ):
        if expected is None:
            continue
        if published.approximate:
            if abs(found - expected) > APPROXIMATE * expected:
                lines.append(
                    f"{index.name}: {found} {kind} image(s) found, the publisher counts about {expected}: "
                    f"are all its parts below the folder?"
                )
            continue
        if found != expected:
            lines.append(
                f"{index.name}: {found} {kind} image(s) found, the publisher counts {expected}: "
                f"is the copy complete, and the version the one published?"
            )
        elif listed != expected:
            lines.append(
                f"{index.name}: {listed} of the {expected} published {kind} images are in the list ({expected - listed} skipped)"
            )
    return lines

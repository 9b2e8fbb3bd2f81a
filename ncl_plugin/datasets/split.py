"""Splitting one list into training, validation and test lists, every source photograph on one side.

Images made from the same photograph show the same scene: a test image whose
scene was trained on measures memory, not localization. CASIA names the
photographs each image was made from (:mod:`.sources`); images linked by a
shared photograph, directly or through others, form one group, and a group
goes to one side. Images whose names say nothing of their sources are a group
each. Groups are dealt in a seeded random order, each to the side furthest
below its share of tampered and of authentic images, so that both kinds are
split in the asked proportions.
"""

import dataclasses
import json
import random
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ncl_plugin.data.checks import NEGATIVE
from ncl_plugin.datasets.sources import sources
from ncl_plugin.errors import UsageError

SIDES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


@dataclasses.dataclass
class Split:
    """Each side's rows ([image, mask or "Negative"]), and the groups they came in."""

    rows: Dict[str, List[list]]
    groups: Dict[str, int]
    ungrouped: int = 0  # images whose names name no source photograph: a group each


def read_list(path: Path, flag: str = "LIST") -> List[list]:
    """A JsonDataset list, checked: [[image, mask or "Negative"], ...]."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file; `benco data NAME ROOT` writes one") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{flag} {path}: invalid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(rows, list) or not rows:
        raise UsageError(f'{flag} {path}: expected a non-empty JsonDataset list ([image, mask or "Negative"] pairs)')
    for number, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 2 and all(isinstance(v, str) for v in row)):
            raise UsageError(
                f'{flag} {path}: entry {number} is {row!r}; expected [image path, mask path or "Negative"]'
            )
    return rows


def _stem(path: str) -> str:
    """A file name without its extensions and without the ``_gt`` of a CASIA mask."""
    name = Path(path).name.split(".")[0]
    return name[: -len("_gt")] if name.endswith("_gt") else name


def row_sources(row: Sequence[str]) -> Tuple[str, ...]:
    """The source photographs an entry names: its image's, and its mask's (a mask named after a corrected name)."""
    image, mask = row
    named = sources(_stem(image)) + (sources(_stem(mask)) if mask != NEGATIVE else ())
    return tuple(dict.fromkeys(named))


def groups_of(rows: List[list]) -> List[List[int]]:
    """Indices of ``rows`` grouped so that no source photograph is in two groups (union-find over sources)."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: Dict[str, int] = {}
    for number, row in enumerate(rows):
        for source in row_sources(row):
            if source in first:
                parent[root(number)] = root(first[source])
            else:
                first[source] = number
    grouped: Dict[int, List[int]] = {}
    for number in range(len(rows)):
        grouped.setdefault(root(number), []).append(number)
    return list(grouped.values())


def parse_fractions(text: str) -> Tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or any(v < 0 for v in values) or abs(sum(values) - 1) > 1e-6 or values[0] == 0:
        raise UsageError(f"--fractions {text}: expected three shares of train,val,test summing to 1, e.g. 0.6,0.2,0.2")
    return values


# Orders of the groups tried; the one whose sides come nearest their shares is kept. A single
# random order can deal a large group last and miss the shares by tens of images.
ORDERS = 200


def split(rows: List[list], fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0) -> Split:
    """Deal the source groups of ``rows`` to the sides, seeded; each side keeps the list's order."""
    groups = groups_of(rows)
    tampered = [row[1] != NEGATIVE for row in rows]
    kinds = [(sum(tampered[i] for i in g), sum(not tampered[i] for i in g)) for g in groups]
    totals = (sum(tampered), len(rows) - sum(tampered))
    rng = random.Random(seed)
    best, best_miss = None, None
    for _ in range(ORDERS):
        order = list(range(len(groups)))
        rng.shuffle(order)
        dealt = _deal(order, kinds, totals, fractions)
        miss = max(
            abs(have - share * total)
            for side, share in zip(SIDES, fractions)
            for have, total in zip(dealt[side][1], totals)
        )
        if best_miss is None or miss < best_miss:
            best, best_miss = dealt, miss
    chosen = {side: sorted(i for g in best[side][0] for i in groups[g]) for side in SIDES}
    ungrouped = sum(not row_sources(row) for row in rows)
    return Split(
        {side: [rows[i] for i in chosen[side]] for side in SIDES}, {s: len(best[s][0]) for s in SIDES}, ungrouped
    )


def _shortfall(kinds, totals, have, share: float) -> float:
    """How far a side is below its share, in the kinds of image a group holds, as a fraction of each kind."""
    return sum(k * (share * t - h) / t for k, t, h in zip(kinds, totals, have) if t)


def _deal(order, kinds, totals, fractions) -> Dict[str, tuple]:
    """{side: (its groups, [tampered, authentic] images)}: each group in ``order`` to the side furthest below
    its share, in the kinds of image the group holds."""
    dealt = {side: ([], [0, 0]) for side in SIDES}
    open_sides = [s for s, share in zip(SIDES, fractions) if share > 0]
    for g in order:
        side = max(open_sides, key=lambda s, g=g: _shortfall(kinds[g], totals, dealt[s][1], fractions[SIDES.index(s)]))
        dealt[side][0].append(g)
        dealt[side][1][0] += kinds[g][0]
        dealt[side][1][1] += kinds[g][1]
    return dealt


def by_names(rows: List[list], folder: Path) -> Tuple[Split, List[str], List[str]]:
    """The split a folder of name lists (``train.txt``, ``val.txt``, ``test.txt``, one image file name a line)
    describes. Returns it, the images of ``rows`` no list names, and the names no row has."""
    sides = {}
    for side in SIDES:
        path = folder / f"{side}.txt"
        if not path.is_file():
            raise UsageError(f"--names {folder}: no {side}.txt; a split's folder holds train.txt, val.txt and test.txt")
        sides[side] = [n.strip() for n in path.read_text().splitlines() if n.strip() and not n.startswith("#")]
    side_of = {name: side for side, names in sides.items() for name in names}
    chosen: Dict[str, List[list]] = {side: [] for side in SIDES}
    unnamed = []
    for row in rows:
        side = side_of.get(Path(row[0]).name)
        if side is None:
            unnamed.append(row[0])
        else:
            chosen[side].append(row)
    present = {Path(row[0]).name for row in rows}
    absent = [name for name in side_of if name not in present]
    counts = {side: len(groups_of(chosen[side])) for side in SIDES}
    return Split(chosen, counts, sum(not row_sources(r) for r in rows)), unnamed, absent


def straddling(result: Split) -> List[str]:
    """Source photographs found on more than one side (none, for a split this module made)."""
    seen: Dict[str, set] = {}
    for side, rows in result.rows.items():
        for row in rows:
            for source in row_sources(row):
                seen.setdefault(source, set()).add(side)
    return sorted(s for s, sides in seen.items() if len(sides) > 1)


def write(result: Split, out: Path, source: Optional[Path] = None) -> List[Path]:
    """``out``/{side}.json (JsonDataset lists) and {side}.txt (image file names); an existing file with other
    contents is an error, never overwritten."""
    files = {}
    for side in SIDES:
        rows = result.rows[side]
        files[out / f"{side}.json"] = "[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n" if rows else "[]\n"
        files[out / f"{side}.txt"] = "".join(Path(r[0]).name + "\n" for r in rows)
    clashing = [p for p, text in files.items() if p.exists() and p.read_text() != text]
    if clashing:
        raise UsageError(
            f"--out {out} holds another split ({clashing[0].name} differs); give another --out, or delete those files"
        )
    out.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
    return list(files)


def table(result: Split, title: str):
    """Each side's images, tampered and authentic, and source groups, as a rich table."""
    from rich.table import Table

    grid = Table(title=title, title_justify="left")
    for column in ("", "images", "tampered", "authentic", "source groups"):
        grid.add_column(column, justify="right" if column else "left")
    for side in SIDES:
        rows = result.rows[side]
        tampered = sum(r[1] != NEGATIVE for r in rows)
        grid.add_row(side, str(len(rows)), str(tampered), str(len(rows) - tampered), str(result.groups[side]))
    return grid

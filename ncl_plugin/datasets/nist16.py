"""NIST Nimble 2016 (NC2016_Test0613), NIST's Media Forensics Challenge data.

Distributed by NIST as ``NC2016_Test0613/`` with ``probe/`` (the images),
``mask/`` and ``reference/manipulation/NC2016-manipulation-ref.csv``, a
``|``-separated table that alone tells which probe is manipulated
(``IsTarget``) and which file is its mask (``ProbeMaskFileName``): masks are
not named after their probes. NIST's masks are inverted: black marks the
manipulated pixels. The list points to white-on-black PNGs written from them.
Probes the table lists as non-targets are authentic.
"""

import csv
from pathlib import Path
from typing import Dict, List

from ncl_plugin.datasets.layout import BLACK, Dataset, Found, Options, Published, Sample
from ncl_plugin.errors import UsageError

REFERENCE = "*manipulation-ref.csv"
COLUMNS = ("ProbeFileName", "ProbeMaskFileName", "IsTarget")


def reference_table(root: Path) -> Path:
    tables = sorted(p for p in root.rglob(REFERENCE) if not p.name.startswith("."))
    if not tables:
        raise UsageError(
            f"{root}: no {REFERENCE} below it; NIST16 is indexed from its reference table "
            f"(NC2016_Test0613/reference/manipulation/NC2016-manipulation-ref.csv)"
        )
    if len(tables) > 1:
        raise UsageError(
            f"{root}: {len(tables)} manipulation reference tables ({tables[0]}, {tables[1]}); give the folder of one"
        )
    return tables[0]


def _rows(table: Path) -> List[Dict[str, str]]:
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="|"))
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise UsageError(f"{table}: not a NIST reference table (no {', '.join(missing or COLUMNS)} column)")
    return rows


def find(root: Path, options: Options) -> Found:
    table = reference_table(root)
    base = table.parents[2]  # <base>/reference/manipulation/<table>: paths in the table are relative to <base>
    found = Found()
    targets: Dict[Path, set] = {}
    authentic: Dict[Path, None] = {}
    for row in _rows(table):
        probe = base / row["ProbeFileName"]
        mask = row["ProbeMaskFileName"].strip()
        if row["IsTarget"].strip().upper() == "Y":
            targets.setdefault(probe, set()).add(mask)
        else:
            authentic[probe] = None
    found.tampered_seen = len(targets)
    for probe in sorted(targets):
        masks = targets[probe]
        if probe in authentic:
            found.skip(probe, "contradictory reference", f"{table.name} lists it both as manipulated and as not")
        elif not probe.is_file():
            found.skip(probe, "file not found", f"listed in {table.name}")
        elif len(masks) > 1:
            found.skip(probe, "ambiguous name", f"{table.name} gives it {len(masks)} different masks")
        else:
            (name,) = masks
            if not name:
                found.skip(probe, "no mask", f"manipulated, but {table.name} gives no mask")
            elif not (base / name).is_file():
                found.skip(probe, "no mask", f"its mask {base / name} (from {table.name}) not found")
            else:
                found.samples.append(Sample(probe, True, base / name, BLACK))
    for probe in sorted(set(authentic) - set(targets)):
        if probe.is_file():
            found.samples.append(Sample(probe, tampered=False))
        else:
            found.skip(probe, "file not found", f"listed in {table.name}")
    return found


NIST16 = Dataset(
    name="nist16",
    title="NIST16",
    folders=("NIST16", "NC2016_Test0613", "NC2016", "nist16"),
    published=Published(tampered=564, authentic=None),
    layout="probe/, mask/ (black = manipulated), reference/manipulation/NC2016-manipulation-ref.csv",
    find=find,
)

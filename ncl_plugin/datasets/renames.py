"""The renames CASIA's ground-truth maintainers publish: image names the publisher got wrong, and their corrections.

CASIA's images were named by their publisher, and dozens of names are wrong
(spliced images named copy-move, the wrong source photograph). The
ground-truth repositories name each mask after the *corrected* image name,
and publish the renames in a spreadsheet that ships with the masks:
``FileNameCorrection.xlsx`` inside the CASIA 1.0 ground-truth archive (33
images), ``Notes/fileNamesCorrection.xlsx`` in the CASIA 2.0 one (141). A
copy of the images as first distributed still has the old names, and its
renamed images find no mask by name. Only these published renames are
applied; nothing is paired by a similar name.

The corrected names in CASIA 2.0's spreadsheet are formulas
(``=CONCATENATE(LEFT(B3,3),"D",RIGHT(B3,36))``): openpyxl reads the values
the spreadsheet program saved with them, never the formula text.
"""

import dataclasses
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from ncl_plugin.datasets.layout import IMAGE_SUFFIXES
from ncl_plugin.errors import UsageError

SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm")
# CASIA 1.0: "Original file name | Corrected file name"; CASIA 2.0: "Original file name | Correct file name"
_ORIGINAL = re.compile(r"^\s*original\s+file\s*name\s*$", re.IGNORECASE)
_CORRECTED = re.compile(r"^\s*correct(ed)?\s+file\s*name\s*$", re.IGNORECASE)
_FILE_NAME = re.compile(r"^[^\s/\\]+$")


@dataclasses.dataclass
class Renames:
    """One spreadsheet's renames of one dataset's images, by image name without its extension."""

    spreadsheet: Path
    corrected: Dict[str, str]  # original stem -> corrected stem
    unreadable: List[str] = dataclasses.field(default_factory=list)  # cells with no saved value, as "C12"


def _stem(name: str) -> str:
    path = Path(name.strip())
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else path.name


def is_spreadsheet(path: Path) -> bool:
    """A file that may hold published renames: a spreadsheet named for corrections, as both repositories name theirs."""
    return path.suffix.lower() in SPREADSHEET_SUFFIXES and "correction" in path.name.lower()


def _header(rows) -> Optional[tuple]:
    """(row index, original column, corrected column) of the first row that names both columns."""
    for number, row in enumerate(rows):
        cells = [c if isinstance(c, str) else "" for c in row]
        original = [i for i, c in enumerate(cells) if _ORIGINAL.match(c)]
        corrected = [i for i, c in enumerate(cells) if _CORRECTED.match(c)]
        if original and corrected:
            return number, original[0], corrected[0]
    return None


def read(spreadsheet: Path, prefix: str) -> Renames:
    """The renames of ``spreadsheet`` whose names both start with ``prefix`` (``Sp_`` for CASIA 1.0, ``Tp_`` for 2.0).

    Every sheet with an "Original file name" and a "Correct(ed) file name"
    column is read; notes and blank rows between the renames are passed over.
    """
    import openpyxl  # here: only a copy with a spreadsheet needs it loaded

    try:
        book = openpyxl.load_workbook(spreadsheet, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises zipfile, KeyError and its own errors for a damaged file
        raise UsageError(f"{spreadsheet}: not a readable .xlsx spreadsheet ({type(err).__name__}: {err})") from err
    renames = Renames(spreadsheet, {})
    try:
        for sheet in book.worksheets:
            rows = list(sheet.iter_rows(values_only=True))
            header = _header(rows)
            if header is None:
                continue
            start, original, corrected = header
            for number, row in enumerate(rows[start + 1 :], start=start + 2):
                _take(renames, row, original, corrected, number, prefix)
    finally:
        book.close()
    return renames


def _take(renames: Renames, row, original: int, corrected: int, number: int, prefix: str) -> None:
    old = row[original] if original < len(row) else None
    new = row[corrected] if corrected < len(row) else None
    if not (isinstance(old, str) and _FILE_NAME.match(old.strip()) and old.strip().startswith(prefix)):
        return  # a note, a blank row, or another dataset's name
    if new is None:
        # a formula saved without its value (written by a program that does not compute them)
        renames.unreadable.append(f"{chr(ord('A') + corrected)}{number}")
        return
    if isinstance(new, str) and _FILE_NAME.match(new.strip()) and new.strip().startswith(prefix):
        if _stem(new) != _stem(old):
            renames.corrected[_stem(old)] = _stem(new)


def find_spreadsheets(files: Iterable[Path]) -> List[Path]:
    return sorted(p for p in files if is_spreadsheet(p))


def load(candidates: List[Path], given: Optional[Path], prefix: str, title: str) -> Optional[Renames]:
    """The renames to apply: from ``given`` (``--renames FILE``), else from the one spreadsheet found with the masks.

    Several different spreadsheets found is an error: which one is this copy's cannot be told.
    """
    if given is not None:
        if not given.is_file():
            raise UsageError(f"--renames {given}: no such file")
        renames = read(given, prefix)
        if not renames.corrected and not renames.unreadable:
            raise UsageError(
                f"--renames {given}: no rename of a {title} image ({prefix}*) in it; "
                f"is it the spreadsheet of the other CASIA version?"
            )
        return renames
    found = [read(path, prefix) for path in candidates]
    found = [r for r in found if r.corrected or r.unreadable]
    distinct = {tuple(sorted(r.corrected.items())) for r in found}
    if len(distinct) > 1:
        names = ", ".join(str(r.spreadsheet) for r in found)
        raise UsageError(
            f"{title}: {len(found)} different rename spreadsheets ({names}); choose one with --renames FILE.xlsx, "
            f"or --renames none"
        )
    return found[0] if found else None

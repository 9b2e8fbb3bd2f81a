"""The source photographs a CASIA image names, and the shape of its name without them.

CASIA names every image after the photographs it was made from: an authentic
``Au_ani_0001`` is the photograph ``ani0001``; a tampered
``Sp_D_NRN_A_ani0001_arc0059_0404`` (v1.0) or
``Tp_D_CND_M_N_ani00018_sec00096_00138`` (v2.0) was made from ``ani0001`` and
``arc0059`` (the serial ``0404`` numbers the tampered image). Images that share
a source photograph show the same scene: a split that puts them on two sides
lets a test image's scene into training (:mod:`.split`). The rest of a
tampered name (kind, editing flags, serial) is its *frame*: two names of one
frame with the same sources are one image named twice (:mod:`.casia`).
"""

import re
from typing import Optional, Tuple

# A source id inside a tampered name: three letters (the scene category) and its number.
_SOURCE = re.compile(r"^[a-z]{3}\d{4,5}$")
_AUTHENTIC = re.compile(r"^Au_([a-z]{3})_(\d{4,5})$")
_TAMPERED = re.compile(r"^(Sp|Tp)_[DS]_")


def sources(stem: str) -> Tuple[str, ...]:
    """The source photographs of a CASIA image name (without its extension), in the name's order;
    () for a name that is not CASIA's."""
    authentic = _AUTHENTIC.match(stem)
    if authentic:
        return (authentic.group(1) + authentic.group(2),)
    if not _TAMPERED.match(stem):
        return ()
    return tuple(token for token in stem.split("_") if _SOURCE.match(token))


def frame(stem: str) -> Optional[str]:
    """A tampered name with its two source ids blanked out (``Sp_D_NRN_A_*_*_0404``); None for another name."""
    if not _TAMPERED.match(stem) or len(sources(stem)) != 2:
        return None
    return "_".join("*" if _SOURCE.match(token) else token for token in stem.split("_"))


def respelt(mine: Tuple[str, ...], theirs: Tuple[str, ...]) -> Optional[str]:
    """How two pairs of source ids of one frame name the same two photographs, or None if they do not:
    "source ids swapped" (the other order) or "source id misspelt" (one id the same, the other with the
    same number and its letters transposed, as ``ant0063`` for ``nat0063``)."""
    if mine == theirs:
        return None
    if mine == theirs[::-1]:
        return "source ids swapped"
    for a, b in ((mine, theirs), (mine, theirs[::-1])):
        same = [x == y for x, y in zip(a, b)]
        if sum(same) == 1:
            x, y = next((x, y) for x, y, s in zip(a, b, same) if not s)
            if x[3:] == y[3:] and sorted(x[:3]) == sorted(y[:3]):
                return "source id misspelt"
    return None

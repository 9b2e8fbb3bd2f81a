"""`benco data split`: training, validation and test lists with every source photograph on one side."""
import json
from pathlib import Path

import pytest

from helpers import error_of
from ncl_plugin.datasets.sources import sources
from ncl_plugin.datasets.split import SIDES, groups_of, split

PACKAGED = Path(__file__).resolve().parents[1] / "configs" / "splits" / "casiav1"


def casia_list(path, groups=60, seed=0):
    """A CASIA-named list (files need not exist): groups of images sharing source photographs, chained
    through tampered images made from two of them, and some authentic images of those photographs."""
    import random

    rng = random.Random(seed)
    rows, serial = [], 0
    for g in range(groups):
        category = ("ani", "arc", "cha", "nat", "sec")[g % 5]
        photos = [f"{category}{g * 10 + k:04d}" for k in range(rng.randint(1, 4))]
        for photo in photos:
            if rng.random() < 0.7:
                rows.append([f"/data/Au/Au_{photo[:3]}_{photo[3:]}.jpg", "Negative"])
        for a, b in zip(photos, photos[1:] + photos[:1]):
            serial += 1
            name = f"Sp_D_NRN_A_{a}_{b}_{serial:04d}"
            rows.append([f"/data/Sp/{name}.jpg", f"/gt/{name}_gt.png"])
    Path(path).write_text(json.dumps(rows))
    return rows


def sides_of(folder):
    return {side: json.loads((Path(folder) / f"{side}.json").read_text()) for side in SIDES}


def photos(rows):
    return {s for image, mask in rows for s in sources(Path(image).stem)
            + (sources(Path(mask).stem[:-3]) if mask != "Negative" else ())}


def test_no_source_photograph_is_on_two_sides_and_shares_are_kept(tmp_path, capsys):
    rows = casia_list(tmp_path / "all.json")
    code, err = error_of(["data", "split", tmp_path / "all.json", "--out", tmp_path / "s"], capsys)
    assert code == 0, err
    sides = sides_of(tmp_path / "s")
    assert sorted(map(tuple, sum(sides.values(), []))) == sorted(map(tuple, rows))  # every row once
    for a in SIDES:
        for b in SIDES:
            if a < b:
                assert not photos(sides[a]) & photos(sides[b]), (a, b)
    tampered = sum(r[1] != "Negative" for r in rows)
    for side, share in zip(SIDES, (0.6, 0.2, 0.2)):
        have = sum(r[1] != "Negative" for r in sides[side])
        assert abs(have - share * tampered) <= 0.05 * tampered, (side, have)
    names = (tmp_path / "s" / "test.txt").read_text().split()
    assert names == [Path(r[0]).name for r in sides["test"]]


def test_the_seed_decides_and_repeats(tmp_path):
    rows = casia_list(tmp_path / "all.json")
    once, again, other = split(rows, seed=0), split(rows, seed=0), split(rows, seed=1)
    assert once.rows == again.rows
    assert once.rows["test"] != other.rows["test"]


def test_names_without_sources_are_split_by_file(tmp_path):
    rows = [[f"/d/Tp/{n}.png", f"/d/Gt/{n}.png"] for n in range(50)]
    assert len(groups_of(rows)) == 50
    result = split(rows, (0.5, 0.25, 0.25))
    assert sorted(len(result.rows[s]) for s in SIDES) == [12, 13, 25] and len(result.rows["train"]) == 25
    assert result.ungrouped == 50


def test_a_split_is_taken_again_from_its_names(tmp_path, capsys):
    casia_list(tmp_path / "all.json")
    assert error_of(["data", "split", tmp_path / "all.json", "--out", tmp_path / "s", "--seed", "3"], capsys)[0] == 0
    code, err = error_of(["data", "split", tmp_path / "all.json", "--out", tmp_path / "again",
                          "--names", tmp_path / "s"], capsys)
    assert code == 0, err
    assert sides_of(tmp_path / "again") == sides_of(tmp_path / "s")


def test_another_split_in_the_folder_is_never_overwritten(tmp_path, capsys):
    casia_list(tmp_path / "all.json")
    assert error_of(["data", "split", tmp_path / "all.json", "--out", tmp_path / "s"], capsys)[0] == 0
    before = (tmp_path / "s" / "train.json").read_text()
    code, err = error_of(["data", "split", tmp_path / "all.json", "--out", tmp_path / "s", "--seed", "1"], capsys)
    assert code == 2 and len(err) == 1 and "holds another split" in err[0]
    assert (tmp_path / "s" / "train.json").read_text() == before
    # the same split again changes nothing and is no error
    assert error_of(["data", "split", tmp_path / "all.json", "--out", tmp_path / "s"], capsys)[0] == 0


@pytest.mark.parametrize("argv, message", [
    (["--fractions", "0.5,0.5"], "--fractions 0.5,0.5: expected three shares"),
    (["--names", "nosuch"], "--names nosuch: no such folder, and no packaged split of that name (casiav1)"),
])
def test_split_mistakes_are_one_line(argv, message, tmp_path, capsys):
    casia_list(tmp_path / "all.json")
    code, err = error_of(["data", "split", tmp_path / "all.json", "--out", tmp_path / "s", *argv], capsys)
    assert code == 2 and len(err) == 1 and message in err[0]
    code, err = error_of(["data", "split", tmp_path / "missing.json"], capsys)
    assert code == 2 and "missing.json: no such file" in err[0]


def test_the_packaged_casia1_split_keeps_every_source_photograph_on_one_side():
    named = {side: [n for n in (PACKAGED / f"{side}.txt").read_text().splitlines() if n and not n.startswith("#")]
             for side in SIDES}
    assert [len(named[s]) for s in SIDES] == [827, 275, 275]
    seen = {}
    for side, names in named.items():
        for name in names:
            for photo in sources(Path(name).stem):
                seen.setdefault(photo, set()).add(side)
    assert seen and all(len(sides) == 1 for sides in seen.values())
    assert sum(n.startswith("Sp_") for n in named["test"]) == 147

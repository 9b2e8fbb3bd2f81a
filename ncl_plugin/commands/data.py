"""``benco data``: a public dataset's folder as a checked IMDL-BenCo list, or a whole protocol's lists."""

import argparse
from pathlib import Path
from typing import List

from ncl_plugin.config import Parser
from ncl_plugin.datasets import DATASETS
from ncl_plugin.datasets.build import build
from ncl_plugin.datasets.indexing import ASPECT_TOLERANCE, FIXES
from ncl_plugin.datasets.layout import GREEN, RED, Options
from ncl_plugin.datasets.protocols import MEMBERS, PROTOCOLS, TEST_SETS, write_protocol
from ncl_plugin.errors import UsageError

NAME = "data"
SUMMARY = "index a public dataset (CASIA, Columbia, Coverage, NIST16, IMD2020, DEFACTO, CocoGlide) or a protocol"
TAKES_CONFIG = False

USAGE = """benco data NAME ROOT [--out FILE.json] [--fix resize] [--tampered_only] [--masks DIR]
                        [--renames FILE.xlsx|none] [--corrections DIR] [--subset LIST.txt]
       benco data protocol {casiav2,cat} --root DIR [--out DIR] [--fix resize] [--corrections DIR]
       benco data split LIST.json [--out DIR] [--fractions 0.6,0.2,0.2] [--seed N] [--names DIR|casiav1]"""

NO_RENAMES = "none"


def _renames(value: str):
    return NO_RENAMES if value.lower() == NO_RENAMES else Path(value)


def _rename_options(value) -> dict:
    """Options' rename fields for a --renames value: a file, none, or (None) the spreadsheet found with the masks."""
    if value == NO_RENAMES:
        return {"apply_renames": False}
    return {"renames": value}


def _checks(p: Parser) -> None:
    p.add_argument(
        "--fix",
        choices=FIXES,
        default=None,
        help=f"resize: a mask of another size than its image is rescaled to it (nearest neighbour) when its aspect "
        f"ratio is the image's within {ASPECT_TOLERANCE * 100:g}%%; other mismatches (transposed, cropped) stay skipped. "
        f"Default: every mismatch is skipped and listed",
    )
    p.add_argument(
        "--columbia_spliced",
        choices=(GREEN, RED),
        default=GREEN,
        help="the colour of the spliced region in Columbia's edge masks (default green)",
    )
    p.add_argument(
        "--corrections",
        type=Path,
        metavar="DIR",
        default=None,
        help="a folder of revised masks as the community's correction repository (SunnyHaze/IML-Dataset-Corrections) "
        "publishes them (CASIAv2, Coverage, IMD2020): each replaces the dataset's own mask of the same name; "
        "<list>.corrections.tsv names each one",
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def parser() -> Parser:
    p = Parser(
        prog="benco data",
        usage=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="layouts (the README's \"Preparing the public datasets\" tells each one's traps):\n"
        + "".join(f"  {name:9} {d.layout}\n" for name, d in DATASETS.items()),
        description="Index a public IML dataset from the way its publisher distributes it, check every file,\n"
        'and write an IMDL-BenCo JsonDataset list ([image, mask or "Negative"], absolute paths).\n'
        "Masks that need converting (inverted, colour-coded, rescaled) are written beside the list,\n"
        "in <list>_masks/; nothing in ROOT is changed. `benco data protocol --help`: a whole protocol;\n"
        "`benco data split --help`: a list split into training, validation and test lists by source photograph.",
    )
    p.add_argument("name", choices=list(DATASETS), metavar="NAME", help="one of " + ", ".join(DATASETS))
    p.add_argument("root", type=Path, metavar="ROOT", help="the dataset's folder, as unpacked")
    p.add_argument(
        "--out", type=Path, metavar="FILE.json", default=None, help="the list to write (default: ./NAME.json)"
    )
    p.add_argument(
        "--tampered_only", action="store_true", help="leave authentic images out (IMDL-BenCo's pixel-level protocols)"
    )
    p.add_argument(
        "--masks",
        type=Path,
        metavar="DIR",
        default=None,
        help="CASIA: the ground-truth folder, when kept apart from ROOT",
    )
    p.add_argument(
        "--renames",
        type=_renames,
        metavar="FILE.xlsx|none",
        default=None,
        help="CASIA: the ground truth's rename spreadsheet (FileNameCorrection.xlsx, fileNamesCorrection.xlsx); "
        "images still named as first published are paired with the mask of their corrected name. Default: the "
        "spreadsheet found below ROOT or --masks, if any; none: no renames",
    )
    p.add_argument(
        "--subset",
        type=Path,
        metavar="LIST.txt",
        default=None,
        help="DEFACTO: keep only the images a list names, in MVSS-Net's 'img_path mask_path label' format "
        "(DEFACTO12k-test.txt: the field's DEFACTO-12k test set)",
    )
    _checks(p)
    return p


def protocol_parser() -> Parser:
    p = Parser(
        prog="benco data protocol",
        description="Write every list an IMDL-BenCo protocol reads (training list, test_datasets.json for "
        + ", ".join(DATASETS[n].title for n in TEST_SETS)
        + ") from the datasets' folders, then run it with "
        "`benco train --config protocols/NAME --data_path OUT/... --test_data_path OUT/test_datasets.json`.",
    )
    p.add_argument("protocol", choices=PROTOCOLS)
    p.add_argument("--root", type=Path, metavar="DIR", required=True, help="the folder holding the datasets' folders")
    p.add_argument(
        "--out", type=Path, metavar="DIR", default=None, help="folder for the lists (default: ./benco_data/PROTOCOL)"
    )
    for name in MEMBERS:
        dataset = DATASETS[name]
        p.add_argument(
            f"--{name}",
            type=Path,
            metavar="DIR",
            default=None,
            help=f"{dataset.title}'s folder, if not a usual name below --root",
        )
    for name in ("casiav1", "casiav2"):
        p.add_argument(
            f"--{name}_masks",
            type=Path,
            metavar="DIR",
            default=None,
            help=f"{DATASETS[name].title}'s ground truth, when kept apart (default: a folder in --root named like "
            f"'CASIA {name[-1]}.0 groundtruth', if any, else the masks inside its folder)",
        )
        p.add_argument(
            f"--{name}_renames",
            type=_renames,
            metavar="FILE.xlsx|none",
            default=None,
            help=f"{DATASETS[name].title}'s rename spreadsheet (default: the one found with its masks, if any)",
        )
    p.add_argument(
        "--fantastic_reality",
        type=Path,
        metavar="FILE",
        default=None,
        help="protocol cat: FantasticReality's JsonDataset list",
    )
    p.add_argument(
        "--tampcoco",
        type=Path,
        metavar="DIR",
        default=None,
        help="protocol cat: the folder of tampCOCO's four *_COCO_list.json",
    )
    _checks(p)
    return p


def split_parser() -> Parser:
    from ncl_plugin.datasets.split import DEFAULT_FRACTIONS

    p = Parser(
        prog="benco data split",
        description="Split a JsonDataset list (as `benco data` writes it) into train, val and test lists, every "
        "image made from the same source photograph on one side (CASIA names its sources: Au_ani_0001 is "
        "ani0001, Sp_D_NRN_A_ani0001_arc0059_0404 was made from ani0001 and arc0059); an image whose name names "
        "no source is a group of its own. Writes OUT/{train,val,test}.json and .txt (the image names).",
    )
    p.add_argument("list", type=Path, metavar="LIST.json", help="the list to split (authentic images included or not)")
    p.add_argument("--out", type=Path, metavar="DIR", default=None, help="folder for the lists (default: LIST_split/)")
    p.add_argument(
        "--fractions",
        default=",".join(f"{f:g}" for f in DEFAULT_FRACTIONS),
        help="shares of train,val,test, of the tampered and of the authentic images alike (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="the random order the source groups are dealt in (default 0)")
    p.add_argument(
        "--names",
        default=None,
        metavar="DIR|NAME",
        help="take a split made before instead of making one: a folder of train.txt, val.txt and test.txt (image "
        "file names), or a packaged split's name (" + ", ".join(_packaged_splits()) + ")",
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p


def _splits_folder() -> Path:
    """Where the packaged splits are: configs/splits/<name>/{train,val,test}.txt."""
    from importlib import resources

    from ncl_plugin.config import PACKAGED_CONFIGS

    return Path(str(resources.files(PACKAGED_CONFIGS))) / "splits"


def _packaged_splits() -> List[str]:
    folder = _splits_folder()
    return sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []


def _names_folder(value: str) -> Path:
    if Path(value).is_dir():
        return Path(value)
    if value in _packaged_splits():
        return _splits_folder() / value
    raise UsageError(
        f"--names {value}: no such folder, and no packaged split of that name ({', '.join(_packaged_splits())})"
    )


def _split(args) -> int:
    from ncl_plugin.datasets import split
    from ncl_plugin.terminal import say, show, warn

    rows = split.read_list(args.list)
    out = args.out or args.list.with_name(args.list.stem + "_split")
    if args.names is None:
        result = split.split(rows, split.parse_fractions(args.fractions), args.seed)
        how = f"seed {args.seed}, fractions {args.fractions}"
    else:
        folder = _names_folder(args.names)
        result, unnamed, absent = split.by_names(rows, folder)
        how = f"as named in {folder}"
        if unnamed:
            warn(
                f"{len(unnamed)} image(s) of {args.list} are in none of {folder}'s lists and are left out "
                f"(e.g. {Path(unnamed[0]).name})"
            )
        if absent:
            warn(
                f"{len(absent)} image(s) the split names are not in {args.list} (e.g. {absent[0]}): "
                "your copy lacks them, or named them otherwise"
            )
        shared = split.straddling(result)
        if shared:
            warn(f"{len(shared)} source photograph(s) are on two sides of this split (e.g. {shared[0]})")
    files = split.write(result, out)
    show(split.table(result, f"{args.list} split {how}"))
    say(f"Wrote {out}/{{train,val,test}}.json and .txt ({len(files)} files)")
    return 0


def main(argv: List[str]) -> int:
    if argv[:1] and argv[0] in SUBCOMMANDS:
        make_parser, run = SUBCOMMANDS[argv[0]]
        return run(make_parser().parse_args(argv[1:]))
    args = parser().parse_args(argv)
    if args.subset is not None and args.name != "defacto":
        raise UsageError(f"--subset: a DEFACTO list (DEFACTO12k-test.txt); {args.name} takes none")
    options = Options(
        subset=args.subset,
        masks=args.masks,
        columbia_spliced=args.columbia_spliced,
        corrections=args.corrections,
        **_rename_options(args.renames),
    )
    out = args.out or Path(f"{args.name}.json")
    build(DATASETS[args.name], args.root, out, options, args.fix, args.tampered_only)
    return 0


def _protocol(args) -> int:
    out = args.out or Path("benco_data") / args.protocol
    written = write_protocol(
        args.protocol,
        args.root,
        out,
        {name: getattr(args, name) for name in MEMBERS},
        {name: getattr(args, f"{name}_masks", None) for name in DATASETS},
        args.columbia_spliced,
        args.fix,
        args.fantastic_reality,
        args.tampcoco,
        corrections=args.corrections,
        renames={name: _rename_options(getattr(args, f"{name}_renames", None)) for name in DATASETS},
    )
    print(
        f"benco train --config protocols/{args.protocol} --data_path {written['train']} "
        f"--test_data_path {written['test']}"
    )
    return 0


# `benco data protocol ...` and `benco data split ...`: words before NAME, with parsers of their own.
SUBCOMMANDS = {"protocol": (protocol_parser, _protocol), "split": (split_parser, _split)}

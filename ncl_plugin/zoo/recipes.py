"""IMDL-BenCo's model zoo from random initialisation, without a download: one recipe per registry name.

A :class:`Recipe` says whether a model trains here, and if it does, what it
needs that IMDL-BenCo's own scripts leave to the user: the weight files its
constructor insists on (written here holding nothing, so that it starts from
random initialisation), the flags that must follow the image size, the edge
masks its loss reads, the sizes it accepts. ``benco bench`` turns a recipe into
``benco train`` flags; ``benco bench --list`` prints them all; :func:`adapt`
fixes, on the built model, what a documented behaviour blocks (Mesorch's fixed
512x512 output). Nothing in IMDL-BenCo's files is edited.

Costs are rough ratios of seconds per training step to the quickstart's NCL
network (128x128, batch 2, 2-core CPU). They feed only the time-left estimate
and ``--list``; the table of ``benco bench`` measures every run's own seconds
per step.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

TRAINS, BROKEN, CANNOT = "trains", "broken", "cannot"


@dataclass(frozen=True)
class Recipe:
    status: str = TRAINS
    note: str = ""  # one line: what the recipe handles, or why the model does not train here
    default: bool = False  # in `benco bench`'s default --models
    weights: Tuple[str, ...] = ()  # flags that take a weight file; given one that loads nothing
    sized: Callable[[int], Dict[str, str]] = field(default=lambda size: {})  # flags that follow the image size
    flags: Tuple[Tuple[str, str], ...] = ()  # fixed flags
    multiple: int = 1  # the image size must be a multiple of this
    smallest: int = 64  # and at least this
    sizes: Tuple[int, ...] = ()  # or one of these
    edge_mask_width: Optional[int] = None  # the model's loss reads IMDL-BenCo's edge mask of this width
    # (7, as IMDL-BenCo's own scripts give every model that takes one)
    cost: float = 1.0
    private_torch_home: bool = False  # it downloads into torch hub's cache: give it one of its own, pre-seeded
    files: Callable[[Path], Dict[str, str]] = field(default=lambda folder: {})  # flags whose files are made here
    # An absolute learning rate the model trains at, instead of the budget's, where the budget's
    # was measured not to train it (unless the user gives --lr or --blr for every run).
    lr: Optional[float] = None

    def size_error(self, size: int) -> Optional[str]:
        """None if the model runs at ``size``; else what it needs, with the legal sizes nearest to it."""
        if self.sizes:
            return None if size in self.sizes else f"takes only the sizes {', '.join(map(str, self.sizes))}"
        if size % self.multiple == 0 and size >= self.smallest:
            return None
        below = size - size % self.multiple
        nearest = [s for s in (below, below + self.multiple) if s >= self.smallest] or [self.smallest]
        return (
            f"needs a size that is a multiple of {self.multiple}, at least {self.smallest} "
            f"(nearest: {' or '.join(map(str, nearest))})"
        )


def _segformer(prior: str) -> Recipe:
    return Recipe(
        note=f"SegFormer{prior}; --pretrain_pth_path given an empty weight file (a missing one is an error); "
        "--lr 1e-4, IMDL-BenCo's own: at 1e-3 it does not even memorise one batch",
        lr=1e-4,
        default=prior in ("", " behind SRM filters"),
        weights=("pretrain_pth_path",),
        multiple=32,
        cost=1.5,
    )


# fmt: off
RECIPES: Dict[str, Recipe] = {
    "ncl": Recipe(note="NCL (this plugin): DeepLabV3+ and its contrastive terms; the network of --config", default=True),
    "deeplabv3plus": Recipe(note="NCL's network without its contrastive terms, plain deep-supervised BCE (--contour_weight 0)",
                            default=True, flags=(("contour_weight", "0"),)),
    "segformer": _segformer(""),
    "srm_segformer": _segformer(" behind SRM filters"),
    "bayar_segformer": _segformer(" behind a Bayar constrained convolution"),
    "dct_segformer": _segformer(" behind a DCT"),
    "fft_segformer": _segformer(" behind an FFT"),
    "sobel_segformer": _segformer(" behind Sobel filters"),
    "IML_ViT": Recipe(note="no MAE weights; --input_size follows the image size; edge masks of width 7; "
                           "--lr 1e-4, IMDL-BenCo's own: it memorises one batch at 1e-3 too, but slower "
                           "(benchmarks/probes/memorise.py)",
                      sized=lambda s: {"input_size": str(s)}, multiple=8,
                      edge_mask_width=7, cost=8.0, lr=1e-4),
    "PSCC_Net": Recipe(note="--pretrain_path '' (None crashes, an empty weight file prints 445 lines); --input_size follows the image size",
                       sized=lambda s: {"input_size": str(s)}, flags=(("pretrain_path", ""),), multiple=8, cost=12.0),
    "Trufor": Recipe(note="phase 2 with a random Noiseprint++, an empty mit_b2 file and IMDL-BenCo's trufor.yaml; "
                          "phase 2 freezes Noiseprint++ and the detection head, so from scratch they stay random: "
                          "only the dual encoder and the anomaly decoder train",
                     weights=("mit_b2_pretrain_weights",), files=lambda folder: _trufor_files(folder),
                     flags=(("phase", "2"),), multiple=8, cost=8.0),
    "MVSSNet": Recipe(note="loads ImageNet's resnet50 from torch hub whatever pretrained_base says: given a "
                           "cache of its own holding an empty resnet50 file (yours is not touched); edge masks of width 7",
                      multiple=16, edge_mask_width=7, cost=14.0,
                      private_torch_home=True),
    "Mesorch": Recipe(note="its fixed 512x512 output is resized to the image size on the built model; "
                           "--conv_pretrain false (IMDL-BenCo's parser reads 'False' as true and downloads ConvNeXt)",
                      flags=(("conv_pretrain", "false"),), multiple=32, cost=9.0),
    "SparseViT": Recipe(note="--img_size follows the image size, and --s_blocks3/4 scale with it so that its sparse "
                             "attention keeps the grid it has at 512 (its blocks must divide the feature maps)",
                        sized=lambda s: {"img_size": str(s), "s_blocks3": ",".join(str(b * 512 // s) for b in (8, 4, 2, 1)),
                                         "s_blocks4": ",".join(str(b * 512 // s) for b in (2, 1))},
                        sizes=(128, 256, 512), cost=3.0),
    "MSCDI_Net": Recipe(note="--backbone_weights_path an empty weight file (an empty path is an assert); --glca 0 "
                             "(its attention windows need a multiple of 256)",
                        weights=("backbone_weights_path",), flags=(("glca", "0"),), multiple=32, edge_mask_width=7,
                      cost=2.0),
    "ObjectFormer": Recipe(note="--input_size follows the image size and --num_prototypes = 2 (S/16)^2, as its patch grid needs",
                           sized=lambda s: {"input_size": str(s), "num_prototypes": str(2 * (s // 16) ** 2)},
                           multiple=16, cost=16.0),
    "SPAN": Recipe(BROKEN, "re-creates its last convolutions at every forward pass, so they never learn; and needs its own pre-trained feature extractor"),
    "MantraNet": Recipe(BROKEN, "applies a sigmoid before BCEWithLogitsLoss, so its loss cannot reach its targets; about a minute per batch on a CPU"),
    "Cat_Net": Recipe(CANNOT, "calls .cuda() when built and reads JPEG coefficients with jpegio, which IMDL-BenCo does not install"),
    "SparseViTBackbone": Recipe(CANNOT, "a backbone without a loss (SparseViT is the model)"),
}
# fmt: on
for _family in ("resnet", "swin", "unet", "vit", "vit16"):
    for _prior in ("", "fft_", "dct_", "sobel_", "bayar_", "srm_"):
        RECIPES[_prior + _family] = Recipe(
            CANNOT,
            f"downloads its pre-trained {_family} when built (pretrained weights hard-coded, no flag to avoid it)",
        )
ALIASES = {"NCL": "ncl", "DeepLabV3Plus": "deeplabv3plus"}


def registry() -> Dict[str, object]:
    from IMDLBenCo.registry import MODELS

    import ncl_plugin  # noqa: F401  (registers NCL and DeepLabV3Plus)

    return dict(MODELS.module_dict)


def recipe(name: str) -> Recipe:
    """A registry name's recipe; a model registered by someone else gets an untested default."""
    name = ALIASES.get(name, name)
    return RECIPES.get(name, Recipe(note="no recipe here: trained with its own defaults (untested)"))


def default_models() -> List[str]:
    return [name for name, entry in RECIPES.items() if entry.status == TRAINS and entry.default]


def listing() -> str:
    """`benco bench --list`: every name in MODELS, whether it trains here, and why or how."""
    rows, known = [], registry()
    for name in known:
        entry = recipe(name)
        if name in ALIASES:
            state, note = "alias", f"the same model as {ALIASES[name]}"
        elif entry.status == TRAINS:
            state = "default" if entry.default else "trains"
            note = entry.note + (
                f" (sizes {', '.join(map(str, entry.sizes))})" if entry.sizes
                else f" (size: multiple of {entry.multiple})" if entry.multiple > 1 else ""
            )  # fmt: skip
            note += f"; about {entry.cost:g}x NCL's time per step" if entry.cost != 1 else ""
        else:
            state, note = ("excluded" if entry.status == BROKEN else "no"), entry.note
        rows.append((name, state, note))
    from ncl_plugin.engine import imdlbenco_line

    for name in RECIPES:
        if name not in known:
            rows.append((name, "absent", f"not in {imdlbenco_line.installed().name}'s MODELS: skipped where named"))
    width = max(len(r[0]) for r in rows) + 2
    head = (
        "Every model in IMDL-BenCo's MODELS, from random initialisation and without a download.\n"
        "default: in `benco bench`'s default --models; trains: give it with --models; "
        "excluded: broken as IMDL-BenCo ships it (trains only when named, with a warning); no: cannot train here; "
        "absent: a recipe for a model the installed IMDL-BenCo does not have.\n\n"
    )
    return head + "".join(f"{n.ljust(width)}{s.ljust(10)}{note}\n" for n, s, note in rows)


def empty_weight_file(folder: Path) -> Path:
    """A weight file holding an empty state dict, written once: a model that insists on loading one
    (non-strictly) starts from random initialisation."""
    import torch

    path = folder / "random_init_empty.pth"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({}, path)
    return path


def recipe_flags(entry: Recipe, size: int, weights: Path) -> List[str]:
    """The `benco train` flags of a recipe at ``size``, its files written under ``weights``."""
    flags = [f for key, value in entry.files(weights).items() for f in (f"--{key}", value)]
    for flag in entry.weights:
        flags += [f"--{flag}", str(empty_weight_file(weights))]
    for key, value in [*entry.flags, *entry.sized(size).items()]:
        flags += [f"--{key}", value]
    if entry.edge_mask_width:
        flags += ["--edge_mask_width", str(entry.edge_mask_width)]
    return flags


def seeded_torch_home(weights: Path) -> Path:
    """A torch hub cache holding an empty resnet50 file under the name MVSSNet downloads, so that it
    builds offline from random initialisation and the user's own cache is never touched."""
    home = weights / "torch_home"
    checkpoints = home / "hub" / "checkpoints"
    weight = checkpoints / "resnet50-19c8e357.pth"
    if not weight.exists():
        import torch

        checkpoints.mkdir(parents=True, exist_ok=True)
        torch.save({}, weight)
    return home


def _trufor_files(weights: Path) -> Dict[str, str]:
    """Trufor's phase 2 loads Noiseprint++ strictly: a random one, built as TruFor's builder builds it
    (builder_np_conf.py: a 17-level DnCNN), with a fixed seed; and the trufor.yaml IMDL-BenCo ships."""
    from importlib import resources

    import torch

    path = weights / "trufor_noiseprint_random.pth"
    if not path.exists():
        from IMDLBenCo.model_zoo.trufor.DnCNN import make_net

        levels = 17
        with torch.random.fork_rng():
            torch.manual_seed(0)
            dncnn = make_net(3, kernels=[3] * levels, features=[64] * (levels - 1) + [1],
                             bns=[False] + [True] * (levels - 2) + [False], acts=["relu"] * (levels - 1) + ["linear"],
                             dilats=[1] * levels, bn_momentum=0.1, padding=1)  # fmt: skip
        weights.mkdir(parents=True, exist_ok=True)
        torch.save(dncnn.state_dict(), path)
    config = resources.files("IMDLBenCo").joinpath("statics/model_zoo/configs/trufor.yaml")
    return {"np_pretrain_weights": str(path), "config_path": str(config)}


# ---------------------------------------------------------------- fixes on the built model
def _mesorch_output_size(model, args) -> None:
    """Mesorch resizes its prediction to a fixed 512x512 (mesorch.py, ``self.resize``); at any other
    training size its loss compares shapes that differ. Resize to the training size instead."""
    import torch.nn as nn

    size = int(args.image_size)
    model.resize = nn.Upsample(size=(size, size), mode="bilinear", align_corners=True)


ADAPTERS: Dict[str, Callable] = {"Mesorch": _mesorch_output_size}


def _image_score_from_mask(name: str, model) -> None:
    """Models that give no image-level score (segformer, MSCDI_Net: no ``pred_label``, or None) get the
    maximum of their predicted mask, NCL's own image score, so that image-level metrics compare every
    model; said once, when it first happens."""
    said = []

    def fill(module, inputs, output):
        if isinstance(output, dict) and output.get("pred_label") is None and output.get("pred_mask") is not None:
            output["pred_label"] = output["pred_mask"].detach().flatten(1).amax(dim=1)
            if not said:
                from ncl_plugin.terminal import say

                say(f"--model {name} gives no image-level score: its image score is the maximum of its mask, as NCL's")
                said.append(True)
        return output

    model.register_forward_hook(fill)


def adapt(name: str, model, args) -> None:
    """Apply the fix a model needs once built (see ADAPTERS), and give it an image score if it has none."""
    if name in ADAPTERS:
        ADAPTERS[name](model, args)
    _image_score_from_mask(name, model)


# ---------------------------------------------------------------- one model, as benco train builds it
def smallest_size(name: str, at_least: int = 64) -> int:
    entry = recipe(name)
    if entry.sizes:
        return min(s for s in entry.sizes if s >= at_least)
    size = max(at_least, entry.smallest)
    return size + (-size) % entry.multiple


def environment(name: str, folder: Path) -> Dict[str, str]:
    """The environment variables a model's runs get (a torch hub cache of its own, for MVSSNet)."""
    return {"TORCH_HOME": str(seeded_torch_home(folder / "weights"))} if recipe(name).private_torch_home else {}

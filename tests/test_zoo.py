"""Every zoo model `benco bench --list` calls trainable builds from its recipe without a download, as
`benco train` builds it, and takes one training step at the smallest size it accepts."""
import time

import pytest
import torch

from ncl_plugin import zoo
from ncl_plugin.commands import zoo_models

# The recipes of the models the installed IMDL-BenCo has (MSCDI_Net left after 0.1.45)
TRAINABLE = [name for name, entry in zoo.RECIPES.items() if entry.status == zoo.TRAINS and name in zoo.registry()]
# Over about 10 s a step at their smallest size on 2 cores, or over 100M parameters.
HEAVY = {"IML_ViT", "MVSSNet", "ObjectFormer", "Mesorch", "Trufor", "PSCC_Net"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in TRAINABLE]
)
def test_recipe_builds_offline_and_takes_a_training_step(name, offline, tmp_path, monkeypatch):
    for key, value in zoo.environment(name, tmp_path).items():
        monkeypatch.setenv(key, value)
    size = zoo.smallest_size(name)
    assert zoo.recipe(name).size_error(size) is None
    torch.manual_seed(0)
    model, args = zoo_models.build(name, size, tmp_path)
    model.train()
    batch = zoo_models.example_batch(size, batch=2, edge_mask_width=args.edge_mask_width)
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    started = time.time()
    output = model(**batch)
    loss = output["backward_loss"]
    assert torch.isfinite(loss), f"{name}: loss {loss}"
    loss.backward()
    optimizer.step()
    moved = sum(not torch.equal(a, p.detach()) for a, p in zip(before, trainable))
    assert moved > len(trainable) // 2, f"{name}: only {moved} of {len(trainable)} trainable tensors changed"
    assert output["pred_mask"].shape[-2:] == (size, size)
    print(f"{name} at {size}: {time.time() - started:.2f} s a step")


def test_a_size_a_model_refuses_is_named_with_legal_ones():
    message = zoo.recipe("segformer").size_error(100)
    assert "multiple of 32" in message and "nearest: 96 or 128" in message
    assert zoo.recipe("segformer").size_error(128) is None


def test_mesorch_predicts_at_the_training_size_not_at_512(tmp_path, offline):
    model, _ = zoo_models.build("Mesorch", 64, tmp_path)
    assert model.resize.size == (64, 64)


def test_boolean_model_flags_are_booleans():
    """IMDL-BenCo types an unannotated `conv_pretrain=False` as str: '--conv_pretrain False' was truthy."""
    from ncl_plugin.config import get_model_class, model_argparser

    parser = model_argparser(get_model_class("Mesorch"))
    assert parser.parse_args(["--conv_pretrain", "False"]).conv_pretrain is False
    assert parser.parse_args(["--conv_pretrain", "true"]).conv_pretrain is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--conv_pretrain", "maybe"])
    sparse = model_argparser(get_model_class("SparseViT"))
    assert sparse.parse_args(["--s_blocks3", "16,8,4,2"]).s_blocks3 == [16, 8, 4, 2]
    assert sparse.parse_args(["--s_blocks3", "[16, 8, 4, 2]"]).s_blocks3 == [16, 8, 4, 2]
    iml_vit = model_argparser(get_model_class("IML_ViT"))  # annotated List[int], which argparse cannot call
    assert iml_vit.parse_args(["--fpn_scale_factors", "4,2,1"]).fpn_scale_factors == [4, 2, 1]


def test_every_trainable_model_whose_forward_reads_edge_masks_gets_them():
    import inspect

    for name in TRAINABLE:
        model_class = zoo.registry()[name]
        if inspect.isclass(model_class):
            reads = "edge_mask" in inspect.signature(model_class.forward).parameters
            assert reads == bool(zoo.recipe(name).edge_mask_width), name


@pytest.mark.parametrize("model, message", [
    ("segformer", "--model segformer needs --pretrain_pth_path: its constructor loads pre-trained weights from it; "
                  "to train from random initialisation give --pretrain_pth_path EMPTY_FILE"),
    ("PSCC_Net", "--model PSCC_Net needs --pretrain_path: its constructor loads pre-trained weights from it; "
                 "to train from random initialisation give --pretrain_path ''"),
])
def test_a_weight_file_flag_left_out_is_one_line(model, message, dataset, tmp_path, capsys):
    """segformer without --pretrain_pth_path raised AttributeError ('NoneType' has no attribute 'seek'),
    PSCC_Net without --pretrain_path a TypeError from os.stat."""
    from helpers import error_of

    code, err = error_of(["train", "--model", model, "--data_path", dataset / "train", "--test_data_path",
                          dataset / "test", "--image_size", "64", "--epochs", "1", "--output_dir", tmp_path / "o"], capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_a_model_without_an_image_score_gets_the_maximum_of_its_mask(tmp_path):
    """segformer returns no pred_label: IMDL-BenCo's image-level evaluators would fail on it."""
    model, _ = zoo_models.build("segformer", zoo.smallest_size("segformer"), tmp_path)
    model.eval()
    batch = zoo_models.example_batch(zoo.smallest_size("segformer"))
    with torch.no_grad():
        output = model(**batch)
    assert output["pred_label"].shape == (2,)
    assert torch.equal(output["pred_label"], output["pred_mask"].flatten(1).amax(dim=1))

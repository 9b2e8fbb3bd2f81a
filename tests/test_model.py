import pytest
import torch

from helpers import rect_mask
from ncl_plugin import NCL, DeepLabV3Plus
from ncl_plugin.engine.checkpoints import CheckpointError
from ncl_plugin.method.model import VISUAL_LOSS_KEYS

SIZE = 128


@pytest.fixture(scope="module")
def batch():
    image = torch.randn(2, 3, SIZE, SIZE)
    mask = torch.cat([rect_mask(SIZE, SIZE, (20, 10, 90, 100)), rect_mask(SIZE, SIZE)])
    return {"image": image, "mask": mask, "label": torch.tensor([1, 0])}


@pytest.fixture(scope="module")
def model():
    return NCL(backbone="resnet18", patch_size=16)


def record_calls(*modules):
    calls = []
    handles = [m.register_forward_hook(lambda mod, inp, out: calls.append(mod)) for m in modules]
    return calls, handles


def test_training_forward_contract(model, batch):
    model.train()
    out = model(**batch, shape=torch.tensor([[SIZE, SIZE]] * 2), name=["a", "b"], if_predcit_label=False)
    assert out["backward_loss"].dim() == 0 and out["backward_loss"].requires_grad
    assert out["pred_mask"].shape == (2, 1, SIZE, SIZE)
    assert out["pred_label"].shape == (2,)
    assert 0 <= out["pred_mask"].min() and out["pred_mask"].max() <= 1
    assert torch.allclose(out["pred_label"], out["pred_mask"].flatten(1).max(dim=1).values)
    assert set(out["visual_loss"]) == set(VISUAL_LOSS_KEYS)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out["visual_loss"].values())
    assert out["visual_loss"]["ncl"] > 0
    expected_total = out["visual_loss"]["pc"] + 0.5 * out["visual_loss"]["ncl"]
    assert out["visual_loss"]["total"].item() == pytest.approx(expected_total.item(), rel=1e-6)
    assert torch.equal(out["visual_image"]["pred_mask"], out["pred_mask"])


def test_eval_forward_never_runs_sampler_or_branches(model, batch):
    loss = model.contrastive_loss
    calls, handles = record_calls(model.sampler, loss.branch_tampered, loss.branch_authentic)
    try:
        model.eval()
        with torch.no_grad():
            out = model(**batch)
        assert calls == []
        assert out["visual_loss"]["ncl"] == 0
        model.train()
        model(**batch)
        assert {type(m).__name__ for m in calls} == {"TriClassPatchSampler", "PivotBranch"}
    finally:
        for handle in handles:
            handle.remove()


def test_prediction_without_a_mask_returns_only_predictions(model, batch):
    model.eval()
    with torch.no_grad():
        out = model(batch["image"])
    assert "backward_loss" not in out and out["pred_mask"].shape == (2, 1, SIZE, SIZE)


@pytest.mark.parametrize("height,width", [(96, 160), (64, 64)])
def test_predictions_come_back_at_input_size(height, width):
    net = DeepLabV3Plus(backbone="resnet18", patch_size=16).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, height, width), torch.zeros(1, 1, height, width))
    assert out["pred_mask"].shape == (1, 1, height, width)
    logits, block1 = net.net(torch.randn(1, 3, height, width))
    assert [tuple(x.shape[-2:]) for x in logits] == [(height // f, width // f) for f in (8, 4, 2, 1)]
    assert block1.shape[-2:] == (height // 4, width // 4)


def test_output_stride_16_and_deeper_backbones_build():
    for backbone, stride, channels in [("resnet34", 16, 64), ("resnet50", 8, 256)]:
        model = NCL(backbone=backbone, output_stride=stride, patch_size=16)
        assert model.net.block1_channels == channels
        out = model(torch.randn(2, 3, 64, 64), rect_mask(64, 64, (8, 8, 40, 40)).repeat(2, 1, 1, 1))
        assert torch.isfinite(out["backward_loss"])


def test_gradients_reach_block1_and_both_branches(model, batch):
    model.train()
    model.zero_grad()
    logits, block1 = model.net(batch["image"])
    sample = model.sampler(block1, batch["mask"])
    model.contrastive_loss(sample)["loss"].backward()  # L_NCL alone
    block1_grads = [p.grad for p in model.net.encoder.layer1.parameters()]
    assert all(g is not None for g in block1_grads) and sum(g.abs().sum() for g in block1_grads) > 0
    for branch in (model.contrastive_loss.branch_tampered, model.contrastive_loss.branch_authentic):
        assert branch.block[0].weight.grad.abs().sum() > 0


def test_baseline_has_no_contrastive_parts_and_plain_bce(batch):
    baseline = DeepLabV3Plus(backbone="resnet18", patch_size=16)
    assert baseline.sampler is None and baseline.contrastive_loss is None
    assert baseline.segmentation_loss.contour_weight == 0.0
    out = baseline(**batch)
    assert out["visual_loss"]["ncl"] == 0 and out["visual_loss"]["total"] == out["visual_loss"]["pc"]


def test_nothing_is_downloaded_and_weights_are_random(offline):
    """The paper's network (ResNet-101) builds with every download refused, and two builds differ:
    random initialisation, no pre-trained weight from anywhere."""
    a, b = NCL(), NCL()
    assert a.net.encoder.default_cfg["architecture"] == "resnet101"
    wa, wb = a.net.encoder.conv1.weight, b.net.encoder.conv1.weight
    assert not torch.equal(wa, wb)


def test_pretrained_path_loads_a_checkpoint(tmp_path, model):
    path = tmp_path / "checkpoint-0.pth"
    torch.save({"model": model.state_dict(), "epoch": 0, "args": {"model": "ncl"}}, path)
    other = NCL(backbone="resnet18", patch_size=16, pretrained_path=str(path))
    assert torch.equal(other.net.encoder.conv1.weight, model.net.encoder.conv1.weight)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="--output_stride must be 8 or 16"):
        NCL(backbone="resnet18", output_stride=32)
    with pytest.raises(ValueError, match="--backbone 'resnet_nope'"):
        NCL(backbone="resnet_nope")
    with pytest.raises(CheckpointError, match="--pretrained_path /no/such.pth: no such file"):
        NCL(backbone="resnet18", pretrained_path="/no/such.pth")


def test_channels_last_gives_the_same_predictions_and_trains(batch):
    torch.manual_seed(3)
    model = NCL(backbone="resnet18", patch_size=16).eval()
    with torch.no_grad():
        reference = model(batch["image"])["pred_mask"]
        model = model.to(memory_format=torch.channels_last)
        image = batch["image"].contiguous(memory_format=torch.channels_last)
        assert torch.allclose(model(image)["pred_mask"], reference, atol=1e-4)
    model.train()
    out = model(image, batch["mask"])
    out["backward_loss"].backward()
    assert torch.isfinite(out["backward_loss"]) and model.net.encoder.conv1.weight.grad is not None


def test_losses_are_computed_in_float32_under_bfloat16_autocast(batch):
    model = NCL(backbone="resnet18", patch_size=16).train()
    torch.manual_seed(5)
    logits, block1 = model.net(batch["image"])
    logits, block1 = [x.detach() for x in logits], block1.detach()
    torch.manual_seed(7)
    plain = model.contrastive_loss(model.sampler(block1, batch["mask"]))["loss"] + model.segmentation_loss(logits, batch["mask"])["loss"]
    torch.manual_seed(7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sample = model.sampler(block1.bfloat16(), batch["mask"])
        mixed = model.contrastive_loss(sample)["loss"] + model.segmentation_loss([x.bfloat16() for x in logits], batch["mask"])["loss"]
    assert mixed.dtype == torch.float32
    # The only difference is the bfloat16 rounding of the inputs: the arithmetic itself is float32.
    assert mixed.item() == pytest.approx(plain.item(), rel=2e-2)


@pytest.mark.parametrize("prior", [0.1, 0.5])
def test_untrained_heads_predict_the_head_prior(batch, prior):
    model = NCL(backbone="resnet18", output_stride=16, decoder_channels=64, patch_size=16, head_prior=prior).eval()
    with torch.no_grad():
        logits, _ = model.net(batch["image"])
    for stage in logits:  # the 0.01-scale head weights leave every output within a few percent of the prior
        assert torch.sigmoid(stage).mean().item() == pytest.approx(prior, abs=0.03)


def test_decoder_width_sets_the_aspp_and_decoder_channels():
    narrow = DeepLabV3Plus(backbone="resnet18", output_stride=16, decoder_channels=64)
    wide = DeepLabV3Plus(backbone="resnet18", output_stride=16)
    assert [h.in_channels for h in narrow.net.decoder.heads] == [64, 64, 16, 8]
    assert [h.in_channels for h in wide.net.decoder.heads] == [256, 256, 64, 32]
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in wide.parameters())
    with pytest.raises(ValueError, match="--head_prior"):
        DeepLabV3Plus(backbone="resnet18", head_prior=1.0)


def test_the_paper_readings_reach_the_sampler_and_the_loss_through_the_model_flags():
    import torch

    from helpers import rect_mask
    from ncl_plugin import NCL

    torch.manual_seed(0)
    model = NCL(backbone="resnet18", patch_size=16, output_stride=16, patch_space="cube", pivot_input="each")
    assert model.sampler.patch_space == "cube" and model.sampler.pivot_input == "each"
    assert model.contrastive_loss.branch_tampered.patch_space == "cube"
    mask = torch.cat([rect_mask(64, 64, (0, 0, 40, 40)), rect_mask(64, 64, (16, 0, 64, 30))])
    out = model(torch.randn(2, 3, 64, 64), mask)
    assert out["visual_loss"]["ncl_se_pos"] > 0 and out["visual_loss"]["ncl_pn"] > 0
    out["backward_loss"].backward()
    assert model.contrastive_loss.branch_tampered.block[0].weight.grad.abs().sum() > 0


def small_ncl_with(**options):
    import torch

    from ncl_plugin import NCL

    torch.manual_seed(0)
    return NCL(**{"backbone": "resnet18", "patch_size": 16, "output_stride": 16, **options})


def two_masks():
    import torch

    from helpers import rect_mask

    return torch.cat([rect_mask(64, 64, (0, 0, 40, 40)), rect_mask(64, 64, (16, 0, 64, 30))])


def test_contrast_block_picks_the_encoder_block_and_its_stride():
    import torch

    model = small_ncl_with(contrast_block=2)
    assert model.net.contrast_stride == 8 and model.sampler.feature_stride == 8
    assert model.contrastive_loss.branch_tampered.block[0].in_channels == 128  # resnet18's block 2
    _, contrasted = model.net(torch.randn(2, 3, 64, 64))
    assert contrasted.shape[1:] == (128, 8, 8)
    out = model(torch.randn(2, 3, 64, 64), two_masks())
    assert out["visual_loss"]["ncl_pn"] > 0
    with pytest.raises(ValueError, match="--patch_size 4 must be a multiple of 8, the stride of encoder block 2"):
        small_ncl_with(contrast_block=2, patch_size=4)
    with pytest.raises(ValueError, match="--contrast_block must be 1 to 4"):
        small_ncl_with(contrast_block=5)


def test_projection_head_sits_between_the_features_and_the_sampler_in_training_only():
    import torch

    model = small_ncl_with(projection_head="mlp")
    out = model(torch.randn(2, 3, 64, 64), two_masks())
    out["backward_loss"].backward()
    assert model.projection[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        plain = small_ncl_with().eval()
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("projection")}, strict=False)
        image = torch.randn(1, 3, 64, 64)
        assert torch.equal(model(image)["pred_mask"], plain(image)["pred_mask"])  # inference never sees the head


def test_contrast_rampup_grows_omega_linearly_and_resumes_with_the_weights():
    import torch

    model = small_ncl_with(contrast_rampup=4, contrast_weight=0.5)
    image, masks = torch.randn(2, 3, 64, 64), two_masks()
    for seen in (1, 2):
        losses = model(image, masks)["visual_loss"]
        expected = losses["pc"] + 0.5 * seen / 4 * losses["ncl"]
        assert losses["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    resumed = small_ncl_with(contrast_rampup=4, contrast_weight=0.5)
    resumed.load_state_dict(model.state_dict())
    assert resumed.contrast_batches.item() == 2
    for _ in range(4):
        losses = resumed(image, masks)["visual_loss"]
    assert losses["total"].item() == pytest.approx((losses["pc"] + 0.5 * losses["ncl"]).item(), rel=1e-6)  # capped at omega
    assert "contrast_batches" not in small_ncl_with().state_dict()  # checkpoints without a ramp-up keep their keys


def test_image_score_choices_read_the_mask_differently():
    from ncl_plugin.method.image_score import image_score

    masks = torch.zeros(2, 1, 20, 20)
    masks[0, 0, 0, 0] = 0.95  # one confident pixel
    masks[1, 0, :10] = 0.6  # half the image, moderately
    assert image_score(masks, "max").tolist() == pytest.approx([0.95, 0.6])
    top = image_score(masks, "top1")  # the top 4 pixels of 400
    assert top[0].item() == pytest.approx(0.95 / 4) and top[1].item() == pytest.approx(0.6)
    assert image_score(masks, "area").tolist() == pytest.approx([1 / 400, 0.5])
    assert image_score(masks, "mean").tolist() == pytest.approx([0.95 / 400, 0.3])
    with pytest.raises(ValueError, match="--image_score 'median': use max, top1, area, mean"):
        NCL(backbone="resnet18", patch_size=16, image_score="median")
    model = NCL(backbone="resnet18", patch_size=16, image_score="area").eval()
    out = model(torch.randn(2, 3, 64, 64))
    assert torch.equal(out["pred_label"], image_score(out["pred_mask"], "area"))

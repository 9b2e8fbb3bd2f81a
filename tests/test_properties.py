"""Property-based checks on random masks, including the degenerate ones."""
import torch
from hypothesis import given
from hypothesis import strategies as st

from ncl_plugin.method.losses import NCLContrastiveLoss, PivotConsistentLoss
from ncl_plugin.method.sampler import AUTHENTIC, CONTOUR, TAMPERED, TriClassPatchSampler, classify_patches

KINDS = ["authentic", "tampered", "patch_aligned", "rectangle", "one_pixel", "smaller_than_a_patch", "noise"]


@st.composite
def batches(draw):
    patch = draw(st.sampled_from([4, 8, 16]))
    grid_h, grid_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))  # 1 x 1: one-patch images
    height = grid_h * patch + draw(st.integers(0, patch - 1))  # a border that fills no patch
    width = grid_w * patch + draw(st.integers(0, patch - 1))
    batch = draw(st.integers(1, 3))
    masks = torch.zeros(batch, 1, height, width)
    for b in range(batch):
        kind = draw(st.sampled_from(KINDS))
        if kind == "tampered":
            masks[b] = 1
        elif kind == "patch_aligned":  # tampered and authentic patches, no contour
            cells = torch.tensor(draw(st.lists(st.booleans(), min_size=grid_h * grid_w, max_size=grid_h * grid_w)))
            block = cells.view(grid_h, grid_w).float().repeat_interleave(patch, 0).repeat_interleave(patch, 1)
            masks[b, 0, : grid_h * patch, : grid_w * patch] = block
        elif kind in ("rectangle", "smaller_than_a_patch", "one_pixel"):
            limit = {"rectangle": max(height, width), "smaller_than_a_patch": patch - 1, "one_pixel": 1}[kind]
            top, left = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
            masks[b, 0, top : top + draw(st.integers(1, limit)), left : left + draw(st.integers(1, limit))] = 1
        elif kind == "noise":
            seed = draw(st.integers(0, 2**16))
            masks[b] = (torch.rand(1, height, width, generator=torch.Generator().manual_seed(seed)) > 0.5).float()
    return patch, masks


def expected_definition(classes, patch, norm):
    """Which terms the method defines for this batch, from the patch classes and the pivot branches' norm."""
    tampered = (classes == TAMPERED).flatten(1).sum(1)
    authentic = (classes == AUTHENTIC).flatten(1).sum(1)
    contour = (classes == CONTOUR).flatten(1).any(1)
    pn = bool(((tampered >= 2) & (authentic >= 1)).any())
    # BatchNorm needs two values per channel: a single 4x4 contour pivot in the batch cannot train it.
    # GroupNorm normalises each pivot over its own channels: one pivot is enough.
    pivot_values = int(contour.sum()) * (patch // 4) ** 2
    se = bool((contour & (tampered >= 1) & (authentic >= 1)).any()) and (norm == "group" or pivot_values >= 2)
    return pn, se


@given(batches(), st.sampled_from([0.1, 0.5, 1.0]), st.sampled_from(["group", "batch"]))
def test_losses_are_finite_and_ncl_is_zero_exactly_when_no_term_is_defined(data, temperature, norm):
    patch, masks = data
    batch, _, height, width = masks.shape
    features = torch.randn(batch, 8, -(-height // 4), -(-width // 4)).relu().requires_grad_(True)
    sample = TriClassPatchSampler(patch_size=patch)(features, masks)
    contrastive = NCLContrastiveLoss(channels=8, temperature=temperature, max_anchors=4, pivot_norm=norm)
    out = contrastive(sample)

    assert all(torch.isfinite(v) for v in out.values())
    pn, se = expected_definition(classify_patches(masks, patch), patch, norm)
    if not (pn or se):
        assert out["loss"].item() == 0.0
    else:
        assert out["loss"].item() > 0.0
    assert (out["ncl_pn"].item() > 0) == pn
    assert (out["ncl_se_pos"].item() > 0) == se and (out["ncl_se_neg"].item() > 0) == se

    logits = [torch.randn(batch, 1, -(-height // f), -(-width // f), requires_grad=True) for f in (8, 4, 2)]
    logits.append(torch.randn(batch, 1, height, width, requires_grad=True))
    pc = PivotConsistentLoss(contour_weight=0.7, patch_size=patch)(logits, masks)["loss"]
    assert torch.isfinite(pc)

    (out["loss"] + pc).backward()
    assert torch.isfinite(features.grad).all()
    assert all(torch.isfinite(x.grad).all() for x in logits)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in contrastive.parameters())


_MODEL = {}


def small_ncl():
    if "ncl" not in _MODEL:
        from ncl_plugin import NCL

        _MODEL["ncl"] = NCL(backbone="resnet18", output_stride=16, patch_size=16)
    return _MODEL["ncl"]


@st.composite
def degenerate_batches(draw):
    size, batch = 64, draw(st.integers(1, 3))
    masks = torch.zeros(batch, 1, size, size)
    for b in range(batch):
        kind = draw(st.sampled_from(["authentic", "tampered", "one_pixel", "smaller_than_a_patch", "patch_aligned"]))
        if kind == "tampered":
            masks[b] = 1
        elif kind == "one_pixel":
            masks[b, 0, draw(st.integers(0, size - 1)), draw(st.integers(0, size - 1))] = 1
        elif kind == "smaller_than_a_patch":
            top, left = draw(st.integers(0, size - 15)), draw(st.integers(0, size - 15))
            masks[b, 0, top : top + draw(st.integers(1, 15)), left : left + draw(st.integers(1, 15))] = 1
        elif kind == "patch_aligned":
            masks[b, 0, :32, :16] = 1
    return masks


@given(degenerate_batches())
def test_the_model_trains_on_degenerate_batches(masks):
    """Authentic-only, fully tampered, one-pixel and sub-patch regions: finite losses and gradients."""
    model = small_ncl().train()
    model.zero_grad()
    out = model(torch.randn(masks.shape[0], 3, 64, 64), masks)
    assert all(torch.isfinite(v) for v in out["visual_loss"].values())
    out["backward_loss"].backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)

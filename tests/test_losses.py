import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reference as ref
from helpers import rect_mask
from ncl_plugin.method.losses import NCLContrastiveLoss, PivotConsistentLoss
from ncl_plugin.method.sampler import AUTHENTIC as A
from ncl_plugin.method.sampler import CONTOUR as C
from ncl_plugin.method.sampler import TAMPERED as T
from ncl_plugin.method.sampler import PatchSample, contour_pixels

TAU = 0.2


def make_sample(classes, channels=4, cells=2):
    classes = torch.tensor(classes)
    batch, grid = classes.shape
    features = F.normalize(torch.randn(batch, grid, channels), dim=-1)
    has_contour = (classes == C).any(dim=1)
    pivots = torch.randn(batch, channels, cells, cells) * has_contour.view(-1, 1, 1, 1)
    return PatchSample(classes=classes, features=features, pivots=pivots, has_contour=has_contour)


def reference_terms(sample, loss, norm="group"):
    feats = sample.features.numpy()
    classes = sample.classes.numpy()
    pn = [ref.term_pn(f, c, TAU) for f, c in zip(feats, classes)]
    has = sample.has_contour.numpy()
    se_pos, se_neg = [None] * len(feats), [None] * len(feats)
    if has.any():
        pivots = sample.pivots.numpy()[has]
        w_pos = loss.branch_tampered.block[0].weight.detach().numpy()[:, :, 0, 0]
        w_neg = loss.branch_authentic.block[0].weight.detach().numpy()[:, :, 0, 0]
        v_pos, v_neg = ref.branch(pivots, w_pos, norm=norm), ref.branch(pivots, w_neg, norm=norm)
        for k, b in enumerate(np.flatnonzero(has)):
            se_pos[b] = ref.term_se(v_pos[k], feats[b], classes[b], TAU, T, A)
            se_neg[b] = ref.term_se(v_neg[k], feats[b], classes[b], TAU, A, T)
    return ref.mean_defined(pn), ref.mean_defined(se_pos), ref.mean_defined(se_neg)


BATCH = [
    [T, T, T, A, A, C, C, A],  # every term defined
    [T, A, A, A, C, A, A, A],  # one tampered patch: no P-vs-N pair, pivot terms defined
    [A, A, A, A, A, A, A, A],  # authentic: nothing defined
    [T, T, C, T, T, T, T, T],  # fully tampered with a contour: nothing defined (no negatives)
    [T, T, A, A, A, A, T, A],  # no contour: P-vs-N only
]


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_each_term_matches_a_loop_by_loop_reference(norm):
    sample = make_sample(BATCH)
    loss = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0, pivot_norm=norm)
    out = loss(sample)
    (pn, _), (se_pos, _), (se_neg, _) = reference_terms(sample, loss, norm)
    assert out["ncl_pn"].item() == pytest.approx(pn, rel=1e-5)
    assert out["ncl_se_pos"].item() == pytest.approx(se_pos, rel=1e-5)
    assert out["ncl_se_neg"].item() == pytest.approx(se_neg, rel=1e-5)
    assert out["loss"].item() == pytest.approx(np.mean([pn, se_pos, se_neg]), rel=1e-5)


def test_undefined_terms_are_left_out_of_the_mean():
    sample = make_sample([BATCH[4], BATCH[2]])  # P-vs-N only
    out = NCLContrastiveLoss(channels=4, temperature=TAU)(sample)
    assert out["ncl_se_pos"].item() == 0 and out["ncl_se_neg"].item() == 0
    assert out["ncl_pn"].item() > 0
    assert out["loss"].item() == pytest.approx(out["ncl_pn"].item(), rel=1e-6)


def test_anchor_cap_at_or_above_the_tampered_count_is_exact():
    sample = make_sample([BATCH[0]])
    exact = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0)(sample)["ncl_pn"]
    capped = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=3)(sample)["ncl_pn"]
    assert capped.item() == pytest.approx(exact.item(), rel=1e-6)


def test_anchor_cap_below_the_tampered_count_uses_a_subset_of_anchors():
    classes = [T, T, T, T, A, A, A, A]
    sample = make_sample([classes])
    feats = sample.features[0].numpy()
    P = [i for i, c in enumerate(classes) if c == T]
    N = [feats[i] for i, c in enumerate(classes) if c == A]

    def anchor_loss(m):
        terms = []
        for j in P:
            if j != m:
                pos = ref.e(feats[m], feats[j], TAU)
                terms.append(-np.log(pos / (pos + sum(ref.e(feats[m], n, TAU) for n in N))))
        return np.mean(terms)

    per_anchor = [anchor_loss(m) for m in P]
    value = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=1)(sample)["ncl_pn"].item()
    assert min(abs(value - v) for v in per_anchor) < 1e-5


def test_no_defined_term_gives_a_zero_that_still_reaches_every_parameter():
    sample = make_sample([BATCH[2], BATCH[3]])
    sample.features.requires_grad_(True)
    loss = NCLContrastiveLoss(channels=4, temperature=TAU)
    out = loss(sample)
    assert out["loss"].item() == 0.0
    out["loss"].backward()
    assert sample.features.grad is not None
    for name, parameter in loss.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name


def test_contrastive_loss_runs_in_float32_under_autocast():
    sample = make_sample(BATCH)
    loss = NCLContrastiveLoss(channels=4, temperature=TAU)
    torch.manual_seed(1)
    plain = loss(sample)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(sample)
    for key in ("loss", "ncl_pn", "ncl_se_pos", "ncl_se_neg"):
        assert mixed[key].dtype == torch.float32
        assert mixed[key].item() == pytest.approx(plain[key].item(), rel=1e-5)


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="--temperature must be positive"):
        NCLContrastiveLoss(channels=4, temperature=0.0)


def stage_logits(batch, size):
    return [torch.randn(batch, 1, size // f, size // f) for f in (8, 4, 2, 1)]


@pytest.mark.parametrize("mu", [0.0, 0.7, 1.0])
def test_pivot_consistent_loss_matches_a_loop_by_loop_reference(mu):
    mask = torch.cat([rect_mask(16, 16, (2, 3, 8, 16)), rect_mask(16, 16), rect_mask(16, 16, (0, 0, 8, 8))])
    logits = stage_logits(3, 16)
    loss = PivotConsistentLoss(contour_weight=mu, patch_size=8)(logits, mask)["loss"]

    classes = torch.tensor([[[C, C], [A, A]], [[A, A], [A, A]], [[T, A], [A, A]]])
    contour = contour_pixels(classes, 8, (16, 16))[:, 0].numpy()
    expected = ref.pivot_consistent([x[:, 0].double().numpy() for x in logits], mask[:, 0].numpy(), contour, mu)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_pivot_consistent_weight_shifts_the_loss_towards_contour_pixels():
    mask = rect_mask(16, 16, (0, 0, 16, 6))  # contour patches in column 0
    logits = [torch.zeros(1, 1, s, s) for s in (2, 4, 8, 16)]
    logits[-1][..., :, :8] = -5.0  # confidently wrong on the tampered strip only, inside contour patches
    plain = PivotConsistentLoss(contour_weight=0.0, patch_size=8)(logits, mask)["loss"]
    weighted = PivotConsistentLoss(contour_weight=0.7, patch_size=8)(logits, mask)["loss"]
    assert weighted > plain


@pytest.mark.parametrize("mu", [-0.1, 1.5])
def test_contour_weight_outside_unit_interval_is_rejected(mu):
    with pytest.raises(ValueError, match="--contour_weight must be in"):
        PivotConsistentLoss(contour_weight=mu)


def test_selected_terms_only_enter_the_loss():
    sample = make_sample(BATCH)
    full = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0)
    torch.manual_seed(0)
    reference = full(sample)
    only_pn = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0, terms="pn")
    out = only_pn(sample)
    assert out["ncl_se_pos"].item() == 0 and out["ncl_se_neg"].item() == 0
    assert out["loss"].item() == pytest.approx(reference["ncl_pn"].item(), rel=1e-6)
    one_branch = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0, terms="pn,se_pos")
    one_branch.load_state_dict(full.state_dict())
    out = one_branch(sample)
    assert out["ncl_se_neg"].item() == 0
    expected = (reference["ncl_pn"] + reference["ncl_se_pos"]) / 2
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="--ncl_terms 'pn,contour'"):
        NCLContrastiveLoss(channels=4, terms="pn,contour")


# ---------------------------------------------------------------- the paper's readings (patch_space, pivot_input)
def paper_batch():
    """Three 32x32 images, 8-pixel patches on 2-cell block-1 maps: contours in two of them."""
    torch.manual_seed(3)
    mask = torch.cat([
        rect_mask(32, 32, (4, 4, 20, 20)),   # contour, tampered and authentic patches
        rect_mask(32, 32, (0, 0, 16, 12)),   # two tampered patches, contour patches, authentic
        rect_mask(32, 32, (8, 8, 24, 24)),   # 2x2 tampered square on the grid: no contour
    ])
    return torch.randn(3, 4, 8, 8), mask


@pytest.mark.parametrize("space", ["pooled", "cube"])
def test_patch_features_match_a_loop_over_patches(space):
    from ncl_plugin.method.sampler import TriClassPatchSampler

    features, mask = paper_batch()
    sample = TriClassPatchSampler(patch_size=8, patch_space=space)(features, mask)
    for b in range(3):
        expected = np.stack(ref.patch_vectors(features[b].numpy(), 2, space))
        np.testing.assert_allclose(sample.features[b].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert sample.features.shape[-1] == (4 if space == "pooled" else 4 * 2 * 2)


@pytest.mark.parametrize("norm", ["group", "batch"])
@pytest.mark.parametrize("space", ["pooled", "cube"])
@pytest.mark.parametrize("pivot", ["mean", "each"])
def test_paper_readings_match_a_loop_by_loop_reference(space, pivot, norm):
    from ncl_plugin.method.sampler import TriClassPatchSampler

    features, mask = paper_batch()
    sample = TriClassPatchSampler(patch_size=8, patch_space=space, pivot_input=pivot)(features, mask)
    loss = NCLContrastiveLoss(
        channels=4, temperature=TAU, max_anchors=0, patch_space=space, pivot_input=pivot, pivot_norm=norm
    )
    out = loss(sample)

    classes = sample.classes.numpy()
    vectors = [np.stack(ref.patch_vectors(features[b].numpy(), 2, space)) for b in range(3)]
    # each image's contour patches, cut by hand from its block-1 map
    patches = [[features[b, :, (g // 4) * 2 : (g // 4) * 2 + 2, (g % 4) * 2 : (g % 4) * 2 + 2].numpy()
                for g in range(16) if classes[b, g] == C] for b in range(3)]
    with_contour = [b for b in range(3) if patches[b]]
    assert with_contour == [0, 1]
    expected = {}
    for name, branch, positive, negative in (("ncl_se_pos", loss.branch_tampered, T, A),
                                             ("ncl_se_neg", loss.branch_authentic, A, T)):
        weight = branch.block[0].weight.detach().numpy()[:, :, 0, 0]
        if pivot == "each":
            pivots = ref.branch_each([patches[b] for b in with_contour], weight, space=space, norm=norm)
        else:
            pivots = ref.branch(np.stack([np.mean(patches[b], axis=0) for b in with_contour]), weight, space=space,
                                norm=norm)
        terms = [ref.term_se(v, vectors[b], classes[b], TAU, positive, negative) for v, b in zip(pivots, with_contour)]
        expected[name] = ref.mean_defined(terms)[0]
    expected["ncl_pn"] = ref.mean_defined([ref.term_pn(vectors[b], classes[b], TAU) for b in range(3)])[0]
    for name, value in expected.items():
        assert out[name].item() == pytest.approx(value, rel=1e-5), name
    assert out["loss"].item() == pytest.approx(np.mean(list(expected.values())), rel=1e-5)


def test_the_readings_change_the_loss():
    """Each reading is a different loss on the same features, not a renamed default."""
    from ncl_plugin.method.sampler import TriClassPatchSampler

    features, mask = paper_batch()
    values = {}
    for space in ("pooled", "cube"):
        for pivot in ("mean", "each"):
            torch.manual_seed(0)
            loss = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0, patch_space=space, pivot_input=pivot)
            sample = TriClassPatchSampler(patch_size=8, patch_space=space, pivot_input=pivot)(features, mask)
            values[space, pivot] = round(loss(sample)["ncl_se_pos"].item(), 6)
    assert len(set(values.values())) == 4


def test_unknown_reading_is_named():
    with pytest.raises(ValueError, match="--patch_space 'voxel': use pooled or cube"):
        NCLContrastiveLoss(channels=4, patch_space="voxel")
    with pytest.raises(ValueError, match="--pivot_input 'concat': use mean or each"):
        NCLContrastiveLoss(channels=4, pivot_input="concat")


# ---------------------------------------------------------------- the pivot at any batch size (--pivot_norm)
def one_image_sample(seed, mask=None):
    """One 32x32 image, 8-pixel patches (2-cell block-1 maps, 16 channels), with its contour pivot."""
    from ncl_plugin.method.sampler import TriClassPatchSampler

    torch.manual_seed(seed)
    mask = rect_mask(32, 32, (4, 4, 20, 20)) if mask is None else mask
    return TriClassPatchSampler(patch_size=8)(torch.randn(1, 16, 8, 8) + torch.randn(1, 16, 1, 1), mask)


def cosine(a, b):
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def test_two_different_pivots_at_batch_one_stay_apart():
    from ncl_plugin.method.losses import PivotBranch

    torch.manual_seed(0)
    branch = PivotBranch(16).train()
    for seed in range(5):
        a, b = torch.randn(1, 16, 2, 2) * 0.3, torch.randn(1, 16, 2, 2) * 0.3
        a, b = a + torch.randn(1, 16, 1, 1), b + torch.randn(1, 16, 1, 1)  # pivots that differ in content
        assert cosine(a.mean(dim=(2, 3)), b.mean(dim=(2, 3))) < 0.5
        assert cosine(branch(a), branch(b)) < 0.9, seed
    # The paper's literal BatchNorm at batch 1 subtracts the pooled content itself: every pivot alike.
    batch = PivotBranch(16, norm="batch").train()
    assert cosine(batch(a), batch(b)) > 0.97


@pytest.mark.parametrize("input_", ["mean", "each"])
def test_a_term_does_not_change_when_an_unrelated_image_joins_the_batch(input_):
    from ncl_plugin.method.sampler import TriClassPatchSampler

    torch.manual_seed(1)
    features = torch.randn(2, 16, 8, 8)
    masks = torch.cat([rect_mask(32, 32, (4, 4, 20, 20)), rect_mask(32, 32, (10, 2, 30, 22))])
    sampler = TriClassPatchSampler(patch_size=8, pivot_input=input_)
    loss = NCLContrastiveLoss(channels=16, temperature=TAU, max_anchors=0, pivot_input=input_).train()
    together = loss(sampler(features, masks))
    alone = [loss(sampler(features[i : i + 1], masks[i : i + 1])) for i in range(2)]
    for name in ("ncl_se_pos", "ncl_se_neg"):
        assert together[name].item() == pytest.approx((alone[0][name] + alone[1][name]).item() / 2, rel=1e-5)


def test_the_gradient_reaches_the_pivot_at_batch_one():
    sample = one_image_sample(2)
    sample.pivots.requires_grad_(True)
    loss = NCLContrastiveLoss(channels=16, temperature=TAU, terms="se_pos,se_neg").train()
    loss(sample)["loss"].backward()
    # what the pooling keeps: the gradient on each channel's mean over the pivot's positions
    assert sample.pivots.grad.mean(dim=(2, 3)).norm() > 1e-3
    sample.pivots.grad = None
    NCLContrastiveLoss(channels=16, temperature=TAU, terms="se_pos,se_neg", pivot_norm="batch")(sample)["loss"].backward()
    assert sample.pivots.grad.mean(dim=(2, 3)).norm() < 1e-5  # BatchNorm's statistics took it away


def test_pivot_norm_is_checked():
    with pytest.raises(ValueError, match="--pivot_norm 'layer': use group or batch"):
        NCLContrastiveLoss(channels=4, pivot_norm="layer")


# ---------------------------------------------------------------- each term against its chance value
def test_every_term_equals_its_chance_value_when_all_similarities_are_equal():
    sample = make_sample(BATCH)
    sample.features = F.normalize(torch.ones_like(sample.features), dim=-1)  # one direction for every patch
    out = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0)(sample)
    # log(1 + negatives) per image where the term is defined. pn: image 0 (3 tampered, 3 authentic) and
    # image 4 (3, 5); se+ and se-: image 0 and image 1 (1 tampered, 6 authentic)
    assert out["ncl_pn_chance"].item() == pytest.approx(np.mean([np.log(4), np.log(6)]), rel=1e-6)
    assert out["ncl_se_pos_chance"].item() == pytest.approx(np.mean([np.log(4), np.log(7)]), rel=1e-6)
    assert out["ncl_se_neg_chance"].item() == pytest.approx(np.mean([np.log(4), np.log(2)]), rel=1e-6)
    for term in ("ncl_pn", "ncl_se_pos", "ncl_se_neg"):
        assert out[term].item() == pytest.approx(out[f"{term}_chance"].item(), rel=1e-5), term


def test_each_term_says_on_which_share_of_the_batch_it_is_defined():
    out = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0)(make_sample(BATCH))
    assert out["ncl_pn_defined"].item() == pytest.approx(2 / 5)  # images 0 and 4
    assert out["ncl_se_pos_defined"].item() == pytest.approx(2 / 5)  # images 0 and 1
    assert out["ncl_se_neg_defined"].item() == pytest.approx(2 / 5)
    # a term a learned model has moved below chance
    sample = make_sample(BATCH)
    out = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0)(sample)
    assert out["ncl_pn"].item() != pytest.approx(out["ncl_pn_chance"].item(), rel=1e-3)

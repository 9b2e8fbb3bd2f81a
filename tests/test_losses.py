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


def reference_terms(sample, loss):
    feats = sample.features.numpy()
    classes = sample.classes.numpy()
    pn = [ref.term_pn(f, c, TAU) for f, c in zip(feats, classes)]
    has = sample.has_contour.numpy()
    se_pos, se_neg = [None] * len(feats), [None] * len(feats)
    if has.any():
        pivots = sample.pivots.numpy()[has]
        w_pos = loss.branch_tampered.block[0].weight.detach().numpy()[:, :, 0, 0]
        w_neg = loss.branch_authentic.block[0].weight.detach().numpy()[:, :, 0, 0]
        v_pos, v_neg = ref.branch(pivots, w_pos), ref.branch(pivots, w_neg)
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


def test_each_term_matches_a_loop_by_loop_reference():
    sample = make_sample(BATCH)
    loss = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0)
    out = loss(sample)
    (pn, _), (se_pos, _), (se_neg, _) = reference_terms(sample, loss)
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


@pytest.mark.parametrize("space", ["pooled", "cube"])
@pytest.mark.parametrize("pivot", ["mean", "each"])
def test_paper_readings_match_a_loop_by_loop_reference(space, pivot):
    from ncl_plugin.method.sampler import TriClassPatchSampler

    features, mask = paper_batch()
    sample = TriClassPatchSampler(patch_size=8, patch_space=space, pivot_input=pivot)(features, mask)
    loss = NCLContrastiveLoss(channels=4, temperature=TAU, max_anchors=0, patch_space=space, pivot_input=pivot)
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
            pivots = ref.branch_each([patches[b] for b in with_contour], weight, space=space)
        else:
            pivots = ref.branch(np.stack([np.mean(patches[b], axis=0) for b in with_contour]), weight, space=space)
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

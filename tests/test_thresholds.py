"""Thresholds chosen on a validation list: the sweep and the choice (benco calibrate end to end: test_workflow.py)."""
import pytest
import torch

from ncl_plugin.engine import thresholds


def sweep_of(probabilities, masks, labels=None, scores=None):
    sweep = thresholds.ThresholdSweep()
    sweep.batch_update(predict=probabilities, mask=masks, predict_label=scores, label=labels)
    sweep.epoch_update()
    return sweep


def pixel_mean(evaluator, predict, mask):
    """An IMDL-BenCo pixel evaluator's mean over these (tampered) images, under either line's convention."""
    values = evaluator.batch_update(predict, mask)
    return torch.as_tensor(evaluator.epoch_update() if values is None else values.mean())


def test_the_sweep_finds_the_threshold_imdlbenco_f1_is_best_at():
    from IMDLBenCo.evaluation import PixelF1

    torch.manual_seed(0)
    masks = torch.zeros(3, 1, 16, 16)
    masks[0, :, :8], masks[1, :, :, :5], masks[2, :, 4:12, 4:12] = 1, 1, 1
    # tampered pixels around 0.3, authentic around 0.15, overlapping: the best cut is neither 0.5 nor a bin edge
    probabilities = torch.where(masks > 0, 0.3 + 0.08 * torch.randn_like(masks), 0.15 + 0.08 * torch.randn_like(masks))
    sweep = sweep_of(probabilities.clamp(0, 1), masks)
    chosen = thresholds.best_pixel_threshold(sweep.pixel_f1)
    # IMDL-BenCo's own per-image F1 at every threshold of the grid, averaged over the images
    imdlbenco = [pixel_mean(PixelF1(threshold=float(t), mode="origin"), probabilities.clamp(0, 1), masks)
                 for t in thresholds.GRID]
    assert torch.allclose(sweep.pixel_f1.float(), torch.stack(imdlbenco).float(), atol=1e-5)
    assert chosen["threshold"] == pytest.approx(float(thresholds.GRID[int(torch.stack(imdlbenco).argmax())]))
    assert 0.15 < chosen["threshold"] < 0.3 and chosen["f1"] > chosen["f1_at_0.5"]


def test_the_image_threshold_needs_both_kinds_of_image():
    scores, labels = torch.tensor([0.9, 0.8, 0.4, 0.2]), torch.tensor([1, 1, 0, 0])
    best = thresholds.best_image_threshold(scores, labels)
    assert 0.4 < best["threshold"] < 0.8 and best["f1"] == 1.0 and best["f1_at_0.5"] == 1.0
    assert thresholds.best_image_threshold(scores, torch.ones(4, dtype=torch.long)) is None


def test_one_pass_compares_every_image_score_on_the_same_images():
    # Two tampered images whose masks mark a region; two authentic ones with a single stray bright pixel.
    # The maximum ranks the authentic images first; the mean and top-1% see the regions and rank correctly.
    masks = torch.zeros(4, 1, 20, 20)
    masks[:2, :, :10] = 1
    probabilities = torch.full((4, 1, 20, 20), 0.05)
    probabilities[:2, :, :10] = 0.4
    probabilities[2:, :, 0, 0] = 0.99
    labels = torch.tensor([1, 1, 0, 0])
    sweep = sweep_of(probabilities, masks, labels, scores=probabilities.flatten(1).amax(1))
    compared = thresholds.compare_image_scores(sweep.candidates, sweep.labels)
    assert set(compared) == {"max", "top1", "area", "mean"}
    assert compared["max"]["auc"] == 0.0 and compared["mean"]["auc"] == 1.0 and compared["top1"]["auc"] == 1.0
    assert compared["mean"]["f1"] == 1.0
    assert compared["area"]["auc"] == 0.0  # above 0.5 lie only the stray pixels
    # only tampered images: nothing to compare
    assert thresholds.compare_image_scores(sweep.candidates, torch.ones(4, dtype=torch.long)) == {}


def test_the_pixel_threshold_weighs_what_it_flags_on_authentic_images():
    """The tampered images alone chose a low threshold (here 0.2) that flags most of an authentic image; the
    rule now takes the best tampered F1 among thresholds flagging at most 5% of an authentic image's pixels."""
    torch.manual_seed(0)
    masks = torch.zeros(4, 1, 20, 20)
    masks[:2, :, :10] = 1
    probabilities = torch.full((4, 1, 20, 20), 0.1)
    probabilities[:2, :, :10] = 0.25  # tampered regions: a weak, low signal
    probabilities[2:] = torch.rand(2, 1, 20, 20) * 0.6  # authentic images: uniform over [0, 0.6)
    sweep = sweep_of(probabilities, masks)
    assert sweep.images_without_tampering == 2 and sweep.images_with_tampering == 2
    # the rate at each threshold is the authentic images' mean share of pixels above it
    direct = torch.stack([(probabilities[2:] > t).flatten(1).float().mean(1).mean() for t in thresholds.GRID])
    assert torch.allclose(sweep.authentic_fpr.float(), direct, atol=1e-6)
    free = thresholds.best_pixel_threshold(sweep.pixel_f1)
    assert free["threshold"] < 0.25 and free["authentic_fpr"] is None and free["rule"] == thresholds.RULE_TAMPERED
    chosen = thresholds.best_pixel_threshold(sweep.pixel_f1, sweep.authentic_fpr, 0.05)
    assert chosen["authentic_fpr"] <= 0.05 and chosen["ceiling_met"]
    allowed = sweep.authentic_fpr <= 0.05
    assert chosen["f1"] == pytest.approx(float(sweep.pixel_f1[allowed].max()))
    assert chosen["tampered_only"]["threshold"] == free["threshold"]
    assert chosen["tampered_only"]["authentic_fpr"] > 0.5 and chosen["threshold"] > 0.5
    # no threshold under the ceiling: the one that flags least, and said in the record
    never = thresholds.best_pixel_threshold(sweep.pixel_f1, torch.ones_like(sweep.pixel_f1), 0.05)
    assert not never["ceiling_met"]


def test_an_image_threshold_is_only_used_for_the_score_it_was_chosen_for():
    from ncl_plugin.errors import UsageError

    record = {"image_threshold": 0.1027, "image_score": "max",
              "image_thresholds": {"max": {"threshold": 0.1027}, "mean": {"threshold": 0.0312}}}
    assert thresholds.image_threshold_for(record, "max") == 0.1027
    assert thresholds.image_threshold_for(record, "mean") == 0.0312
    # a record of an earlier version: one threshold, for max only
    old = {"image_threshold": 0.1027, "image_score": "max"}
    assert thresholds.image_threshold_for(old, "max") == 0.1027
    with pytest.raises(UsageError, match="chosen for --image_score max, not mean; run benco calibrate again"):
        thresholds.image_threshold_for(old, "mean")
    # a model with its own pred_label (no --image_score), and a list that chose no image threshold
    assert thresholds.image_threshold_for({"image_threshold": 0.4, "image_score": None}, None) == 0.4
    assert thresholds.image_threshold_for({"image_threshold": None, "image_score": "max"}, "mean") is None
    assert thresholds.image_threshold_for(None, "max") is None

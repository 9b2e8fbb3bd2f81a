"""IMDL-BenCo's evaluators, run through its test_one_epoch as adapted for CPUs, against scikit-learn."""
import argparse

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score, precision_recall_curve, roc_auc_score

from ncl_plugin.engine import imdlbenco_line
from ncl_plugin.engine.evaluation import evaluate
from ncl_plugin.engine.metrics import evaluator_factory


class Oracle(torch.nn.Module):
    """Returns the predictions hidden in the image: channel 0 is pred_mask, pixel (1, 0, 0) pred_label."""

    def forward(self, image, mask, label, *args, **kwargs):
        return {"pred_mask": image[:, :1], "pred_label": image[:, 1, 0, 0]}


class Batches(torch.utils.data.Dataset):
    def __init__(self, predictions, masks, scores, labels):
        self.items = list(zip(predictions, masks, scores, labels))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        prediction, mask, score, label = self.items[index]
        image = torch.zeros(3, *prediction.shape)
        image[0] = prediction
        image[1, 0, 0] = score
        return {"image": image, "mask": mask[None], "label": label, "name": f"{index}.png"}


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    n, size = 9, 16
    predictions = torch.tensor(rng.random((n, size, size)), dtype=torch.float32)  # continuous: no ties
    masks = torch.zeros(n, size, size)
    for i in range(n - 2):  # the last two images are authentic
        top, left = rng.integers(0, 10, 2)
        masks[i, top : top + 6, left : left + 5] = 1
    scores = torch.tensor(rng.random(n), dtype=torch.float32)
    labels = torch.tensor([1] * (n - 2) + [0, 0])
    return predictions, masks, scores, labels


def run(case, metrics, batch_size=4):
    args = argparse.Namespace(no_model_eval=False, test_batch_size=batch_size, distributed=False)
    loader = torch.utils.data.DataLoader(Batches(*case), batch_size=batch_size)
    results = evaluate(Oracle(), {"set": loader}, evaluator_factory(metrics), torch.device("cpu"), 0, args)
    return results["set"]


def per_image(metric, case):
    predictions, masks, _, _ = case
    values = []
    for prediction, mask in zip(predictions, masks):
        truth, prob = mask.flatten().numpy().astype(int), prediction.flatten().numpy()
        if truth.sum() == 0:
            continue  # pixel metrics are means over the tampered images
        if metric == "f1":
            values.append(f1_score(truth, prob > 0.5, zero_division=0))
        elif metric == "f1-best":
            precision, recall, _ = precision_recall_curve(truth, prob)
            values.append(float(np.max(2 * precision * recall / np.maximum(precision + recall, 1e-12))))
        elif metric == "iou":
            values.append(jaccard_score(truth, prob > 0.5, zero_division=0))
        else:
            values.append(roc_auc_score(truth, prob))
    return float(np.mean(values))


def test_pixel_metrics_match_scikit_learn(case):
    results = run(case, ["pixel-f1", "pixel-auc", "pixel-iou"])  # 9 images, batches of 4: a partial last batch
    assert results["pixel-level F1"] == pytest.approx(per_image("f1", case), abs=1e-5)
    assert results["pixel-level IOU"] == pytest.approx(per_image("iou", case), abs=1e-5)
    assert results["pixel-level AUC"] == pytest.approx(per_image("auc", case), abs=1e-4)


def run_raw(case, batch_size=4):
    """IMDL-BenCo's own PixelF1, unwrapped: every image in the mean, an authentic one as 0."""
    from IMDLBenCo.evaluation import PixelF1

    args = argparse.Namespace(no_model_eval=False, test_batch_size=batch_size, distributed=False)
    loader = torch.utils.data.DataLoader(Batches(*case), batch_size=batch_size)
    make = lambda: [PixelF1(threshold=0.5, mode="origin")]  # noqa: E731
    return evaluate(Oracle(), {"set": loader}, make, torch.device("cpu"), 0, args)["set"]["pixel-level F1"]


def test_authentic_images_do_not_dilute_pixel_metrics(case):
    """IMDL-BenCo 0.1.x scores the two authentic images 0 and averages them in (7/9 of the figure); its numpy-2
    line, like the plugin on either line, averages over the 7 tampered images; on those alone all agree."""
    ours = run(case, ["pixel-f1"])["pixel-level F1"]
    diluted = 9 / 7 if imdlbenco_line.installed().native_pixel_mean == imdlbenco_line.ALL_IMAGES else 1.0
    assert ours == pytest.approx(run_raw(case) * diluted, abs=1e-6)
    tampered_only = tuple(part[:7] for part in case)
    assert run(tampered_only, ["pixel-f1"])["pixel-level F1"] == pytest.approx(run_raw(tampered_only), abs=1e-7)
    assert run(tampered_only, ["pixel-f1"])["pixel-level F1"] == pytest.approx(ours, abs=1e-9)


def two_plus_two():
    """Two tampered images predicted perfectly, two authentic ones predicted authentic."""
    masks = torch.zeros(4, 8, 8)
    masks[0, :4], masks[1, :, :3] = 1, 1
    return masks.clone(), masks, torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([1, 1, 0, 0])


def test_the_two_plus_two_example_reads_one_under_the_plugin_on_either_line():
    """The docs' example: IMDL-BenCo 0.1.x's own mean is 0.5, the numpy-2 line's 1.0, the plugin's 1.0 on both."""
    case = two_plus_two()
    assert run(case, ["pixel-f1", "pixel-iou"]) == {"pixel-level F1": pytest.approx(1.0), "pixel-level IOU": pytest.approx(1.0)}
    native = 0.5 if imdlbenco_line.installed().native_pixel_mean == imdlbenco_line.ALL_IMAGES else 1.0
    assert run_raw(case) == pytest.approx(native, abs=1e-6)


def test_pixel_fpr_is_the_share_of_authentic_pixels_flagged_over_authentic_images():
    """Where the installed line has PixelFPR it is used, else the same figure is computed; either way
    ~ the mean over the authentic images of the share of their pixels above 0.5; none without one."""
    predictions, masks, scores, labels = two_plus_two()
    predictions[2, :2] = 0.9  # 16 of 64 pixels flagged on the first authentic image, none on the second
    predictions[0, 6:] = 0.9  # a false alarm on a tampered image does not count
    results = run((predictions, masks, scores, labels), ["pixel-fpr", "pixel-f1"])
    assert results["pixel-level FPR"] == pytest.approx((16 / 64 + 0) / 2)
    assert "pixel-level FPR" not in run(tuple(part[:2] for part in (predictions, masks, scores, labels)), ["pixel-fpr"])


@pytest.mark.skipif(not hasattr(__import__("IMDLBenCo.evaluation").evaluation, "PixelFPR"), reason="IMDL-BenCo 0.1.x has no PixelFPR")
def test_our_false_positive_rate_is_imdlbencos_pixel_fpr(case):
    from IMDLBenCo.evaluation import PixelFPR

    from ncl_plugin.engine.metrics import FlaggedShare, OverTamperedImages

    predictions, masks = case[0][:, None], case[1][:, None]
    theirs, ours = OverTamperedImages(PixelFPR(0.5), authentic=True), OverTamperedImages(FlaggedShare(0.5), authentic=True)
    for evaluator in (theirs, ours):
        evaluator.batch_update(predictions, masks)
    assert theirs.epoch_update() == pytest.approx(ours.epoch_update(), abs=1e-9)


def test_best_threshold_f1_matches_scikit_learn_and_bounds_the_fixed_one(case):
    results = run(case, ["pixel-f1", "pixel-f1-best"])
    assert results["pixel-level F1 (best threshold)"] == pytest.approx(per_image("f1-best", case), abs=1e-5)
    assert results["pixel-level F1 (best threshold)"] > results["pixel-level F1"]


def test_best_threshold_f1_keeps_tied_scores_together():
    from ncl_plugin.engine.metrics import best_threshold_f1

    # Scores 0.9 (one tampered, one authentic pixel), 0.2 (one tampered) and 0.1: no threshold
    # separates the two 0.9 pixels, so the best cut keeps both: P = 1/2, R = 1/2, F1 = 1/2; taking
    # every pixel above 0.1 gives P = 2/3, R = 1, F1 = 0.8.
    predict = torch.tensor([0.9, 0.9, 0.2, 0.1]).view(1, 1, 2, 2)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 2, 2)
    assert best_threshold_f1(predict, mask).item() == pytest.approx(0.8)
    precision, recall, _ = precision_recall_curve(mask.flatten().numpy(), predict.flatten().numpy())
    assert best_threshold_f1(predict, mask).item() == pytest.approx(np.max(2 * precision * recall / (precision + recall)))
    # Padding outside shape_mask is not scored, and an image with no tampered pixel scores 0.
    shape_mask = torch.tensor([1.0, 1.0, 0.0, 1.0]).view(1, 1, 2, 2)
    assert best_threshold_f1(predict, mask, shape_mask).item() == pytest.approx(2 / 3)
    assert best_threshold_f1(predict, torch.zeros_like(mask)).item() == 0.0


def test_image_metrics_match_scikit_learn(case):
    _, _, scores, labels = case
    results = run(case, ["image-f1", "image-auc"])
    assert results["image-level F1"] == pytest.approx(f1_score(labels.numpy(), scores.numpy() > 0.5), abs=1e-6)
    assert results["image-level AUC"] == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-6)


def test_batch_size_does_not_change_the_numbers(case):
    assert run(case, ["pixel-f1", "image-auc"], batch_size=1) == pytest.approx(run(case, ["pixel-f1", "image-auc"], batch_size=5))


def test_cuda_only_lines_are_restored_after_a_run(case):
    from IMDLBenCo.training_scripts.utils import misc

    before = (torch.cuda.synchronize, misc.all_reduce_mean, misc.SmoothedValue.synchronize_between_processes)
    run(case, ["pixel-f1"])
    assert (torch.cuda.synchronize, misc.all_reduce_mean, misc.SmoothedValue.synchronize_between_processes) == before

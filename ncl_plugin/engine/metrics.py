"""The metrics: ``--metrics`` names, the evaluator IMDL-BenCo lacks, and the rule that picks a run's best epoch.

IMDL-BenCo's fixed-threshold pixel F1 is the number to cite. A model early in
training (or trained on other data) can rank pixels well while its
probabilities sit on the wrong side of 0.5; the best-threshold F1, which many
IML papers print beside the fixed one as "optimal F1", shows that. It is an
upper bound that looks at the ground truth to pick each image's threshold, so
it is reported under its own name and never replaces the fixed-threshold F1.
"""

import functools
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist
from IMDLBenCo.evaluation import AbstractEvaluator

from ncl_plugin.config import closest
from ncl_plugin.errors import UsageError


def best_threshold_f1(predict: torch.Tensor, mask: torch.Tensor, shape_mask=None) -> torch.Tensor:
    """(B, 1, H, W) probabilities and masks -> (B,) F1 at each image's best threshold.

    Exact: every cut between two distinct scores is tried (tied scores fall on the
    same side of any threshold). An image without tampered pixels scores 0, as in
    IMDL-BenCo's PixelF1; pixels outside ``shape_mask`` (padding) are ignored.
    """
    scores = predict.detach().flatten(1).float()
    target = (mask.flatten(1) > 0.5).float()
    valid = torch.ones_like(target, dtype=torch.bool) if shape_mask is None else shape_mask.flatten(1) > 0
    scores = scores.masked_fill(~valid, -float("inf"))
    target = target * valid
    ordered, order = scores.sort(dim=1, descending=True)
    hits = target.gather(1, order).cumsum(dim=1)
    predicted = torch.arange(1, scores.shape[1] + 1, device=scores.device, dtype=scores.dtype)
    positives = target.sum(dim=1, keepdim=True)
    f1 = 2 * hits / (predicted + positives)
    cut = torch.ones_like(ordered, dtype=torch.bool)
    cut[:, :-1] = ordered[:, 1:] != ordered[:, :-1]
    cut &= torch.isfinite(ordered)
    best = torch.where(cut, f1, torch.zeros_like(f1)).amax(dim=1)
    return torch.where(positives[:, 0] > 0, best, torch.zeros_like(best))


class PerImagePixelMetric(AbstractEvaluator):
    """A pixel metric given per image by ``batch_update``, which IMDL-BenCo's loop averages: nothing kept
    between batches, nothing added at the epoch's end."""

    def remain_update(self, predict, mask, shape_mask=None, *args, **kwargs):
        return self.batch_update(predict, mask, shape_mask)

    def epoch_update(self):
        return None

    def recovery(self):
        return None


class PixelF1BestThreshold(PerImagePixelMetric):
    """Per-image pixel F1 at that image's best threshold, averaged like IMDL-BenCo's PixelF1."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "pixel-level F1 (best threshold)"
        self.desc = "pixel-level F1 at each image's best threshold (not the fixed-threshold F1 to cite)"

    def batch_update(self, predict, mask, shape_mask=None, *args, **kwargs):
        self._check_pixel_level_params(predict, mask)
        return best_threshold_f1(predict, mask, shape_mask)


class FlaggedShare(PerImagePixelMetric):
    """The share of an image's pixels above ``threshold`` (padding left out): on an authentic image, its
    false-positive rate."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold
        self.name = f"flagged share at {threshold:g}"
        self.desc = f"share of the pixels above {threshold:g}"

    def batch_update(self, predict, mask, shape_mask=None, *args, **kwargs):
        flagged = predict.detach().flatten(1).float() > self.threshold
        valid = torch.ones_like(flagged) if shape_mask is None else shape_mask.flatten(1) > 0
        return (flagged & valid).sum(1).double() / valid.sum(1).clamp(min=1).double()


def keeps_sums(evaluator: AbstractEvaluator) -> bool:
    """Whether a pixel evaluator keeps its own sums (its ``batch_update`` returns None, as most of the numpy-2
    line's do) or gives one value per image (the 0.1.x line's, and this module's). Asked of the evaluator
    itself, on one small image, before it has seen any: the answer holds the same on every process."""
    predict = torch.tensor([[[[0.9, 0.1], [0.2, 0.3]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    kept = evaluator.batch_update(predict, mask) is None
    evaluator.recovery()
    return kept


class OverTamperedImages(AbstractEvaluator):
    """A per-image pixel metric averaged over the images that hold tampered pixels only (``authentic``: over
    the images that hold none, for a false-positive rate; no figure at all when there are none).

    IMDL-BenCo 0.1.x averages its pixel metrics over every test image, and an
    authentic image scores 0 (F1, IoU, AUC): a test list that holds authentic
    images (what `benco data` writes without --tampered_only) would halve
    the figure with no word. The protocols mean pixel metrics over the
    tampered images and image-level metrics over all; on a list of tampered
    images only, this is IMDL-BenCo's own figure, to the last digit.

    IMDL-BenCo's loop counts every image of a batch in a pixel metric's
    mean, so the mean is kept here and given once per epoch, as its
    image-level metrics are (summed over processes under torchrun).

    IMDL-BenCo's numpy-2 line (imdlbenco13 0.2.x) averages most pixel metrics
    over the tampered images itself: there ``batch_update`` returns None and
    the evaluator keeps its own sums, so it is left to them (same images, same
    mean; :mod:`ncl_plugin.engine.imdlbenco_line`). Its ``remain_update`` adds
    the shared tail on every process; here only the first one hands it over.
    """

    def __init__(self, inner: AbstractEvaluator, authentic: bool = False) -> None:
        super().__init__()
        self.inner = inner
        self.authentic = authentic
        self.name = inner.name
        self.desc = f"{inner.desc}, over the {'authentic' if authentic else 'tampered'} images"
        self.inner_keeps_sums = keeps_sums(inner)
        self.recovery()

    def _add(self, values, mask, weight: float) -> None:
        values = torch.as_tensor(values, dtype=torch.float64).flatten().cpu()
        tampered = (mask.flatten(1) > 0.5).any(dim=1).cpu()
        chosen = ~tampered if self.authentic else tampered
        self.totals += weight * torch.stack([values[chosen].sum(), tampered.sum().double(), (~tampered).sum().double()])

    def _handed(self, values, mask, weight: float) -> None:
        if self.inner_keeps_sums:  # values is None: the evaluator keeps its own sums over the same images
            values = torch.zeros(mask.shape[0], dtype=torch.float64)
        self._add(values, mask, weight)

    def batch_update(self, predict, mask, shape_mask=None, *args, **kwargs):
        self._handed(self.inner.batch_update(predict, mask, shape_mask), mask, 1.0)
        return None

    def remain_update(self, predict, mask, shape_mask=None, *args, **kwargs):
        # every process tests the same tail of the set: each adds its share
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if self.inner_keeps_sums and world > 1 and dist.get_rank() > 0:
            values = None  # an evaluator that keeps sums would count the tail once per process: the first adds it
        else:
            values = self.inner.remain_update(predict, mask, shape_mask)
        self._handed(values, mask, 1.0 / world)
        return None

    def epoch_update(self):
        totals = self.totals.clone()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            from ncl_plugin.engine.compat import collective_device

            totals = totals.to(collective_device())
            dist.all_reduce(totals)
            totals = totals.cpu()
        self.authentic_images = int(round(totals[2].item()))
        own = totals[2] if self.authentic else totals[1]
        # the inner evaluator's own epoch_update reduces over processes itself: every process calls it
        kept = self.inner.epoch_update() if self.inner_keeps_sums else None
        if own == 0:
            # IMDL-BenCo's loop needs a figure from every evaluator: NaN for a rate over no authentic
            # image, which evaluate() leaves out; 0 for a metric over no tampered one, as IMDL-BenCo gives
            return float("nan") if self.authentic else 0.0
        return float(kept) if kept is not None else float(totals[0] / own)

    def recovery(self):
        self.totals = torch.zeros(3, dtype=torch.float64)
        self.inner.recovery()


def _imdlbenco(class_name: str, **kwargs) -> Callable[[], AbstractEvaluator]:
    def make():
        from IMDLBenCo import evaluation

        return getattr(evaluation, class_name)(**kwargs)

    return make


def _tampered_only(make: Callable[[], AbstractEvaluator]) -> Callable[[], AbstractEvaluator]:
    return lambda: OverTamperedImages(make())


def authentic_fpr() -> AbstractEvaluator:
    """The share of an authentic image's pixels above 0.5, averaged over the authentic images: IMDL-BenCo's
    PixelFPR where the installed line has it (imdlbenco13 0.2.x), the same figure computed here where it has
    not (0.1.x). Lower is better; no figure on a test set without an authentic image."""
    from IMDLBenCo import evaluation

    has = hasattr(evaluation, "PixelFPR")
    evaluator = OverTamperedImages(
        evaluation.PixelFPR(threshold=0.5, mode="origin") if has else FlaggedShare(0.5), authentic=True
    )
    evaluator.name = "pixel-level FPR"
    evaluator.desc = "share of an authentic image's pixels above 0.5, over the authentic images"
    return evaluator


def is_false_alarm_rate(name: str) -> bool:
    """A metric that is best low (a false-positive rate)."""
    return "FPR" in name


# ``--metrics`` names -> evaluator factories. The image-level metrics need test sets that hold
# authentic images too (IMDL-BenCo's image-level protocol).
# Pixel metrics are means over the tampered images (OverTamperedImages).
EVALUATORS: Dict[str, Callable[[], AbstractEvaluator]] = {
    "pixel-f1": _tampered_only(_imdlbenco("PixelF1", threshold=0.5, mode="origin")),
    "pixel-f1-best": _tampered_only(PixelF1BestThreshold),
    "pixel-auc": _tampered_only(_imdlbenco("PixelAUC", threshold=0.5, mode="origin")),
    "pixel-iou": _tampered_only(_imdlbenco("PixelIOU", threshold=0.5, mode="origin")),
    "pixel-acc": _tampered_only(_imdlbenco("PixelAccuracy", threshold=0.5, mode="origin")),
    "pixel-fpr": authentic_fpr,
    "image-f1": _imdlbenco("ImageF1", threshold=0.5),
    "image-auc": _imdlbenco("ImageAUC", threshold=0.5),
    "image-acc": _imdlbenco("ImageAccuracy", threshold=0.5),
}


CHOSEN_PIXEL_F1 = "pixel-level F1 (validation threshold)"
CHOSEN_IMAGE_F1 = "image-level F1 (validation threshold)"
CHOSEN_AUTHENTIC_FPR = "authentic FPR (validation threshold)"


def chosen_threshold_evaluators(chosen: Dict, image_threshold: Optional[float]) -> list:
    """F1 at the thresholds `benco calibrate` chose on a validation list (engine/thresholds.py), named apart
    from IMDL-BenCo's F1 at 0.5, which stays the column to cite, and the share of an authentic image's
    pixels the pixel threshold flags (on a test set that holds authentic images). ``image_threshold``: the
    one chosen for the image score in use (thresholds.image_threshold_for), or None."""
    from IMDLBenCo import evaluation

    pixel = OverTamperedImages(evaluation.PixelF1(threshold=chosen["pixel_threshold"], mode="origin"))
    pixel.name = CHOSEN_PIXEL_F1
    pixel.desc = f"pixel-level F1 at {chosen['pixel_threshold']:.2f}, chosen on {chosen.get('chosen_on')}"
    fpr = OverTamperedImages(FlaggedShare(chosen["pixel_threshold"]), authentic=True)
    fpr.name = CHOSEN_AUTHENTIC_FPR
    found = [pixel, fpr]
    if image_threshold is not None:
        image = evaluation.ImageF1(threshold=image_threshold)
        image.name = CHOSEN_IMAGE_F1
        found.append(image)
    return found


def is_image_level(evaluator: AbstractEvaluator) -> bool:
    """An image-level metric: it reads the images' labels, and means nothing without authentic ones."""
    return evaluator.name.startswith("image-level")


@functools.lru_cache(maxsize=None)
def _logged_names() -> Dict[str, str]:
    return {metric: make().name for metric, make in EVALUATORS.items()}


def evaluator_name(metric: str) -> str:
    """The name a ``--metrics`` entry is logged under: 'pixel-f1-best' -> 'pixel-level F1 (best threshold)'.
    Anything that is not a ``--metrics`` name is returned unchanged."""
    return _logged_names().get(metric, metric)


def short_names() -> Dict[str, str]:
    """Logged name -> ``--metrics`` name, for one-line summaries: 'pixel-level F1' -> 'pixel-f1'."""
    return {logged: metric for metric, logged in _logged_names().items()}


def parse_metrics(text: str) -> List[str]:
    """``--metrics``: a comma list of names in EVALUATORS."""
    names = [m.strip() for m in str(text).split(",") if m.strip()]
    for name in names:
        if name not in EVALUATORS:
            raise UsageError(
                f"--metrics {text}: unknown metric {name!r}{closest(name, EVALUATORS)} (known: {', '.join(EVALUATORS)})"
            )
    if not names:
        raise UsageError("--metrics: name at least one metric, e.g. pixel-f1")
    return names


def evaluator_factory(metrics: List[str]) -> Callable[[], list]:
    """Fresh evaluators for each test set (they keep state between batches)."""
    return lambda: [EVALUATORS[name]() for name in metrics]


# ---------------------------------------------------------------- the best epoch
SELECTION_RULE = "the epoch with the best mean of all test metrics over all test sets (IMDL-BenCo's rule)"
# A false-positive rate is best low: it stays out of that mean (IMDL-BenCo's rule has none to weigh).


def mean_metrics(results: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """{test set: {metric: value}} -> {metric: mean over the test sets}."""
    metrics = {m for per_set in results.values() for m in per_set}
    return {m: float(np.mean([per_set[m] for per_set in results.values() if m in per_set])) for m in sorted(metrics)}


def selection_score(results: Dict[str, Dict[str, float]]) -> float:
    """What SELECTION_RULE maximises: the mean over metrics of each metric's mean over test sets."""
    return float(np.mean([v for m, v in mean_metrics(results).items() if not is_false_alarm_rate(m)]))


def best_epoch(tested: Dict[int, Dict[str, Dict[str, float]]]) -> Optional[int]:
    """The epoch SELECTION_RULE picks from {epoch: {test set: {metric: value}}}; the earliest on a tie."""
    if not tested:
        return None
    return max(sorted(tested), key=lambda epoch: selection_score(tested[epoch]))

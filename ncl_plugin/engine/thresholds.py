"""Decision thresholds chosen on a validation list, carried beside the checkpoint they were chosen for.

IMDL-BenCo cites pixel F1 at a fixed 0.5. A model trained from scratch ranks pixels well with
probabilities that sit under 0.5 (F1 0.16 at 0.5, 0.34 at the best threshold on CASIA v1.0), so the
masks a user acts on waste most of what it ranks. ``benco calibrate`` picks, on a validation list,
the pixel threshold and, for every image score, the image threshold that maximises image-level F1;
``threshold.json`` keeps them with the names of the images they were chosen on, so that ``benco test``
never reports a threshold on the images that chose it, and ``benco predict`` draws its overlays and
verdicts with them.

The pixel threshold must hold on authentic photographs too: the one that maximises IMDL-BenCo's pixel F1
over the tampered images alone costs nothing for what it flags on an authentic photograph, and on CASIA
v1.0 such thresholds sat at 0.06 to 0.24. So it is the threshold with the best pixel F1 over the tampered
validation images among those that flag at most ``max_authentic_fpr`` (by default 5 %) of an authentic
validation image's pixels, on average. The rule reads as a promise a user can check (how much of an
authentic photograph turns red), where a pooled F1 would weigh authentic images by the validation list's
mix and size. Without authentic validation images the rate cannot be measured: the tampered images alone
choose, and the record says so.
"""

import json
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from IMDLBenCo.evaluation import AbstractEvaluator

from ncl_plugin.errors import UsageError
from ncl_plugin.method.image_score import IMAGE_SCORES, image_score

RECORD = "threshold.json"
# Pixel thresholds tried: 0.01, 0.02, ..., 0.99. Probabilities are binned between them, so the sweep
# costs one histogram per image whatever the image size.
STEPS = 100
GRID = torch.arange(1, STEPS) / STEPS
MAX_AUTHENTIC_FPR = 0.05
RULE_CEILING = "best pixel F1 over the tampered images among the thresholds that flag at most {:.0%} of an authentic image's pixels"
RULE_TAMPERED = "best pixel F1 over the tampered images (no authentic validation image to bound false positives)"


class ThresholdSweep(AbstractEvaluator):
    """Pixel F1 of every tampered image at every threshold of GRID, and every image's score and label.

    After the epoch, ``pixel_f1`` is the (len(GRID),) mean over tampered images of IMDL-BenCo's
    per-image F1 at each threshold, ``authentic_fpr`` the mean over authentic images (no tampered pixel) of
    the share of their pixels above each threshold (None without such images), ``scores`` and ``labels`` the image-level scores (the model's
    ``pred_label``) and labels, and ``candidates`` every --image_score's scores of the same images, so that
    one pass over the validation list compares them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.name = "threshold sweep"
        self.desc = "pixel F1 at every threshold, image scores"
        self.pixel_f1: Optional[torch.Tensor] = None
        self.authentic_fpr: Optional[torch.Tensor] = None
        self.scores = self.labels = None
        self.candidates: Dict[str, torch.Tensor] = {}  # kept, as the scores are, when the loop resets the lists
        self.recovery()

    def batch_update(self, predict, mask, shape_mask=None, predict_label=None, label=None, *args, **kwargs):
        probability = predict.detach().float().flatten(1).clamp(0, 1)
        target = mask.flatten(1) > 0.5
        valid = torch.ones_like(target) if shape_mask is None else shape_mask.flatten(1) > 0
        # bin i holds the pixels above exactly i thresholds of GRID (IMDL-BenCo predicts "p > threshold")
        bins = torch.bucketize(probability, GRID.to(probability.device))
        every = torch.zeros(len(bins), STEPS).scatter_add_(1, bins, valid.float())
        tampered = torch.zeros(len(bins), STEPS).scatter_add_(1, bins, (valid & target).float())
        # pixels above threshold k / STEPS: the bins from k up
        predicted = every.flip(1).cumsum(1).flip(1)[:, 1:]
        hits = tampered.flip(1).cumsum(1).flip(1)[:, 1:]
        positives = (valid & target).sum(1, keepdim=True).float()
        f1 = 2 * hits / (predicted + positives).clamp(min=1)
        keep = positives[:, 0] > 0
        self.f1_sum += f1[keep].sum(0).double()
        self.tampered_images += int(keep.sum())
        authentic = ~keep & (valid.sum(1) > 0)
        share = predicted / valid.sum(1, keepdim=True).float().clamp(min=1)
        self.fpr_sum += share[authentic].sum(0).double()
        self.authentic_images += int(authentic.sum())
        if predict_label is not None and label is not None:
            self.score_list.append(predict_label.detach().float().flatten().cpu())
            self.label_list.append(label.detach().flatten().cpu())
            for kind in IMAGE_SCORES:
                self.candidate_lists[kind].append(image_score(probability, kind).cpu())  # (B, H*W): flat already
        return None

    def remain_update(self, *args, **kwargs):
        return self.batch_update(*args, **kwargs)

    def epoch_update(self):
        self.pixel_f1 = self.f1_sum / max(self.tampered_images, 1)
        self.images_with_tampering = self.tampered_images
        self.authentic_fpr = self.fpr_sum / self.authentic_images if self.authentic_images else None
        self.images_without_tampering = self.authentic_images
        if self.score_list:
            self.scores, self.labels = torch.cat(self.score_list), torch.cat(self.label_list)
            self.candidates = {kind: torch.cat(parts) for kind, parts in self.candidate_lists.items()}
        return float(self.pixel_f1.max())

    def recovery(self):
        self.f1_sum = torch.zeros(STEPS - 1, dtype=torch.float64)
        self.tampered_images = 0
        self.fpr_sum = torch.zeros(STEPS - 1, dtype=torch.float64)
        self.authentic_images = 0
        self.score_list, self.label_list = [], []
        self.candidate_lists: Dict[str, List[torch.Tensor]] = {kind: [] for kind in IMAGE_SCORES}


def _at(curve: Optional[torch.Tensor], index: int) -> Optional[float]:
    return None if curve is None else float(curve[index])


def best_pixel_threshold(
    pixel_f1: torch.Tensor, authentic_fpr: Optional[torch.Tensor] = None, max_authentic_fpr: float = MAX_AUTHENTIC_FPR
) -> Dict:
    """The threshold of GRID with the highest mean pixel F1 over the tampered images (the lowest such on a tie)
    among those whose mean authentic false-positive rate is at most ``max_authentic_fpr``; every threshold
    when ``authentic_fpr`` is None. Where none keeps under the ceiling, the one that flags the least
    (``ceiling_met`` False). Returns the threshold, the rule, F1 and the rate there and at 0.5, and the
    threshold the tampered images alone would choose, with its figures."""
    half = int(torch.argmin((GRID - 0.5).abs()))
    unbounded = int(torch.argmax(pixel_f1))  # argmax returns the first maximum
    met = True
    if authentic_fpr is None:
        index, rule = unbounded, RULE_TAMPERED
    else:
        rule = RULE_CEILING.format(max_authentic_fpr)
        allowed = authentic_fpr <= max_authentic_fpr + 1e-12
        if allowed.any():
            index = int(torch.argmax(torch.where(allowed, pixel_f1, torch.full_like(pixel_f1, -1.0))))
        else:
            index, met = int(torch.argmin(authentic_fpr)), False
    return {
        "threshold": round(float(GRID[index]), 4),
        "rule": rule,
        "max_authentic_fpr": None if authentic_fpr is None else max_authentic_fpr,
        "ceiling_met": met,
        "f1": float(pixel_f1[index]),
        "f1_at_0.5": float(pixel_f1[half]),
        "authentic_fpr": _at(authentic_fpr, index),
        "authentic_fpr_at_0.5": _at(authentic_fpr, half),
        "tampered_only": {
            "threshold": round(float(GRID[unbounded]), 4),
            "f1": float(pixel_f1[unbounded]),
            "authentic_fpr": _at(authentic_fpr, unbounded),
        },
    }


def image_f1(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> float:
    """IMDL-BenCo's image-level F1: the tampered class's F1 with score > threshold as 'tampered'."""
    predicted = (scores > threshold).float()
    labels = labels.float()
    tp = float((predicted * labels).sum())
    fp, fn = float((predicted * (1 - labels)).sum()), float(((1 - predicted) * labels).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def best_image_threshold(scores: torch.Tensor, labels: torch.Tensor) -> Optional[Dict[str, float]]:
    """The cut between two distinct image scores with the highest image-level F1; None without both
    tampered and authentic images (an image threshold needs both to mean anything)."""
    if scores is None or labels.min() == labels.max():
        return None
    distinct = torch.unique(scores)
    cuts = torch.cat([distinct[:1] - 1e-6, (distinct[1:] + distinct[:-1]) / 2])
    values = [image_f1(scores, labels, float(c)) for c in cuts]
    best = max(range(len(cuts)), key=lambda i: values[i])
    return {"threshold": float(cuts[best]), "f1": values[best], "f1_at_0.5": image_f1(scores, labels, 0.5)}


def compare_image_scores(candidates: Dict[str, torch.Tensor], labels: torch.Tensor) -> Dict[str, Dict[str, float]]:
    """Each --image_score's image-level AUC, and its own image threshold with the F1 there and at 0.5, on the
    same images: {kind: {auc, threshold, f1, f1_at_0.5}}; empty without both tampered and authentic images."""
    from sklearn.metrics import roc_auc_score

    if not candidates or labels is None or labels.min() == labels.max():
        return {}
    compared = {}
    for kind, scores in candidates.items():
        best = best_image_threshold(scores, labels)
        compared[kind] = {"auc": float(roc_auc_score(labels.numpy(), scores.numpy())), **best}
    return compared


def image_threshold_for(entry: Optional[Dict], kind: Optional[str], record: str = RECORD) -> Optional[float]:
    """The image threshold ``benco calibrate`` chose for the image score ``kind`` (None: the model's own
    pred_label), or None when it chose none (a validation list without both kinds of image). A threshold
    is never applied to another score than the one it was chosen for: a record that holds image thresholds,
    none of them for ``kind``, is an error saying what to do."""
    if not entry:
        return None
    per_score = entry.get("image_thresholds") or {}
    if kind in per_score:
        return per_score[kind]["threshold"]
    if entry.get("image_threshold") is None:
        return None
    if entry.get("image_score") == kind:
        return entry["image_threshold"]
    chosen_for = ", ".join(per_score) or str(entry.get("image_score") or "the model's own score")
    raise UsageError(
        f"{record}: its image threshold was chosen for --image_score {chosen_for}, not {kind}; run benco "
        f"calibrate again (it records one for every score), or pass --image_score {entry.get('image_score')}"
    )


# ---------------------------------------------------------------- the record beside the checkpoint
def record_path(checkpoint: str) -> Path:
    return Path(checkpoint).parent / RECORD


def image_names(dataset) -> List[str]:
    """The file names of a dataset's images (IMDL-BenCo's JsonDataset and ManiDataset keep their paths)."""
    paths = getattr(dataset, "tp_path", None)
    if paths is None:
        raise UsageError("the list's image paths could not be read: give a JsonDataset list or a Tp/ Gt/ folder")
    return sorted(os.path.basename(str(p)) for p in paths)


def write_record(checkpoint: str, entry: Dict) -> Path:
    """threshold.json beside ``checkpoint``, one entry per checkpoint file; the run's summary.json gets a copy."""
    path = record_path(checkpoint)
    record = json.loads(path.read_text()) if path.is_file() else {}
    record[Path(checkpoint).name] = entry
    _write_json(path, record)
    summary = path.parent / "summary.json"
    if summary.is_file():
        data = json.loads(summary.read_text())
        data.setdefault("thresholds", {})[Path(checkpoint).name] = {k: v for k, v in entry.items() if k != "images"}
        _write_json(summary, data)
    return path


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def read_record(checkpoint: str) -> Optional[Dict]:
    """The thresholds chosen for this checkpoint file, or None."""
    path = record_path(checkpoint)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get(Path(checkpoint).name)
    except (json.JSONDecodeError, AttributeError):
        raise UsageError(f"{path}: not a threshold record of benco calibrate; remove it or calibrate again") from None


def overlap(entry: Dict, names: Iterable[str]) -> List[str]:
    """The images of ``names`` the thresholds were chosen on."""
    return sorted(set(entry.get("images", [])) & set(names))


def chosen_for(checkpoint: str, score: Optional[str]) -> Tuple[Optional[Dict], Optional[float]]:
    """(the thresholds `benco calibrate` chose for ``checkpoint`` or None, the image threshold of the image
    score ``score`` or None): an image threshold chosen for another score is an error (image_threshold_for)."""
    chosen = read_record(checkpoint)
    return chosen, image_threshold_for(chosen, score, str(record_path(checkpoint)))

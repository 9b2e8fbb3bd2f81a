"""Guards on learning itself: both networks can memorise one fixed batch of real manipulations.

A model that cannot overfit a handful of images has a bug (a detached loss, a head
that cannot reach both sides of 0.5, a broken target resize), whatever its metrics
elsewhere say. The batch comes from the embedded generator, so the traces are the
ones the quickstart trains on.
"""
import numpy as np
import pytest
import torch

from ncl_plugin import NCL, DeepLabV3Plus
from ncl_plugin.data import synthetic

SIZE, IMAGES, STEPS = 64, 4, 150  # both models pass 0.9 after about 100 steps
F1_BAR = 0.9  # pixel F1 at IMDL-BenCo's fixed 0.5 threshold on the memorised batch
# The end-to-end run: the quickstart recipe with 4 of its 9 epochs (about 3 minutes on 2 cores).
SHORT_EPOCHS = 4
AUC_MARGIN = 0.03


@pytest.fixture(scope="module")
def batch():
    images, masks = synthetic.fixed_batch(SIZE, IMAGES)
    return torch.from_numpy(images), torch.from_numpy(masks)


def pixel_f1(probabilities, masks):
    predicted = (probabilities > 0.5).float()
    hits = (predicted * masks).sum(dim=(1, 2, 3))
    return (2 * hits / (predicted.sum(dim=(1, 2, 3)) + masks.sum(dim=(1, 2, 3)))).mean().item()


@pytest.mark.parametrize("model_class", [NCL, DeepLabV3Plus], ids=["ncl", "deeplabv3plus"])
def test_memorises_one_fixed_batch(batch, model_class):
    images, masks = batch
    model = model_class(backbone="resnet10t", output_stride=16, decoder_channels=64, patch_size=16)  # the quickstart's
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(STEPS):
        out = model(images, masks)
        optimizer.zero_grad()
        out["backward_loss"].backward()
        optimizer.step()
        losses.append(out["visual_loss"]["pc"].item())
    model.eval()
    with torch.no_grad():
        f1 = pixel_f1(model(images)["pred_mask"], masks)
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5]), losses[::10]
    assert f1 >= F1_BAR, (f1, losses[::10])


def residual_auc(test_list):
    """A detector with nothing learned: the absolute residual of a 3x3 median filter, box-averaged
    over 9x9, lower = tampered (the manipulations of the embedded set smooth the sensor noise).
    Mean per-image pixel AUC over the list's (tampered) images, IMDL-BenCo's convention."""
    import json

    import cv2
    from sklearn.metrics import roc_auc_score

    scores = []
    for image_path, mask_path in json.loads(test_list.read_text()):
        image = cv2.imread(image_path)
        truth = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE) > 127
        residual = np.abs(image.astype(np.float32) - cv2.medianBlur(image, 3)).mean(axis=2)
        scores.append(roc_auc_score(truth.flatten(), -cv2.blur(residual, (9, 9)).flatten()))
    return float(np.mean(scores))


@pytest.mark.slow
def test_short_quickstart_run_beats_a_hand_made_trace_detector(tmp_path):
    """`benco train --model ncl`, the quickstart recipe on the embedded set, with a shorter schedule."""
    import json

    from helpers import benco

    out = tmp_path / "run"
    benco("train", "--model", "ncl", "--epochs", str(SHORT_EPOCHS), "--test_period", str(SHORT_EPOCHS),
          "--output_dir", out, env={"NCL_CACHE_DIR": str(tmp_path / "cache")}, timeout=1200)
    metrics = json.loads((out / "summary.json").read_text())["last"]["synthetic"]
    (dataset,) = (tmp_path / "cache").glob("synthetic-*")
    baseline = residual_auc(dataset / "test.json")
    print(f"test pixel AUC {metrics['pixel-level AUC']:.3f} (hand-made residual {baseline:.3f}), F1 {metrics['pixel-level F1']:.3f}")
    assert metrics["pixel-level AUC"] > baseline + AUC_MARGIN, (metrics, baseline)
    assert metrics["pixel-level F1"] > 0.2, metrics


def test_segformer_memorises_one_fixed_batch_at_its_recipe_learning_rate(batch, tmp_path):
    """benco bench trains IMDL-BenCo's segformer at its recipe's lr (1e-4): it must memorise there."""
    from ncl_plugin import zoo
    from ncl_plugin.commands import zoo_models

    images, masks = batch
    torch.manual_seed(0)
    model, _ = zoo_models.build("segformer", SIZE, tmp_path)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=zoo.recipe("segformer").lr)
    for _ in range(STEPS):
        out = model(image=images, mask=masks)
        optimizer.zero_grad()
        out["backward_loss"].backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        f1 = pixel_f1(model(image=images, mask=masks)["pred_mask"], masks)
    assert f1 >= F1_BAR, f1

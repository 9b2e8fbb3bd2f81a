"""NCL learns: on a few synthetic splices, a short CPU run lowers the loss and localises them."""
import torch
import torch.nn.functional as F

from ncl_plugin import NCL

SIZE, IMAGES, STEPS, BATCH = 96, 8, 40, 4
F1_BAR = 0.7  # training-set pixel F1 at threshold 0.5 after STEPS steps; an untrained model scores ~0.3


def splices(generator):
    """Smooth backgrounds with a rectangle of fine noise pasted in: the noise is the tampered region."""
    base = F.interpolate(torch.rand(IMAGES, 3, SIZE // 8, SIZE // 8, generator=generator), size=(SIZE, SIZE), mode="bilinear")
    noise = torch.rand(IMAGES, 3, SIZE, SIZE, generator=generator)
    masks = torch.zeros(IMAGES, 1, SIZE, SIZE)
    for i in range(IMAGES):
        h, w = torch.randint(SIZE // 3, SIZE // 2 + 8, (2,), generator=generator).tolist()
        top, left = (torch.randint(0, SIZE - s, (1,), generator=generator).item() for s in (h, w))
        masks[i, :, top : top + h, left : left + w] = 1
    images = base * (1 - masks) + noise * masks
    return (images - 0.45) / 0.25, masks


def pixel_f1(pred, mask):
    tp = (pred * mask).sum(dim=(1, 2, 3))
    fp = (pred * (1 - mask)).sum(dim=(1, 2, 3))
    fn = ((1 - pred) * mask).sum(dim=(1, 2, 3))
    return (2 * tp / (2 * tp + fp + fn + 1e-8)).mean().item()


def test_short_run_lowers_the_loss_and_localises_the_splices():
    images, masks = splices(torch.Generator().manual_seed(0))
    model = NCL(backbone="resnet18", patch_size=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for _ in range(STEPS):
        index = torch.randperm(IMAGES)[:BATCH]
        out = model(images[index], masks[index])
        optimizer.zero_grad()
        out["backward_loss"].backward()
        optimizer.step()
        history.append({k: v.item() for k, v in out["visual_loss"].items()})

    first = sum(h["total"] for h in history[:3]) / 3
    last = sum(h["total"] for h in history[-3:]) / 3
    assert last < 0.5 * first, (first, last)
    # Every NCL term took part in training.
    for term in ("ncl_pn", "ncl_se_pos", "ncl_se_neg"):
        assert any(h[term] > 0 for h in history), term

    model.eval()
    with torch.no_grad():
        untrained = NCL(backbone="resnet18", patch_size=16).eval()
        before = pixel_f1((untrained(images)["pred_mask"] > 0.5).float(), masks)
        after = pixel_f1((model(images)["pred_mask"] > 0.5).float(), masks)
    print(f"loss {first:.3f} -> {last:.3f}; pixel F1 {before:.3f} -> {after:.3f}")
    assert after >= F1_BAR, (before, after)
    assert after > before + 0.2

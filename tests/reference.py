"""Independent, loop-by-loop NumPy versions of NCL's losses, written from the method text."""
import numpy as np


def e(a, b, tau):
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return np.exp(cos / tau)


def term_pn(features, classes, tau, tampered=1, authentic=0):
    """Per image: mean over anchors m and positives j != m, or None when undefined."""
    P = [f for f, c in zip(features, classes) if c == tampered]
    N = [f for f, c in zip(features, classes) if c == authentic]
    if len(P) < 2 or not N:
        return None
    losses = []
    for m, pm in enumerate(P):
        for j, pj in enumerate(P):
            if j == m:
                continue
            pos = e(pm, pj, tau)
            losses.append(-np.log(pos / (pos + sum(e(pm, n, tau) for n in N))))
    return float(np.mean(losses))


def term_se(vector, features, classes, tau, positive, negative):
    """se+ with (positive, negative) = (tampered, authentic); se- with them swapped."""
    pos_set = [f for f, c in zip(features, classes) if c == positive]
    neg_set = [f for f, c in zip(features, classes) if c == negative]
    if not pos_set or not neg_set:
        return None
    losses = []
    for p in pos_set:
        num = e(vector, p, tau)
        losses.append(-np.log(num / (num + sum(e(vector, n, tau) for n in neg_set))))
    return float(np.mean(losses))


def _vector(cube, space):
    """A (C, h, w) cube as the vector the similarities compare: pooled to C, or flattened."""
    v = cube.mean(axis=(1, 2)) if space == "pooled" else cube.reshape(-1)
    return v / max(np.linalg.norm(v), 1e-12)


def normalise(y, eps, norm, axes_batch):
    """GroupNorm with one group (each map by its own mean and variance over channels and positions)
    or BatchNorm with training statistics (each channel over ``axes_batch``); unit affine both."""
    if norm == "group":
        axes = tuple(range(1, y.ndim)) if y.ndim == 4 else None
        mean, var = y.mean(axis=axes, keepdims=True), y.var(axis=axes, keepdims=True)
    else:
        mean, var = y.mean(axis=axes_batch, keepdims=True), y.var(axis=axes_batch, keepdims=True)
    return (y - mean) / np.sqrt(var + eps)


def branch(pivots, weight, eps=1e-5, space="pooled", norm="group"):
    """Conv1x1 -> GroupNorm(1) or BatchNorm (training statistics) -> ReLU -> pooled or flattened -> L2 norm.

    pivots: (B, C, h, w); weight: (C, C). Returns (B, D).
    """
    y = np.einsum("oc,bchw->bohw", weight, pivots)
    y = np.maximum(normalise(y, eps, norm, axes_batch=(0, 2, 3)), 0)
    return np.stack([_vector(cube, space) for cube in y])


def branch_each(patches_by_image, weight, eps=1e-5, space="pooled", norm="group"):
    """The paper's concatenated pivot: every contour patch (C, h, w) of every image through
    Conv1x1 -> norm -> ReLU, one at a time (BatchNorm: statistics over all of them; GroupNorm: each
    patch by its own); each image's outputs added up, then pooled or flattened, then L2 norm.
    Returns one vector per image."""
    outputs = [[weight @ patch.reshape(patch.shape[0], -1) for patch in patches] for patches in patches_by_image]
    every = np.concatenate([o for image in outputs for o in image], axis=1)  # (C, N h w)
    mean, var = every.mean(axis=1, keepdims=True), every.var(axis=1, keepdims=True)
    vectors = []
    for patches, image in zip(patches_by_image, outputs):
        if norm == "group":
            total = sum(np.maximum((o - o.mean()) / np.sqrt(o.var() + eps), 0) for o in image)
        else:
            total = sum(np.maximum((o - mean) / np.sqrt(var + eps), 0) for o in image)
        vectors.append(_vector(total.reshape(patches[0].shape), space))
    return vectors


def patch_vectors(feature_map, cells, space):
    """(C, H, W) block-1 map cut into cells x cells patches, raster order, each as a unit vector."""
    _, height, width = feature_map.shape
    return [
        _vector(feature_map[:, i * cells : (i + 1) * cells, j * cells : (j + 1) * cells], space)
        for i in range(height // cells)
        for j in range(width // cells)
    ]


def mean_defined(values):
    defined = [v for v in values if v is not None]
    return (float(np.mean(defined)) if defined else None), bool(defined)


def bce(logit, target):
    p = 1 / (1 + np.exp(-logit))
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def area_resize(mask, factor):
    h, w = mask.shape
    return mask.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def pivot_consistent(logits_by_stage, mask, contour, mu):
    """logits_by_stage: list of (B, h, w) arrays; mask, contour: (B, H, W) full-resolution 0/1 arrays."""
    stage_losses = []
    for logits in logits_by_stage:
        factor = mask.shape[1] // logits.shape[1]
        per_image = []
        for b in range(mask.shape[0]):
            target = area_resize(mask[b], factor)
            on_contour = area_resize(contour[b], factor) > 0
            losses = [[bce(logits[b, i, j], target[i, j]) for j in range(logits.shape[2])] for i in range(logits.shape[1])]
            losses = np.array(losses)
            everywhere = losses.mean()
            if on_contour.any():
                per_image.append(mu * losses[on_contour].mean() + (1 - mu) * everywhere)
            else:
                per_image.append(everywhere)
        stage_losses.append(np.mean(per_image))
    return float(np.mean(stage_losses))

import pytest
import torch
import torch.nn.functional as F

from helpers import rect_mask
from ncl_plugin.method.sampler import (
    AUTHENTIC,
    CONTOUR,
    TAMPERED,
    TriClassPatchSampler,
    classify_patches,
    contour_pixels,
)

A, T, C = AUTHENTIC, TAMPERED, CONTOUR


def test_classes_of_a_hand_drawn_mask():
    # 4x4 grid of 8-pixel patches: a 16x16 square at (8, 8) covers patches
    # (1,1),(1,2),(2,1),(2,2) fully; a 4x4 square at (0, 24) is inside patch (0,3).
    mask = rect_mask(32, 32, (8, 8, 24, 24), (0, 24, 4, 28))
    expected = torch.tensor(
        [
            [A, A, A, C],
            [A, T, T, A],
            [A, T, T, A],
            [A, A, A, A],
        ]
    )
    assert torch.equal(classify_patches(mask, 8)[0], expected)


def test_region_straddling_patches_makes_contour_patches():
    mask = rect_mask(16, 16, (4, 4, 12, 12))  # centred square, 8-pixel patches
    classes = classify_patches(mask, 8)[0]
    assert (classes == C).sum() == 4 and (classes == T).sum() == 0 and (classes == A).sum() == 0


def test_border_that_does_not_fill_a_patch_is_ignored():
    # 20x27 mask, 8-pixel patches: a 2x3 grid; the tampered border row and column are ignored.
    mask = rect_mask(20, 27, (16, 0, 20, 27), (0, 24, 20, 27), (0, 0, 8, 8))
    classes = classify_patches(mask, 8)[0]
    assert classes.shape == (2, 3)
    assert torch.equal(classes, torch.tensor([[T, A, A], [A, A, A]]))


def test_counts_on_a_batch_of_masks_of_odd_size():
    masks = torch.cat(
        [
            rect_mask(36, 44, (0, 0, 36, 44)),  # all tampered
            rect_mask(36, 44),  # authentic
            rect_mask(36, 44, (2, 2, 10, 10), (16, 24, 32, 40)),  # contour + 4 tampered
        ]
    )
    classes = classify_patches(masks, 8)  # grid 4 x 5
    counts = [[int((c == k).sum()) for k in (A, T, C)] for c in classes]
    assert counts[0] == [0, 20, 0]
    assert counts[1] == [20, 0, 0]
    # (2..10, 2..10) touches patches rows 0-1, cols 0-1 partly: 4 contour.
    # (16..32, 24..40) fills rows 2-3 x cols 3-4: 4 tampered.
    assert counts[2] == [12, 4, 4]


def test_soft_mask_is_binarised_before_pooling():
    mask = torch.full((1, 1, 8, 8), 0.9)
    assert classify_patches(mask, 4).eq(T).all()


def test_patch_larger_than_image_is_a_clear_error():
    with pytest.raises(ValueError, match="--patch_size 64 is larger than the image"):
        classify_patches(torch.zeros(1, 1, 32, 32), 64)


@pytest.mark.parametrize("size", [0, 6, 30])
def test_patch_size_must_be_a_multiple_of_4(size):
    with pytest.raises(ValueError, match="--patch_size must be a positive multiple of 4"):
        TriClassPatchSampler(patch_size=size)


def test_contour_pixels_cover_exactly_the_contour_patches():
    classes = torch.tensor([[[A, C], [T, C]]])
    pixels = contour_pixels(classes, 4, (10, 9))
    assert pixels.shape == (1, 1, 10, 9)
    expected = torch.zeros(10, 9)
    expected[0:8, 4:8] = 1
    assert torch.equal(pixels[0, 0], expected)


def test_patch_features_and_pivot_match_a_hand_computation():
    # 16x16 image, 8-pixel patches -> 2x2 grid; features at stride 4 are 4x4, 2x2 cells per patch.
    mask = rect_mask(16, 16, (0, 0, 8, 8), (8, 8, 12, 12))  # patch(0,0) tampered, patch(1,1) contour
    features = torch.randn(1, 3, 4, 4).abs()
    sample = TriClassPatchSampler(patch_size=8)(features, mask)

    assert sample.classes.tolist() == [[T, A, A, C]]
    for index, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        cell = features[0, :, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2]
        expected = F.normalize(cell.mean(dim=(1, 2)), dim=0)
        assert torch.allclose(sample.features[0, index], expected, atol=1e-6)
    assert torch.allclose(sample.pivots[0], features[0, :, 2:4, 2:4])
    assert sample.has_contour.tolist() == [True]


def test_pivot_is_the_mean_of_all_contour_patches_and_zero_without_any():
    mask = torch.cat([rect_mask(16, 16, (0, 0, 4, 16)), rect_mask(16, 16)])  # two contour patches; none
    features = torch.randn(2, 5, 4, 4)
    sample = TriClassPatchSampler(patch_size=8)(features, mask)
    expected = (features[0, :, 0:2, 0:2] + features[0, :, 0:2, 2:4]) / 2
    assert torch.allclose(sample.pivots[0], expected, atol=1e-6)
    assert sample.has_contour.tolist() == [True, False]
    assert sample.pivots[1].abs().sum() == 0


def test_sampler_output_is_float32_under_autocast():
    mask = rect_mask(32, 32, (4, 4, 20, 20))
    features = torch.randn(1, 8, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sample = TriClassPatchSampler(patch_size=8)(features.bfloat16(), mask)
    assert sample.features.dtype == torch.float32 and sample.pivots.dtype == torch.float32

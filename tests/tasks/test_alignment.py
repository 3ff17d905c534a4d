"""Alignment: known scale/shift recovered, the authors' fit-only downsampling, disparity fit, clipping order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marigold_toolkit.core.metrics import EmptyMaskError, align_scale
from marigold_toolkit.tasks.depth import align_depth, align_depth_least_squares, align_depth_least_squares_disparity


def _rand(shape, seed=0, lo=0.1, hi=1.0):
    return (np.random.default_rng(seed).uniform(lo, hi, size=shape)).astype(np.float32)


# ------------------------------------------------------------------------------------------- least squares (depth)


def test_least_squares_recovers_known_scale_and_shift_ignoring_invalid_pixels():
    pred = _rand((7, 9))
    gt = (2.5 * pred + 0.7).astype(np.float32)
    mask = np.ones_like(gt, dtype=bool)
    mask[0, :4] = False
    gt[0, :4] = np.array([0.0, np.nan, np.inf, 1e6], dtype=np.float32)  # garbage where invalid
    aligned, s, t = align_depth_least_squares(pred, gt, mask)
    assert isinstance(s, float) and isinstance(t, float)
    assert s == pytest.approx(2.5, abs=1e-5) and t == pytest.approx(0.7, abs=1e-5)
    assert aligned.dtype == np.float32 and aligned.shape == pred.shape
    # applied to every pixel, valid or not
    np.testing.assert_allclose(aligned, 2.5 * pred + 0.7, atol=1e-5)


def test_least_squares_hand_case_and_coefficients_are_float32_values():
    # pred [0, 1, 2] vs gt [1, 2, 4]: normal equations [[5, 3], [3, 3]] [s t] = [10, 7] -> s = 1.5, t = 5/6
    pred = np.array([[0.0, 1.0, 2.0]], dtype=np.float32)
    gt = np.array([[1.0, 2.0, 4.0]], dtype=np.float32)
    aligned, s, t = align_depth_least_squares(pred, gt, np.ones((1, 3), bool))
    assert s == pytest.approx(1.5, abs=1e-6) and t == pytest.approx(5 / 6, abs=1e-6)
    assert float(np.float32(t)) == t  # the authors' lstsq returns float32 coefficients
    np.testing.assert_allclose(aligned, [[5 / 6, 5 / 6 + 1.5, 5 / 6 + 3.0]], atol=1e-6)


def test_least_squares_max_res_recovers_exact_affine_and_applies_at_full_res():
    pred = _rand((40, 60), seed=1)
    gt = (3.0 * pred - 0.2).astype(np.float32)
    mask = np.ones_like(gt, dtype=bool)
    aligned, s, t = align_depth_least_squares(pred, gt, mask, max_res=10)
    assert s == pytest.approx(3.0, abs=1e-5) and t == pytest.approx(-0.2, abs=1e-5)
    assert aligned.shape == (40, 60)
    np.testing.assert_allclose(aligned, gt, atol=1e-5)


def test_max_res_reproduces_the_authors_width_only_nearest_subsampling():
    # H=4, W=6, max_res=3: factor min(3/4, 3/6) = 0.5. The authors apply nn.Upsample to a [1, H, W] tensor, which
    # resamples the last axis only: the fit sees columns 0, 2, 4 of *all* rows.
    rng = np.random.default_rng(2)
    pred = rng.uniform(0.1, 1, (4, 6)).astype(np.float32)
    gt = rng.uniform(0.1, 5, (4, 6)).astype(np.float32)
    mask = np.ones((4, 6), bool)
    mask[1, 2] = False  # a masked pixel inside the kept columns
    _, s, t = align_depth_least_squares(pred, gt, mask, max_res=3)
    cols = [0, 2, 4]
    sub_p, sub_g, sub_m = pred[:, cols], gt[:, cols], mask[:, cols]
    a = np.stack([sub_p[sub_m], np.ones(sub_m.sum(), np.float32)], axis=1)
    ref = np.linalg.lstsq(a, sub_g[sub_m], rcond=None)[0]
    assert (s, t) == (float(ref[0]), float(ref[1]))
    # and it differs from a fit on the full image
    _, s_full, _ = align_depth_least_squares(pred, gt, mask)
    assert s != s_full


def test_max_res_not_smaller_than_image_means_no_downsampling():
    pred = _rand((5, 6), seed=3)
    gt = _rand((5, 6), seed=4)
    mask = np.ones((5, 6), bool)
    assert align_depth_least_squares(pred, gt, mask, max_res=6)[1:] == align_depth_least_squares(pred, gt, mask)[1:]


def test_max_res_mask_downsampled_to_nothing_is_an_empty_mask():
    pred, gt = _rand((2, 8)), _rand((2, 8), seed=5)
    mask = np.zeros((2, 8), bool)
    mask[:, 1] = True  # only odd column: nearest subsampling by 0.5 keeps columns 0, 2, 4, 6
    with pytest.raises(EmptyMaskError, match="downsampling"):
        align_depth_least_squares(pred, gt, mask, max_res=1)


def test_least_squares_empty_mask_raises():
    with pytest.raises(EmptyMaskError):
        align_depth_least_squares(_rand((3, 3)), _rand((3, 3)), np.zeros((3, 3), bool))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        align_depth_least_squares(_rand((3, 3)), _rand((3, 4)), np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="H, W"):
        align_depth_least_squares(_rand((2, 3, 3)), _rand((2, 3, 3)), np.ones((2, 3, 3), bool))


def test_torch_inputs_come_back_as_tensors_and_leading_dims_are_kept():
    pred = torch.from_numpy(_rand((1, 4, 5)))
    gt = 2 * pred + 1
    aligned, _, _ = align_depth_least_squares(pred, gt, torch.ones(1, 4, 5, dtype=torch.bool))
    assert isinstance(aligned, torch.Tensor) and aligned.dtype == torch.float32 and aligned.shape == (1, 4, 5)
    torch.testing.assert_close(aligned, gt, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------- disparity


def test_disparity_alignment_known_case():
    # gt = 1 / (a * pred + b): the prediction is an affine function of the GT disparity
    a, b = 2.0, 0.5
    pred = np.array([[0.5, 1.0, 2.0], [3.0, 4.0, 0.25]], dtype=np.float32)
    gt = (1.0 / (a * pred + b)).astype(np.float32)
    mask = np.ones_like(gt, dtype=bool)
    depth, s, t = align_depth_least_squares_disparity(pred, gt, mask)
    assert s == pytest.approx(a, abs=1e-4) and t == pytest.approx(b, abs=1e-4)
    np.testing.assert_allclose(depth, gt, rtol=1e-4)


def test_disparity_zero_prediction_left_out_of_the_fit_but_aligned():
    a, b = 2.0, 0.5
    pred = np.array([[0.5, 1.0, 2.0, 0.0]], dtype=np.float32)
    gt = (1.0 / (a * pred + b)).astype(np.float32)
    gt[0, 3] = 100.0  # inconsistent with pred = 0: would spoil the fit if it were used
    depth, s, t = align_depth_least_squares_disparity(pred, gt, np.ones_like(gt, dtype=bool))
    assert s == pytest.approx(a, abs=1e-4) and t == pytest.approx(b, abs=1e-4)
    assert depth[0, 3] == pytest.approx(1 / b, rel=1e-4)  # 1 / (0 * s + t)


def test_disparity_is_clipped_at_1e_3_before_inversion():
    # gt disparity = pred - 1 exactly; pred = 0.5 aligns to disparity -0.5 -> clipped to 1e-3 -> depth 1000
    pred = np.array([[2.0, 3.0, 5.0, 0.5]], dtype=np.float32)
    gt = np.array([[1.0, 0.5, 0.25, 0.0]], dtype=np.float32)  # 1 / (pred - 1); last gt invalid (0)
    mask = np.array([[True, True, True, False]])
    depth, s, t = align_depth_least_squares_disparity(pred, gt, mask)
    assert s == pytest.approx(1.0, abs=1e-5) and t == pytest.approx(-1.0, abs=1e-5)
    assert depth[0, 3] == pytest.approx(1000.0, rel=1e-5)


def test_disparity_fit_mask_excludes_nonpositive_gt_even_if_masked_valid():
    pred = np.array([[1.0, 2.0, 0.7]], dtype=np.float32)
    gt = np.array([[1 / 3.0, 1 / 5.0, 0.0]], dtype=np.float32)  # disparity = 2 * pred + 1 on the first two
    _, s, t = align_depth_least_squares_disparity(pred, gt, np.ones((1, 3), bool))
    assert s == pytest.approx(2.0, abs=1e-5) and t == pytest.approx(1.0, abs=1e-5)


def test_disparity_empty_fit_mask_raises():
    pred = np.zeros((2, 2), np.float32)  # no positive prediction: nothing to fit
    with pytest.raises(EmptyMaskError):
        align_depth_least_squares_disparity(pred, np.ones((2, 2), np.float32), np.ones((2, 2), bool))


# ------------------------------------------------------------------------------------------------ scale only


def test_align_scale_hand_case():
    pred = np.array([1.0, 2.0, 5.0], dtype=np.float32)
    gt = np.array([2.0, 5.0, -1.0], dtype=np.float32)
    aligned, s = align_scale(pred, gt, np.array([True, True, False]))
    assert s == pytest.approx(12 / 5, abs=1e-6)  # sum(p g) / sum(p^2) over valid
    np.testing.assert_allclose(aligned, [2.4, 4.8, 12.0], rtol=1e-6)


def test_align_scale_broadcasts_a_pixel_mask_over_channels_and_recovers_scale():
    pred = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0))
    gt = 3.0 * pred
    mask = torch.ones(4, 5, dtype=torch.bool)
    gt[:, 0, 0] = 100.0
    mask[0, 0] = False
    aligned, s = align_scale(pred, gt, mask)
    assert s == pytest.approx(3.0, abs=1e-5)
    assert isinstance(aligned, torch.Tensor) and aligned.shape == (3, 4, 5)


def test_align_scale_no_mask_and_errors():
    assert align_scale(np.array([1.0, 2.0]), np.array([2.0, 4.0]))[1] == pytest.approx(2.0)
    with pytest.raises(EmptyMaskError):
        align_scale(np.ones(3), np.ones(3), np.zeros(3, bool))
    with pytest.raises(ValueError, match="broadcast"):
        align_scale(np.ones((2, 3)), np.ones((2, 3)), np.ones(2, bool))
    with pytest.raises(ValueError, match="shape"):
        align_scale(np.ones(3), np.ones(4))


# ---------------------------------------------------------------------------------------------- align_depth


def test_align_depth_aligns_then_clips_to_range_then_to_1e_6():
    pred = np.array([[0.0, 1.0, 2.0, 10.0]], dtype=np.float32)
    gt = (2 * pred + 1).astype(np.float32)  # aligned = [1, 3, 5, 21]
    mask = np.ones_like(gt, dtype=bool)
    out = align_depth(pred, gt, mask, "least_squares", min_depth=2.0, max_depth=10.0)
    np.testing.assert_allclose(out, [[2.0, 3.0, 5.0, 10.0]], atol=1e-5)
    # clipping *before* alignment would give a different answer: pred -> [2, 2, 2, 10] first
    assert not np.allclose(out, align_depth(np.clip(pred, 2, 10), gt, mask, "least_squares", 2.0, 10.0))
    out, s, t = align_depth(pred, gt, mask, "least_square", 2.0, 10.0, return_scale_shift=True)  # alias
    assert s == pytest.approx(2.0, abs=1e-5) and t == pytest.approx(1.0, abs=1e-5)


def test_align_depth_final_floor_is_1e_6():
    pred = np.array([[-1.0, 0.5, 2.0]], dtype=np.float32)
    gt = np.array([[1.0, 1.0, 1.0]], dtype=np.float32)
    out = align_depth(pred, gt, np.ones((1, 3), bool), "none", min_depth=-5.0, max_depth=np.inf)
    np.testing.assert_array_equal(out, np.array([[1e-6, 0.5, 2.0]], dtype=np.float32))
    assert out.dtype == np.float32


def test_align_depth_none_only_clips():
    pred = np.array([[0.0005, 5.0, 20.0]], dtype=np.float32)
    gt = np.ones((1, 3), np.float32)
    for method in ("none", None, "None"):
        out = align_depth(pred, gt, np.ones((1, 3), bool), method, 1e-3, 10.0)
        np.testing.assert_array_equal(out, np.array([[1e-3, 5.0, 10.0]], dtype=np.float32))


def test_align_depth_disparity_method_and_alias():
    a, b = 2.0, 0.5
    pred = np.array([[0.5, 1.0, 2.0]], dtype=np.float32)
    gt = (1.0 / (a * pred + b)).astype(np.float32)
    for method in ("least_squares_disparity", "least_square_disparity"):
        out = align_depth(pred, gt, np.ones((1, 3), bool), method, 1e-3, 10.0)
        np.testing.assert_allclose(out, gt, rtol=1e-4)


def test_align_depth_errors():
    pred, gt, mask = _rand((2, 2)), _rand((2, 2)), np.ones((2, 2), bool)
    with pytest.raises(ValueError, match="unknown alignment method"):
        align_depth(pred, gt, mask, "median", 0.1, 10)
    with pytest.raises(ValueError, match="min_depth"):
        align_depth(pred, gt, mask, "none", 10, 0.1)
    for method in ("least_squares", "least_squares_disparity", "none"):
        with pytest.raises(EmptyMaskError, match="no pixel") as info:
            align_depth(pred, gt, np.zeros((2, 2), bool), method, 0.1, 10)
        assert isinstance(info.value, ValueError)


def test_align_depth_keeps_tensor_kind():
    pred = torch.tensor([[0.0, 1.0, 2.0]])
    out = align_depth(pred, 2 * pred + 1, torch.ones(1, 3, dtype=torch.bool), "least_squares", 0.5, 4.0)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[1.0, 3.0, 4.0]]), atol=1e-5, rtol=0)

"""Metrics against values computed by hand on tiny arrays, and SSIM/PSNR against torchmetrics as an oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from marigold_toolkit.core import metrics as M
from marigold_toolkit.tasks.depth import metrics as depth_module
from marigold_toolkit.core.metrics import EmptyMaskError, MetricUnavailable, lpips, lpips_available, mean_over_images, psnr, ssim
from marigold_toolkit.tasks.depth.metrics import (
    DEPTH_METRIC_KEYS,
    abs_rel,
    delta1,
    delta2,
    delta3,
    depth_metrics,
    i_rmse,
    log10,
    rmse,
    rmse_log,
    silog_rmse,
    sq_rel,
)
from marigold_toolkit.tasks.intrinsics import intrinsics_metrics, linear_to_srgb, prepare_iid_pair, quantile_map, srgb_to_linear
from marigold_toolkit.tasks.normals import NORMALS_METRIC_KEYS, angular_error, normals_metrics

# ================================================================================================== depth

# 2x3 image: 4 valid pixels with gt = 1 and pred = [1, 1.3, 1.7, 3]; two invalid pixels carry garbage.
PRED = np.array([[1.0, 1.3, 1.7], [3.0, np.nan, 0.0]], dtype=np.float32)
GT = np.array([[1.0, 1.0, 1.0], [1.0, 5.0, 0.0]], dtype=np.float32)
MASK = np.array([[True, True, True], [True, False, False]])
P = [1.0, 1.3, 1.7, 3.0]  # the valid predictions (gt = 1 there)


def _hand_depth():
    n = 4
    d = [math.log(p) for p in P]
    return {
        "abs_rel": (0.0 + 0.3 + 0.7 + 2.0) / n,
        "sq_rel": (0.0 + 0.09 + 0.49 + 4.0) / n,
        "rmse": math.sqrt((0.0 + 0.09 + 0.49 + 4.0) / n),
        "rmse_log": math.sqrt(sum(x * x for x in d) / n),
        "log10": sum(abs(math.log10(p)) for p in P) / n,
        "delta1": 1 / 4,  # ratios 1, 1.3, 1.7, 3: only 1 < 1.25
        "delta2": 2 / 4,  # < 1.5625
        "delta3": 3 / 4,  # < 1.953125
        "i_rmse": math.sqrt(sum((1 / p - 1) ** 2 for p in P) / n),
        "silog_rmse": 100 * math.sqrt(sum(x * x for x in d) / n - (sum(d) / n) ** 2),
    }


@pytest.mark.parametrize("key", DEPTH_METRIC_KEYS)
def test_each_depth_metric_by_hand_with_invalid_pixels(key):
    func = getattr(depth_module, key)
    value = func(PRED, GT, MASK)
    assert isinstance(value, float)
    assert value == pytest.approx(_hand_depth()[key], rel=1e-6, abs=1e-7)


def test_depth_metrics_dict_matches_individual_functions_and_hand_values():
    m = depth_metrics(PRED, GT, MASK)
    assert tuple(m) == DEPTH_METRIC_KEYS
    hand = _hand_depth()
    for k in DEPTH_METRIC_KEYS:
        assert m[k] == getattr(depth_module, k)(PRED, GT, MASK)
        assert m[k] == pytest.approx(hand[k], rel=1e-6, abs=1e-7)


def test_depth_metrics_1x3_with_one_invalid_pixel():
    pred = np.array([[1.0, 4.0, 7.0]], dtype=np.float32)
    gt = np.array([[2.0, 4.0, 0.0]], dtype=np.float32)
    mask = np.array([[True, True, False]])
    assert abs_rel(pred, gt, mask) == pytest.approx(0.25)  # (1/2 + 0) / 2
    assert sq_rel(pred, gt, mask) == pytest.approx(0.25)  # (1/2 + 0) / 2
    assert rmse(pred, gt, mask) == pytest.approx(math.sqrt(0.5))
    assert rmse_log(pred, gt, mask) == pytest.approx(math.log(2) / math.sqrt(2))
    assert log10(pred, gt, mask) == pytest.approx(math.log10(2) / 2)
    assert i_rmse(pred, gt, mask) == pytest.approx(math.sqrt((1 - 0.5) ** 2 / 2))
    # d = [-ln 2, 0]: mean d^2 = ln^2 2 / 2, mean d = -ln 2 / 2 -> variance ln^2 2 / 4
    assert silog_rmse(pred, gt, mask) == pytest.approx(100 * math.log(2) / 2, rel=1e-6)
    assert (delta1(pred, gt, mask), delta2(pred, gt, mask), delta3(pred, gt, mask)) == (0.5, 0.5, 0.5)


def test_delta_thresholds_are_strict():
    gt = np.array([[4.0, 4.0, 64.0]], dtype=np.float32)
    pred = np.array([[5.0, 3.2, 125.0]], dtype=np.float32)  # ratios exactly 1.25, 1.25, 1.25^3
    assert delta1(pred, gt) == 0.0
    assert delta2(pred, gt) == pytest.approx(2 / 3)
    assert delta3(pred, gt) == pytest.approx(2 / 3)  # 125/64 = 1.25^3 is not < 1.25^3


def test_depth_mask_none_means_all_pixels():
    pred = np.array([[1.0, 3.0]], dtype=np.float32)
    gt = np.array([[2.0, 3.0]], dtype=np.float32)
    assert abs_rel(pred, gt) == abs_rel(pred, gt, np.ones((1, 2), bool)) == 0.25


def test_silog_of_a_pure_scale_error_is_zero_not_nan():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 80, (37, 41)).astype(np.float32)
    pred = (1.1 * gt).astype(np.float32)
    value = silog_rmse(pred, gt)
    assert math.isfinite(value) and value == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("key", DEPTH_METRIC_KEYS)
def test_empty_mask_raises_specific_error(key):
    with pytest.raises(EmptyMaskError):
        getattr(depth_module, key)(PRED, GT, np.zeros_like(MASK))


def test_empty_mask_error_is_a_value_error_and_depth_metrics_raises_it():
    assert issubclass(EmptyMaskError, ValueError)
    with pytest.raises(EmptyMaskError):
        depth_metrics(PRED, GT, np.zeros_like(MASK))


def test_depth_input_validation():
    with pytest.raises(ValueError, match="shape mismatch"):
        abs_rel(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="gt must be"):
        abs_rel(np.ones((1, 2)), np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="pred must be"):
        rmse_log(np.array([[1.0, -1.0]]), np.ones((1, 2)))
    with pytest.raises(ValueError, match="pred must be"):
        rmse(np.array([[1.0, np.nan]]), np.ones((1, 2)))


def test_depth_metrics_accept_tensors_and_leading_dims():
    m_np = depth_metrics(PRED, GT, MASK)
    m_t = depth_metrics(torch.from_numpy(PRED)[None, None], torch.from_numpy(GT)[None], torch.from_numpy(MASK))
    assert m_np == m_t


# ================================================================================================ normals

# CHW [3, 1, 5]: angles 0 (parallel, different length), 90, 45, 10 degrees; the last GT vector is zero.
_c10, _s10 = math.cos(math.radians(10)), math.sin(math.radians(10))
N_GT = np.array([[0, 0, 1], [1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32).T.reshape(3, 1, 5)
N_PRED = np.array([[0, 0, 2], [0, 1, 0], [1, 1, 0], [_c10, _s10, 0], [1, 0, 0]], dtype=np.float32).T.reshape(3, 1, 5)


def test_angular_error_known_vectors_and_zero_gt_excluded():
    err = angular_error(N_PRED, N_GT)
    assert err.dtype == np.float32 and err.shape == (4,)
    np.testing.assert_allclose(err, [0.0, 90.0, 45.0, 10.0], atol=2e-3)


def test_angular_error_map_and_hwc_layout():
    emap = angular_error(N_PRED, N_GT, return_map=True)
    assert emap.shape == (1, 5) and np.isnan(emap[0, 4])
    np.testing.assert_allclose(emap[0, :4], [0.0, 90.0, 45.0, 10.0], atol=2e-3)
    hwc = angular_error(N_PRED.transpose(1, 2, 0), N_GT.transpose(1, 2, 0))
    np.testing.assert_array_equal(hwc, angular_error(N_PRED, N_GT))
    batched = angular_error(torch.from_numpy(N_PRED)[None], torch.from_numpy(N_GT)[None])
    np.testing.assert_array_equal(batched, angular_error(N_PRED, N_GT))


def test_normals_metrics_by_hand():
    m = normals_metrics(N_PRED, N_GT)
    assert tuple(m) == NORMALS_METRIC_KEYS
    errs = [0.0, 90.0, 45.0, 10.0]
    assert m["mean_angular_error"] == pytest.approx(sum(errs) / 4, abs=1e-3)
    assert m["median_angular_error"] == pytest.approx((10.0 + 45.0) / 2, abs=1e-3)  # even count: middle two
    assert m["rmse_angular_error"] == pytest.approx(math.sqrt(sum(e * e for e in errs) / 4), abs=1e-3)
    assert m["within_5"] == 0.25
    assert m["within_7.5"] == 0.25
    assert m["within_11.25"] == 0.5
    assert m["within_22.5"] == 0.5
    assert m["within_30"] == 0.5


def test_normals_extra_mask_and_odd_count_median():
    mask = np.array([[True, True, True, False, True]])  # drop the 10-degree pixel
    m = normals_metrics(N_PRED, N_GT, mask)
    assert m["median_angular_error"] == pytest.approx(45.0, abs=1e-3)
    assert m["within_30"] == pytest.approx(1 / 3)


def test_normals_rounding_like_the_authors():
    mask = np.array([[True, True, True, False, True]])
    m = normals_metrics(N_PRED, N_GT, mask, round_like_authors=True)
    assert m["within_30"] == round(100 * (1 / 3), 4) / 100  # 33.3333 % -> 0.333333
    assert m["mean_angular_error"] == pytest.approx(45.0, abs=1e-4)
    raw = normals_metrics(N_PRED, N_GT, mask)
    assert raw["within_30"] != m["within_30"]


def test_normals_all_zero_gt_or_empty_mask_raises():
    with pytest.raises(EmptyMaskError):
        normals_metrics(N_PRED, np.zeros_like(N_GT))
    with pytest.raises(EmptyMaskError):
        normals_metrics(N_PRED, N_GT, np.zeros((1, 5), bool))


def test_normals_layout_errors():
    with pytest.raises(ValueError, match="ambiguous"):
        angular_error(np.ones((3, 4, 3)), np.ones((3, 4, 3)))
    # explicit layout resolves it
    assert angular_error(np.ones((3, 4, 3)), np.ones((3, 4, 3)), channels_last=True).shape == (12,)
    with pytest.raises(ValueError, match="channel"):
        angular_error(np.ones((2, 4, 5)), np.ones((2, 4, 5)))


# ============================================================================================= intrinsics


def test_psnr_by_hand_with_mask():
    pred = np.array([[0.5, 0.5, 0.0]], dtype=np.float32)
    gt = np.array([[0.5, 0.6, 1.0]], dtype=np.float32)
    mask = np.array([[True, True, False]])
    # MSE over the two valid pixels = (0 + 0.01) / 2 = 0.005 -> 10 log10(1 / 0.005)
    assert psnr(pred, gt, mask) == pytest.approx(10 * math.log10(200), abs=1e-4)
    # unmasked: MSE = (0.01 + 1) / 3
    assert psnr(pred, gt) == pytest.approx(10 * math.log10(3 / 1.01), abs=1e-4)
    # data range 2 adds 20 log10(2)
    assert psnr(pred, gt, mask, data_range=2.0) == pytest.approx(10 * math.log10(4 * 200), abs=1e-4)


def test_psnr_identical_is_inf_and_empty_mask_raises():
    img = np.full((3, 2, 2), 0.3, np.float32)
    assert psnr(img, img) == math.inf
    with pytest.raises(EmptyMaskError):
        psnr(img, img, np.zeros((2, 2), bool))


def test_psnr_matches_torchmetrics_with_and_without_mask():
    tm_image = pytest.importorskip("torchmetrics.image")
    g = torch.Generator().manual_seed(0)
    pred, gt = torch.rand(3, 10, 12, generator=g), torch.rand(3, 10, 12, generator=g)
    mask = torch.rand(10, 12, generator=g) > 0.3
    metric = tm_image.PeakSignalNoiseRatio(data_range=1.0)
    assert psnr(pred, gt) == metric(pred[None], gt[None]).item()
    m3 = mask.expand(1, 3, 10, 12)
    assert psnr(pred, gt, mask) == metric(pred[None][m3], gt[None][m3]).item()
    # HWC numpy input gives the same value
    assert psnr(pred.permute(1, 2, 0).numpy(), gt.permute(1, 2, 0).numpy(), mask.numpy()) == psnr(pred, gt, mask)


def test_ssim_matches_torchmetrics():
    tm_image = pytest.importorskip("torchmetrics.image")
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(3, 16, 21, generator=g)
    gt = (0.7 * pred + 0.3 * torch.rand(3, 16, 21, generator=g)).clamp(0, 1)
    expected = tm_image.StructuralSimilarityIndexMeasure(data_range=1.0)(pred[None], gt[None]).item()
    assert ssim(pred, gt) == pytest.approx(expected, abs=1e-6)
    assert ssim(pred.permute(1, 2, 0).numpy(), gt.permute(1, 2, 0).numpy()) == pytest.approx(expected, abs=1e-6)


def test_ssim_with_mask_zeroes_invalid_pixels_of_both_like_the_authors():
    tm_image = pytest.importorskip("torchmetrics.image")
    g = torch.Generator().manual_seed(2)
    pred, gt = torch.rand(3, 12, 14, generator=g), torch.rand(3, 12, 14, generator=g)
    mask = torch.rand(12, 14, generator=g) > 0.25
    inv = ~mask.expand(3, 12, 14)
    p0, g0 = pred.clone(), gt.clone()
    p0[inv], g0[inv] = 0, 0
    expected = tm_image.StructuralSimilarityIndexMeasure(data_range=1.0)(p0[None], g0[None]).item()
    assert ssim(pred, gt, mask) == pytest.approx(expected, abs=1e-6)
    assert torch.equal(pred[inv], torch.rand(3, 12, 14, generator=torch.Generator().manual_seed(2))[inv])  # untouched
    with pytest.raises(EmptyMaskError):
        ssim(pred, gt, torch.zeros(12, 14, dtype=torch.bool))


def test_ssim_crop_border_reproduces_old_torchmetrics():
    functional = pytest.importorskip("torchmetrics.functional.image")
    g = torch.Generator().manual_seed(3)
    pred, gt = torch.rand(1, 3, 20, 18, generator=g), torch.rand(1, 3, 20, 18, generator=g)
    _, full_map = functional.structural_similarity_index_measure(pred, gt, data_range=1.0, return_full_image=True)
    expected = full_map[..., 5:-5, 5:-5].mean().item()  # torchmetrics <= 1.4.1 cropped the padded border
    assert ssim(pred, gt, crop_border=True) == pytest.approx(expected, abs=1e-6)


def test_ssim_identical_images_is_one_and_tiny_images_rejected():
    img = torch.rand(3, 9, 11, generator=torch.Generator().manual_seed(4))
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-6)
    gray = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    assert ssim(gray, gray) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="larger than 5"):
        ssim(np.ones((3, 5, 8)), np.ones((3, 5, 8)))


def test_quantile_map_by_hand():
    # grey pixels (R = G = B) so brightness = 0.3 v + 0.59 v + 0.11 v = v; 10 values 0.1 ... 1.0
    v = np.arange(1, 11, dtype=np.float32) / 10
    gt = np.repeat(v.reshape(1, 10, 1), 3, axis=2)  # HWC [1, 10, 3]
    pred = np.full_like(gt, 0.5)
    q90 = 0.9 + 0.1 * (1.0 - 0.9)  # linear interpolation at rank 0.9 * 9 = 8.1 -> 0.91
    scale = 0.8 / q90
    p, g = quantile_map(pred, gt)
    assert p.shape == gt.shape and isinstance(p, np.ndarray)
    np.testing.assert_allclose(g, np.clip(scale * gt, 0, 1), atol=1e-6)
    np.testing.assert_allclose(p, np.full_like(gt, 0.5 * scale), atol=1e-6)
    assert g.max() == pytest.approx(0.8 / 0.91, rel=1e-6)  # the brightest pixel, 1.0, maps below 1


def test_quantile_map_uses_only_masked_brightness_and_zero_scale_for_dark_gt():
    gt = np.full((3, 2, 2), 0.2, np.float32)
    gt[:, 0, 0] = 1.0  # a bright pixel outside the mask
    mask = np.ones((2, 2), bool)
    mask[0, 0] = False
    p, g = quantile_map(gt.copy(), gt, mask)
    np.testing.assert_allclose(g[:, 1, 1], [0.8] * 3, atol=1e-6)  # 0.2 -> 0.8: scale 4 from masked pixels only
    np.testing.assert_allclose(g[:, 0, 0], [1.0] * 3)  # 4.0 clamped
    dark = np.full((3, 2, 2), 1e-5, np.float32)
    p, g = quantile_map(np.ones((3, 2, 2), np.float32), dark)
    assert not p.any() and not g.any()  # percentile < 1e-4: scale 0


def test_prepare_iid_pair_up_to_scale_and_plain_targets():
    rng = np.random.default_rng(5)
    gt = rng.uniform(0.05, 0.6, (4, 5, 3)).astype(np.float32)  # HWC
    p, g = prepare_iid_pair(0.25 * gt, gt, "shading", None)  # LS scale 4, then the same quantile map
    np.testing.assert_allclose(p, g, atol=1e-5)
    b = 0.3 * gt[..., 0] + 0.59 * gt[..., 1] + 0.11 * gt[..., 2]
    np.testing.assert_allclose(g, np.clip(gt * (0.8 / np.quantile(b, 0.9)), 0, 1), atol=1e-5)
    # albedo is not up to scale: untouched
    pa, ga = prepare_iid_pair(0.25 * gt, gt, "albedo", None)
    np.testing.assert_array_equal(pa, 0.25 * gt)
    np.testing.assert_array_equal(ga, gt)
    # the override and a mask: garbage outside the mask does not affect the scale
    pred = 0.5 * gt
    pred[0, 0] = 50.0
    mask = np.ones((4, 5), bool)
    mask[0, 0] = False
    p, g = prepare_iid_pair(pred, gt, "albedo", mask, up_to_scale=True)
    np.testing.assert_allclose(p[mask], g[mask], atol=1e-5)


def test_prepare_iid_pair_keeps_tensor_kind_and_chw_layout():
    gt = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(6)) * 0.5 + 0.1
    p, g = prepare_iid_pair(2 * gt, gt, "residual", torch.ones(6, 7, dtype=torch.bool))
    assert isinstance(p, torch.Tensor) and p.shape == (3, 6, 7)
    torch.testing.assert_close(p, g, atol=1e-5, rtol=0)


def test_srgb_linear_gamma_2_2():
    assert float(srgb_to_linear(np.float32(0.5))) == pytest.approx(0.5 ** 2.2, rel=1e-6)
    assert float(linear_to_srgb(np.float32(0.25))) == pytest.approx(0.25 ** (1 / 2.2), rel=1e-6)
    x = torch.tensor([0.0, 0.2, 1.0])
    out = linear_to_srgb(srgb_to_linear(x))
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, x)
    assert isinstance(srgb_to_linear(np.array([0.5])), np.ndarray)


def test_intrinsics_metrics_keys_and_values():
    g = torch.Generator().manual_seed(7)
    pred, gt = torch.rand(3, 8, 9, generator=g), torch.rand(3, 8, 9, generator=g)
    mask = torch.rand(8, 9, generator=g) > 0.5
    m = intrinsics_metrics(pred, gt, mask)
    assert set(m) == {"psnr", "ssim"}
    assert m["psnr"] == psnr(pred, gt, mask) and m["ssim"] == ssim(pred, gt, mask)


# ---------------------------------------------------------------------------------------------------- LPIPS


def test_lpips_unavailable_raises_clear_error(monkeypatch):
    monkeypatch.setattr(M, "lpips_unavailable_reason", lambda: "the 'lpips' package is not installed")
    assert lpips_available() is False
    with pytest.raises(MetricUnavailable, match="not installed"):
        lpips(np.zeros((3, 8, 8), np.float32), np.zeros((3, 8, 8), np.float32))


def test_lpips_reason_reports_missing_package_or_weights():
    reason = M.lpips_unavailable_reason()
    assert (reason is None) == lpips_available()
    if reason is not None:
        assert "lpips" in reason or "weights" in reason or "torchvision" in reason


def test_lpips_masks_and_normalizes_before_the_network(monkeypatch):
    seen = {}

    def fake_model(a, b, normalize):
        seen.update(a=a.clone(), b=b.clone(), normalize=normalize)
        return torch.full((1, 1, 1, 1), 0.125)

    monkeypatch.setattr(M, "lpips_unavailable_reason", lambda: None)
    monkeypatch.setattr(M, "_load_lpips_model", lambda device: fake_model)
    pred, gt = np.full((6, 7, 3), 0.5, np.float32), np.full((6, 7, 3), 0.25, np.float32)  # HWC
    mask = np.ones((6, 7), bool)
    mask[0, 0] = False
    assert lpips(pred, gt, mask) == 0.125
    assert seen["normalize"] is True and seen["a"].shape == (1, 3, 6, 7)
    assert float(seen["a"][0, :, 0, 0].abs().sum()) == 0 and float(seen["b"][0, :, 0, 0].abs().sum()) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lpips(pred * 3, gt)


# -------------------------------------------------------------------------------------------------- averaging


def test_mean_over_images_weighs_every_image_the_same():
    rows = [
        {"stem": "a", "abs_rel": 0.1, "delta1": 1.0},
        {"stem": "b", "abs_rel": 0.3, "delta1": 0.5},
        {"stem": "c", "abs_rel": 0.5},
    ]
    out = mean_over_images(rows)
    assert list(out) == ["abs_rel", "delta1"]
    assert out["abs_rel"] == pytest.approx(0.3)
    assert out["delta1"] == pytest.approx(0.75)  # averaged over the images that have it
    assert mean_over_images([{"x": np.float32(1.0)}, {"x": torch.tensor(3.0)}]) == {"x": 2.0}
    with pytest.raises(ValueError):
        mean_over_images([])

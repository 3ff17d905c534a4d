"""Ensembling: hand-computed cases, and bitwise agreement with diffusers' reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import MarigoldDepthPipeline, MarigoldIntrinsicsPipeline, MarigoldNormalsPipeline

from marigold_toolkit.tasks import ensemble_pixelwise as ensemble_intrinsics
from marigold_toolkit.tasks.depth import ensemble_depth
from marigold_toolkit.tasks.normals import ensemble_normals, normalize_normals


def test_depth_affine_members_recover_the_normalised_map():
    base = torch.rand(1, 1, 6, 7, generator=torch.Generator().manual_seed(0))
    members = torch.cat([base, 3 * base + 1, 0.5 * base - 0.2, 2 * base])
    merged, unc = ensemble_depth(members, output_uncertainty=True, max_iter=100, tol=1e-10)
    expected = (base - base.min()) / (base.max() - base.min())
    torch.testing.assert_close(merged, expected, atol=2e-3, rtol=0)
    assert merged.min() == 0 and merged.max() == 1
    assert unc.shape == (1, 1, 6, 7) and float(unc.max()) < 2e-3


def test_depth_without_invariance_is_a_plain_median():
    x = torch.tensor([0.1, 0.5, 0.2]).view(3, 1, 1, 1) * torch.ones(3, 1, 1, 2)
    x[:, :, :, 1] += 3.0
    # absolute depth keeps its units: median [0.2, 3.2], MAD median(|[0.1,0.5,0.2] - 0.2|) = 0.1
    merged, unc = ensemble_depth(x, scale_invariant=False, shift_invariant=False, output_uncertainty=True)
    torch.testing.assert_close(merged.flatten(), torch.tensor([0.2, 3.2]))
    torch.testing.assert_close(unc.flatten(), torch.tensor([0.1, 0.1]), rtol=0, atol=1e-6)


def test_depth_scale_only_mean_reduction_hand_computed():
    # members are exact multiples of one map; scale-only alignment + mean, then divided by the max (min fixed at 0)
    base = torch.tensor([[0.2, 0.4, 0.8]]).view(1, 1, 1, 3)
    x = torch.cat([base, 2 * base, 0.5 * base])
    merged, unc = ensemble_depth(x, True, False, True, reduction="mean", max_iter=200, tol=1e-12)
    torch.testing.assert_close(merged.flatten(), torch.tensor([0.25, 0.5, 1.0]), atol=1e-3, rtol=0)
    assert float(unc.max()) < 1e-3


def test_least_squares_alignment_recovers_affine_and_scaled_members():
    """Members that are one map under exact affine (or scale) transforms: the least-squares method recovers the
    normalised map to float precision after one refit (hand-computable: each fit is exact)."""
    base = torch.rand(1, 1, 6, 7, generator=torch.Generator().manual_seed(0))
    members = torch.cat([base, 3 * base + 1, 0.5 * base - 0.2, 2 * base])
    merged, unc = ensemble_depth(members, output_uncertainty=True, method="least-squares")
    torch.testing.assert_close(merged, (base - base.min()) / (base.max() - base.min()), atol=1e-6, rtol=0)
    assert float(unc.max()) < 1e-6
    x = torch.cat([base, 2 * base, 0.5 * base])
    merged, _ = ensemble_depth(x, True, False, reduction="mean", method="least-squares")
    torch.testing.assert_close(merged, base / base.max(), atol=1e-6, rtol=0)


def test_least_squares_alignment_is_continuous_where_bfgs_is_not():
    """A 1e-6 change of noisy members moves the least-squares merge by about 1e-6; the BFGS merge (the authors'
    and diffusers') by far more — why numerics are compared at ensemble sizes > 1 with least squares."""
    g = torch.Generator().manual_seed(3)
    base = torch.rand(1, 1, 24, 32, generator=g)
    members = torch.cat([base * (1 + 0.3 * k) + 0.1 * k for k in range(6)])
    members = members + 0.2 * torch.rand(members.shape, generator=g)
    bumped = members + 1e-6 * torch.randn(members.shape, generator=g)
    lsq = [ensemble_depth(m, method="least-squares")[0] for m in (members, bumped)]
    bfgs = [ensemble_depth(m)[0] for m in (members, bumped)]
    assert float((lsq[0] - lsq[1]).abs().max()) < 2e-5
    assert float((bfgs[0] - bfgs[1]).abs().max()) > 100 * float((lsq[0] - lsq[1]).abs().max())


def test_depth_argument_errors():
    with pytest.raises(ValueError, match="ensembling method"):
        ensemble_depth(torch.rand(3, 1, 4, 4), method="adam")
    with pytest.raises(ValueError, match=r"\[E, 1, H, W\]|1 channel"):
        ensemble_depth(torch.rand(3, 2, 4, 4))
    with pytest.raises(ValueError, match="shift-invariant"):
        ensemble_depth(torch.rand(3, 1, 4, 4), scale_invariant=False, shift_invariant=True)
    with pytest.raises(ValueError, match="reduction"):
        ensemble_depth(torch.rand(3, 1, 4, 4), reduction="closest")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kwargs", [{}, {"reduction": "mean"}, {"max_iter": 20, "tol": 1e-6},
                                    {"max_res": 8}, {"regularizer_strength": 0.0}])
def test_depth_equals_diffusers_bitwise(seed, kwargs):
    x = torch.rand(5, 1, 13, 17, generator=torch.Generator().manual_seed(seed))
    ref = MarigoldDepthPipeline.ensemble_depth(x.clone(), True, True, True, **kwargs)
    ours = ensemble_depth(x.clone(), True, True, True, **kwargs)
    torch.testing.assert_close(ours[0], ref[0], atol=0, rtol=0)
    torch.testing.assert_close(ours[1], ref[1], atol=0, rtol=0)
    ref_s = MarigoldDepthPipeline.ensemble_depth(x.clone(), True, False, True, **kwargs)
    ours_s = ensemble_depth(x.clone(), True, False, True, **kwargs)
    torch.testing.assert_close(ours_s[0], ref_s[0], atol=0, rtol=0)


def test_normals_closest_and_mean_hand_computed():
    # two pixels; members: x-axis, y-axis, and (1,1,0)/sqrt2 -> mean direction (1,1,0)/sqrt2
    s = 1 / math.sqrt(2)
    members = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [s, s, 0]]).view(3, 3, 1, 1).repeat(1, 1, 1, 2)
    closest, unc = ensemble_normals(members, True, "closest")
    torch.testing.assert_close(closest[0, :, 0, 0], torch.tensor([s, s, 0.0]))
    # angles to the mean: 45, 45, 0 degrees -> mean pi/6 -> /pi = 1/6
    torch.testing.assert_close(unc.flatten(), torch.full((2,), 1 / 6), atol=1e-6, rtol=0)
    mean, _ = ensemble_normals(members, False, "mean")
    torch.testing.assert_close(mean[0, :, 0, 0], torch.tensor([s, s, 0.0]))
    with pytest.raises(ValueError, match="reduction"):
        ensemble_normals(members, False, "median")


@pytest.mark.parametrize("reduction", ["closest", "mean"])
def test_normals_equal_diffusers_bitwise(reduction):
    x = MarigoldNormalsPipeline.normalize_normals(torch.randn(4, 3, 9, 11, generator=torch.Generator().manual_seed(1)))
    ref = MarigoldNormalsPipeline.ensemble_normals(x.clone(), True, reduction)
    ours = ensemble_normals(x.clone(), True, reduction)
    torch.testing.assert_close(ours[0], ref[0], atol=0, rtol=0)
    torch.testing.assert_close(ours[1], ref[1], atol=0, rtol=0)


def test_normalize_normals_does_not_modify_input():
    x = torch.tensor([3.0, 0.0, 4.0]).view(1, 3, 1, 1)
    y = normalize_normals(x)
    torch.testing.assert_close(y.flatten(), torch.tensor([0.6, 0.0, 0.8]))
    assert x.flatten().tolist() == [3.0, 0.0, 4.0]


@pytest.mark.parametrize("reduction", ["median", "mean"])
def test_intrinsics_hand_computed_and_equal_diffusers(reduction):
    vals = torch.tensor([0.1, 0.5, 0.2])
    x = vals.view(3, 1, 1, 1, 1).expand(3, 2, 3, 2, 2).clone()
    merged, unc = ensemble_intrinsics(x, True, reduction)
    assert merged.shape == (2, 3, 2, 2) and unc.shape == (2, 3, 2, 2)
    if reduction == "median":
        torch.testing.assert_close(merged, torch.full_like(merged, 0.2))
        torch.testing.assert_close(unc, torch.full_like(unc, 0.1), atol=1e-7, rtol=0)
    else:
        torch.testing.assert_close(merged, torch.full_like(merged, 0.8 / 3))
        torch.testing.assert_close(unc, torch.full_like(unc, float(np.std([0.1, 0.5, 0.2], ddof=1))))
    y = torch.rand(5, 3, 3, 6, 7, generator=torch.Generator().manual_seed(3))
    ref = MarigoldIntrinsicsPipeline.ensemble_intrinsics(y.clone(), True, reduction)
    ours = ensemble_intrinsics(y.clone(), True, reduction)
    torch.testing.assert_close(ours[0], ref[0], atol=0, rtol=0)
    torch.testing.assert_close(ours[1], ref[1], atol=0, rtol=0)

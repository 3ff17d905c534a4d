"""Depth normalisation, target encoding through the (tiny, random) VAE."""

from __future__ import annotations

import pytest
import torch

from marigold_toolkit.pipeline.denoise import decode_latents
from marigold_toolkit.tasks import DepthTask, IntrinsicsTask, NormalsTask
from marigold_toolkit.core import arrays as arrays_mod
from marigold_toolkit.tasks.depth import normalize_depth
from marigold_toolkit.training import encode_targets

# valid depths 1..5: q02 = 1 + 0.02 * 4 = 1.08, q98 = 4 + 0.92 = 4.92, range 3.84
# d' = (d - 1.08) / 3.84 * 2 - 1:
#   1 -> -1.0417 (clipped -1), 2 -> -0.52083, 3 -> 0, 4 -> 0.52083, 5 -> clipped 1
EXPECTED = torch.tensor([[-1.0, -0.5208333, 0.0], [0.5208333, 1.0, 1.0]])


def test_normalize_depth_hand_computed_ignores_invalid_pixels():
    depth = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]]).view(1, 1, 2, 3)
    mask = torch.ones_like(depth, dtype=torch.bool)
    mask[..., 1, 2] = False  # the 100 m pixel would move the 98 % quantile if it counted
    batch = torch.cat([depth, depth * 10.0])  # per image: the second is a scaled copy -> same result
    out = normalize_depth(batch, mask.expand(2, -1, -1, -1).clone())
    assert out.shape == (2, 1, 2, 3) and out.dtype == torch.float32
    for i in range(2):
        # the invalid 100 m pixel is mapped and clipped: 1
        torch.testing.assert_close(out[i, 0], EXPECTED, rtol=0, atol=1e-5)
    # depth <= 0 is invalid even inside the mask; with invalid_value it is replaced
    depth0 = depth.clone()
    depth0[..., 1, 2] = 0.0
    out0 = normalize_depth(depth0, invalid_value=0.25)
    torch.testing.assert_close(out0[0, 0, :, :], torch.where(torch.tensor([[True] * 3, [True, True, False]]),
                                                             EXPECTED, torch.tensor(0.25)), rtol=0, atol=1e-5)
    # default: 0 depth maps (clipped) to the near plane
    assert float(normalize_depth(depth0)[0, 0, 1, 2]) == -1.0


def test_normalize_depth_degenerate_images_give_no_nan():
    depth = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]]], [[[0.0, 3.0], [0.0, 0.0]]], [[[2.0, 2.0], [2.0, 2.0]]],
                          [[[float("nan"), float("inf")], [1.0, 2.0]]]])
    out = normalize_depth(depth)
    assert torch.isfinite(out).all()
    assert torch.equal(out[:3], torch.zeros(3, 1, 2, 2))  # no / one valid pixel, constant depth
    assert out[3, 0, 1, 0] == -1.0 and out[3, 0, 1, 1] == 1.0  # non-finite depth is invalid, not NaN


def test_quantile_fallback_matches_torch(monkeypatch):
    vals = torch.rand(1001, generator=torch.Generator().manual_seed(0))
    q = torch.tensor([0.02, 0.98])
    expected = torch.quantile(vals, q)
    monkeypatch.setattr(arrays_mod, "TORCH_QUANTILE_MAX", 10)
    torch.testing.assert_close(arrays_mod.quantile(vals, q), expected)


def test_encode_depth_targets_shapes_and_posterior_mean(tiny_vae):
    codec = DepthTask()
    g = torch.Generator().manual_seed(0)
    depth = normalize_depth(torch.rand(2, 1, 32, 40, generator=g) + 0.5)
    lat = encode_targets(tiny_vae, codec, depth)
    assert lat.shape == (2, 4, 4, 5)
    # the posterior mean, not a sample: encoding twice is identical
    torch.testing.assert_close(encode_targets(tiny_vae, codec, depth), lat, rtol=0, atol=0)
    with torch.no_grad():
        mean = tiny_vae.encode(depth.repeat(1, 3, 1, 1)).latent_dist.mean * tiny_vae.config.scaling_factor
    torch.testing.assert_close(lat, mean)
    torch.testing.assert_close(encode_targets(tiny_vae, codec, {"depth": depth}, batch_size=1), lat)
    decoded = decode_latents(tiny_vae, lat, 2, codec.decode)  # a random VAE: only the shape round-trips
    assert decoded.shape == depth.shape


def test_encode_intrinsics_targets_are_concatenated_in_codec_order(tiny_vae):
    codec = IntrinsicsTask(["albedo", "shading", "residual"])
    g = torch.Generator().manual_seed(1)
    targets = {n: torch.rand(2, 3, 16, 24, generator=g) for n in codec.target_names}
    lat = encode_targets(tiny_vae, codec, {**targets, "valid_mask": torch.ones(2, 1, 16, 24)})
    assert lat.shape == (2, 12, 2, 3)
    for k, name in enumerate(codec.target_names):
        single = encode_targets(tiny_vae, IntrinsicsTask([name]), targets[name])
        torch.testing.assert_close(lat[:, 4 * k : 4 * k + 4], single, rtol=1e-5, atol=1e-6)
    stacked = torch.stack([targets[n] for n in codec.target_names], dim=1)  # [B, T, 3, H, W]
    torch.testing.assert_close(encode_targets(tiny_vae, codec, stacked), lat, rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError):
        encode_targets(tiny_vae, codec, {"albedo": targets["albedo"]})


def test_encode_normals_round_trip_shape(tiny_vae):
    codec = NormalsTask()
    raw = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    normals = torch.nn.functional.normalize(raw, dim=1)
    lat = encode_targets(tiny_vae, codec, normals)
    assert lat.shape == (1, 4, 2, 2)
    assert decode_latents(tiny_vae, lat, 1, codec.decode).shape == normals.shape

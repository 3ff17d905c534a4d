"""Annealed multi-resolution noise."""

from __future__ import annotations

import pytest
import torch

from marigold_toolkit.training import annealed_strength, multi_res_noise
from marigold_toolkit.training import noise as noise_mod

SHAPE = (2, 4, 24, 32)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _lag1_autocorrelation(n: torch.Tensor) -> float:
    n = n - n.mean()
    return float((n[..., 1:] * n[..., :-1]).mean() / (n * n).mean())


def _reference(shape, strength, gen):
    """The authors' algorithm written out step by step: ``nn.Upsample`` and cumulative downscaling."""
    b, c, h, w = shape
    up = torch.nn.Upsample(size=(h, w), mode="bilinear")
    if torch.is_tensor(strength):
        strength = strength.reshape(-1, 1, 1, 1)
    out = torch.randn(shape, generator=gen)
    for i in range(10):
        r = torch.rand(1, generator=gen) * 2 + 2
        h, w = max(1, int(h / (r**i))), max(1, int(w / (r**i)))
        out += up(torch.randn(b, c, h, w, generator=gen)) * strength**i
        if h == 1 or w == 1:
            break
    return out / out.std()


def test_shape_dtype_unit_std_and_determinism():
    a = multi_res_noise(SHAPE, 0.9, generator=_gen(1))
    assert a.shape == SHAPE and a.dtype == torch.float32
    assert abs(float(a.std()) - 1.0) < 1e-5
    torch.testing.assert_close(multi_res_noise(SHAPE, 0.9, generator=_gen(1)), a, rtol=0, atol=0)
    assert not torch.equal(multi_res_noise(SHAPE, 0.9, generator=_gen(2)), a)
    like = torch.zeros(SHAPE, dtype=torch.float64)
    b = multi_res_noise(like, 0.9, generator=_gen(1))
    assert b.dtype == torch.float64 and b.shape == SHAPE
    torch.testing.assert_close(b.float(), a, rtol=0, atol=1e-6)  # drawn in float32, then cast


@pytest.mark.parametrize("strength", [0.9, 0.3, torch.tensor([0.0, 0.8991])])
def test_matches_the_authors_algorithm(strength):
    torch.testing.assert_close(
        multi_res_noise(SHAPE, strength, generator=_gen(5)),
        _reference(SHAPE, strength, _gen(5)),
        rtol=0,
        atol=1e-6,
    )


def test_strength_zero_is_two_full_resolution_gaussians():
    # i = 0: r**0 = 1 -> a full-res level with weight 0**0 = 1 (also for torch.pow);
    # levels i >= 1 weigh 0**i = 0
    assert float(torch.tensor(0.0) ** 0) == 1.0 and 0.0**0 == 1.0
    g = _gen(7)
    n0 = torch.randn(SHAPE, generator=g)
    torch.rand(1, generator=g)  # r of level 0
    n1 = torch.randn(SHAPE, generator=g)
    expected = (n0 + n1) / (n0 + n1).std()
    torch.testing.assert_close(multi_res_noise(SHAPE, 0.0, generator=_gen(7)), expected, rtol=0, atol=1e-6)
    zero = multi_res_noise(SHAPE, torch.zeros(2), generator=_gen(7))
    torch.testing.assert_close(zero, expected, rtol=0, atol=1e-6)


def test_per_sample_strength_is_broadcast_per_sample():
    mixed = multi_res_noise(SHAPE, torch.tensor([0.0, 0.9]), generator=_gen(3))
    g = _gen(3)
    n0 = torch.randn(SHAPE, generator=g)
    torch.rand(1, generator=g)
    n1 = torch.randn(SHAPE, generator=g)
    ratio = mixed[0] / (n0 + n1)[0]  # sample 0 is white noise, up to the global normalisation
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio.mean())), rtol=1e-4, atol=1e-4)
    same = multi_res_noise(SHAPE, torch.tensor([0.9, 0.9]), generator=_gen(3))
    torch.testing.assert_close(same, multi_res_noise(SHAPE, 0.9, generator=_gen(3)), rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        multi_res_noise(SHAPE, torch.tensor([0.1, 0.2, 0.3]), generator=_gen(3))


def test_annealed_strength_values():
    s = annealed_strength(torch.tensor([0, 500, 999]))
    torch.testing.assert_close(s, torch.tensor([0.0, 0.45, 0.8991]))
    torch.testing.assert_close(annealed_strength(torch.tensor([250]), num_train_timesteps=500, base=1.0),
                               torch.tensor([0.5]))


def test_strong_noise_is_low_frequency():
    shape = (2, 4, 64, 64)
    white = _lag1_autocorrelation(multi_res_noise(shape, 0.0, generator=_gen(11)))
    strong = _lag1_autocorrelation(multi_res_noise(shape, 0.9, generator=_gen(11)))
    assert abs(white) < 0.03
    assert strong > white + 0.1


def test_absolute_strategy_and_bad_arguments():
    a = multi_res_noise(SHAPE, 0.9, generator=_gen(1), downscale_strategy="absolute")
    assert a.shape == SHAPE and abs(float(a.std()) - 1.0) < 1e-5
    with pytest.raises(ValueError):
        multi_res_noise(SHAPE, 0.9, downscale_strategy="every_layer")
    with pytest.raises(ValueError):
        multi_res_noise((4, 8, 8), 0.9)


def test_original_divides_cumulatively(monkeypatch):
    sizes = []
    real = noise_mod.F.interpolate

    def recording(x, *args, **kwargs):
        sizes.append(tuple(x.shape[-2:]))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(noise_mod.F, "interpolate", recording)
    multi_res_noise((1, 1, 60, 80), 0.9, generator=_gen(0))
    assert sizes[0] == (60, 80) and (sizes[-1][0] == 1 or sizes[-1][1] == 1)
    # level i has size floor(prev / r**i) with r in [2, 4): level 2 is at most prev / 4
    for i in range(1, len(sizes)):
        prev, cur = sizes[i - 1], sizes[i]
        assert cur[0] <= max(1, prev[0] // 2**i) and cur[1] <= max(1, prev[1] // 2**i)

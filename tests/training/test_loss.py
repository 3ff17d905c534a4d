"""Latent validity mask, masked latent MSE and the v-prediction target."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from marigold_toolkit.training import (
    latent_valid_mask,
    make_training_scheduler,
    masked_latent_mse,
    v_prediction_target,
)


def test_one_invalid_pixel_invalidates_exactly_its_cell():
    mask = torch.ones(2, 1, 16, 24, dtype=torch.bool)
    mask[1, 0, 9, 17] = False  # pixel row 9 -> cell row 1, col 17 -> cell col 2
    lat = latent_valid_mask(mask)
    assert lat.shape == (2, 1, 2, 3) and lat.dtype == torch.bool
    expected = torch.ones(2, 1, 2, 3, dtype=torch.bool)
    expected[1, 0, 1, 2] = False
    assert torch.equal(lat, expected)
    assert torch.equal(latent_valid_mask(mask.float()), expected)  # nonzero = valid
    assert latent_valid_mask(torch.zeros(1, 1, 8, 8)).sum() == 0
    with pytest.raises(ValueError):
        latent_valid_mask(torch.ones(1, 1, 12, 16, dtype=torch.bool))  # 12 is not a multiple of 8
    with pytest.raises(ValueError):
        latent_valid_mask(torch.ones(1, 16, 16, dtype=torch.bool))


def test_masked_mse_hand_computed():
    pred = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # [1, 2, 1, 2]
    target = torch.tensor([[[[0.0, 0.0]], [[1.0, 10.0]]]])
    mask = torch.tensor([[[[True, False]]]])  # [1, 1, 1, 2]: only column 0, both channels
    # valid squared errors: (1-0)^2 = 1 and (3-1)^2 = 4 -> mean 2.5
    assert float(masked_latent_mse(pred, target, mask)) == pytest.approx(2.5)
    # no mask: (1 + 4 + 4 + 36) / 4
    assert float(masked_latent_mse(pred, target)) == pytest.approx(45 / 4)
    torch.testing.assert_close(masked_latent_mse(pred, target), F.mse_loss(pred, target))
    full_mask = torch.tensor([[[[True, False]], [[False, True]]]])  # per-channel mask: 1 and 36
    assert float(masked_latent_mse(pred, target, full_mask)) == pytest.approx(18.5)
    with pytest.raises(ValueError):
        masked_latent_mse(pred, target, torch.ones(1, 1, 2, 1, dtype=torch.bool))


def test_masked_mse_with_nothing_valid_is_zero_with_a_graph():
    pred = torch.randn(1, 4, 2, 2, requires_grad=True)
    loss = masked_latent_mse(pred, torch.zeros(1, 4, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.bool))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


@pytest.mark.parametrize("v1_1", [True, False])
def test_v_prediction_target(tiny_ckpt, v1_1):
    sched = make_training_scheduler(tiny_ckpt, v1_1=v1_1)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 2, 2, generator=g)
    eps = torch.randn(3, 4, 2, 2, generator=g)
    t = torch.tensor([0, 500, 999])
    v = v_prediction_target(sched, x0, eps, t)
    torch.testing.assert_close(v, sched.get_velocity(x0, eps, t), rtol=0, atol=0)
    abar = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(v, abar.sqrt() * eps - (1 - abar).sqrt() * x0)
    if v1_1:  # zero terminal SNR: at t = 999 the target is -x0
        torch.testing.assert_close(v[2], -x0[2])
    with pytest.raises(ValueError):
        v_prediction_target(sched, x0, eps[:2], t)

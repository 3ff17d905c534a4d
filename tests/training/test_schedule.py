"""LR multiplier and training DDPM scheduler."""

from __future__ import annotations

import json
import math

import pytest
import torch

from marigold_toolkit.training import IterExponential, make_lr_scheduler, make_training_scheduler


def test_iter_exponential_hand_computed():
    f = IterExponential(total_iter=1000, final_ratio=0.01, warmup_steps=100)
    assert f(0) == 0.0  # the authors' warm-up starts at 0
    assert f(50) == pytest.approx(0.5)
    assert f(100) == pytest.approx(1.0)
    # total/2: exp(400/900 * ln 0.01) = 0.01 ** (4/9)
    assert f(500) == pytest.approx(0.01 ** (4 / 9)) and f(500) == pytest.approx(0.12915497, rel=1e-6)
    assert f(999) == pytest.approx(0.01 ** (899 / 900))
    assert f(1000) == pytest.approx(0.01)
    assert f(5000) == pytest.approx(0.01)
    assert IterExponential(1000, 0.01, warmup_steps=0)(0) == 1.0
    with pytest.raises(ValueError):
        IterExponential(100, 0.01, warmup_steps=100)


def test_make_lr_scheduler_drives_the_optimizer():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-3)
    sched = make_lr_scheduler(opt, total_iter=1000, final_ratio=0.01, warmup_steps=100)
    assert opt.param_groups[0]["lr"] == 0.0
    for _ in range(50):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    state = sched.state_dict()  # the lambda is an object: the state must still be serialisable
    assert state["last_epoch"] == 50


def _check_v1_1(s):
    from diffusers import DDPMScheduler

    assert isinstance(s, DDPMScheduler)
    assert s.config.rescale_betas_zero_snr is True and s.config.timestep_spacing == "trailing"
    assert s.config.prediction_type == "v_prediction" and s.config.num_train_timesteps == 1000
    assert float(s.alphas_cumprod[-1]) == pytest.approx(0.0, abs=1e-12)  # zero terminal SNR


def test_training_scheduler_from_checkpoint_forms(tiny_ckpt):
    from diffusers import DDIMScheduler

    cfg_file = tiny_ckpt / "scheduler" / "scheduler_config.json"
    for source in (tiny_ckpt, tiny_ckpt / "scheduler", cfg_file, json.loads(cfg_file.read_text()),
                   DDIMScheduler.from_pretrained(tiny_ckpt, subfolder="scheduler")):
        _check_v1_1(make_training_scheduler(source, v1_1=True))
    with pytest.raises(FileNotFoundError):
        make_training_scheduler(tiny_ckpt / "nowhere")


def test_v1_0_scheduler_is_plain_even_from_a_v1_1_config(tiny_ckpt):
    s = make_training_scheduler(tiny_ckpt, v1_1=False)  # the checkpoint's own config is trailing + zero-SNR
    assert s.config.rescale_betas_zero_snr is False and s.config.timestep_spacing == "leading"
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float32) ** 2
    torch.testing.assert_close(s.alphas_cumprod, torch.cumprod(1 - betas, 0))
    assert float(s.alphas_cumprod[-1]) == pytest.approx(math.prod(1 - float(b) for b in betas), rel=1e-4)

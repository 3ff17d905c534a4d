"""Fixtures for the training building blocks: one tiny random depth-v1-1 checkpoint and a tiny "SD2-like" UNet
with 4 input and 4 output channels (the layout the conv surgery starts from)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from marigold_toolkit.testing import architecture_config, build_random_checkpoint


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A tiny random checkpoint (UNet 8 -> 4 channels, VAE, DDIM v1.1 scheduler, tokenizer, text encoder)."""
    return build_random_checkpoint(tmp_path_factory.mktemp("training") / "depth-v1-1", "depth-v1-1", seed=3)


@pytest.fixture(scope="session")
def tiny_vae(tiny_ckpt):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(tiny_ckpt / "vae").eval()


def make_base_unet(seed: int = 0):
    """A tiny UNet2DConditionModel with SD2's 4-in / 4-out latent layout, random non-zero weights."""
    from diffusers import UNet2DConditionModel

    cfg, _, _ = architecture_config("tiny", 1)
    cfg = {**cfg, "in_channels": 4, "out_channels": 4}
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return unet.eval()


@pytest.fixture
def base_unet():
    return make_base_unet()


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Accelerate keeps a process-wide singleton; each test's Trainer must be able to pick its own precision."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)

"""FLOP counts on meta tensors (pipeline.cost) equal the counts of a real run, and scale with the configuration."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch.utils.flop_counter import FlopCounterMode

from marigold_toolkit.pipeline.cost import EMPTY_PROMPT_TOKENS, inference_cost


def _real_tflop(fn) -> float:
    """FLOPs of a real CPU run. Attention runs on SDPA's math backend: its matrix products are counted like the
    meta run's (the flash CPU kernel has no FLOP formula in torch's counter, so it would count as 0)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e12


@pytest.mark.parametrize("layout,targets", [("depth-v1-1", 1), ("iid-lighting-v1-1", 3)])
def test_meta_count_equals_a_real_run(checkpoints, layout, targets):
    folder = checkpoints[layout]
    cost = inference_cost(folder, (30, 50), 40, num_inference_steps=3, ensemble_size=2)
    # 30x50 -> long edge 40: 24x40, padded to the latent stride 8: 24x40 -> latents 3x5
    assert cost.processing_size == (24, 40)
    assert (cost.calls_unet, cost.calls_decode) == (2 * 3, 2 * targets)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae").eval()
    text = torch.zeros(1, EMPTY_PROMPT_TOKENS, unet.config.cross_attention_dim)
    assert cost.unet_call == pytest.approx(_real_tflop(lambda: unet(torch.zeros(1, unet.config.in_channels, 3, 5), 999,
                                                                    encoder_hidden_states=text)), rel=1e-12)
    assert cost.decode_call == pytest.approx(_real_tflop(lambda: vae.decode(torch.zeros(1, 4, 3, 5))), rel=1e-12)
    assert cost.encode == pytest.approx(_real_tflop(lambda: vae.encode(torch.zeros(1, 3, 24, 40))), rel=1e-12)
    assert cost.total == pytest.approx(cost.encode + 6 * cost.unet_call + 2 * targets * cost.decode_call)


def test_tiled_vae_is_counted_tile_by_tile(checkpoints):
    """Below the tile size tiling changes nothing; above it the overlapping tiles are counted."""
    folder = checkpoints["depth-v1-1"]
    small = inference_cost(folder, (32, 32), 0, vae_tiling=True, vae_tile_size=64)
    assert small == inference_cost(folder, (32, 32), 0)
    big_tiled = inference_cost(folder, (96, 128), 0, vae_tiling=True, vae_tile_size=64)
    big = inference_cost(folder, (96, 128), 0)
    assert big_tiled.unet_call == big.unet_call and big_tiled.decode_call != big.decode_call

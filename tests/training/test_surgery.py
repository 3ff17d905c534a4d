"""conv_in / conv_out surgery: the expanded UNet fed with copies of one latent reproduces the SD2 UNet."""

from __future__ import annotations

import copy

import pytest
import torch

from marigold_toolkit.training import expand_conv_in, expand_conv_out, prepare_unet_for_task


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=g)
    text = torch.randn(1, 2, 32, generator=g).expand(2, -1, -1)
    t = torch.tensor([10, 700])
    return x, t, text


@torch.no_grad()
def _run(unet, x, t, text):
    return unet(x, t, encoder_hidden_states=text, return_dict=False)[0]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_conv_in_expansion_reproduces_base_output(base_unet, n):
    x, t, text = _inputs()
    ref = _run(base_unet, x, t, text)
    old_w, old_b = base_unet.conv_in.weight.clone(), base_unet.conv_in.bias.clone()
    unet = expand_conv_in(copy.deepcopy(base_unet), n)
    assert unet.conv_in.weight.shape == (old_w.shape[0], 4 * (1 + n), 3, 3)
    assert unet.config.in_channels == 4 * (1 + n)
    for k in range(1 + n):  # tiled along the input axis, divided by (1 + n)
        torch.testing.assert_close(unet.conv_in.weight[:, 4 * k : 4 * k + 4], old_w / (1 + n), rtol=0, atol=0)
    torch.testing.assert_close(unet.conv_in.bias, old_b, rtol=0, atol=0)
    out = _run(unet, torch.cat([x] * (1 + n), dim=1), t, text)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    # and without the division the output would be wrong: the scaling is what makes this work
    assert not torch.allclose(_run(base_unet, x * (1 + n), t, text), ref, atol=1e-3)


@pytest.mark.parametrize("n", [2, 3])
def test_conv_out_repeat_gives_identical_copies(base_unet, n):
    x, t, text = _inputs(1)
    ref = _run(base_unet, x, t, text)
    unet = prepare_unet_for_task(copy.deepcopy(base_unet), n)
    assert unet.config.in_channels == 4 * (1 + n) and unet.config.out_channels == 4 * n
    assert unet.conv_out.weight.shape[0] == 4 * n and unet.conv_out.bias.shape == (4 * n,)
    for k in range(n):  # repeated without scaling
        block = unet.conv_out.weight[4 * k : 4 * k + 4]
        torch.testing.assert_close(block, base_unet.conv_out.weight, rtol=0, atol=0)
    out = _run(unet, torch.cat([x] * (1 + n), dim=1), t, text)
    assert out.shape == (2, 4 * n, 8, 8)
    chunks = out.split(4, dim=1)
    for chunk in chunks:
        torch.testing.assert_close(chunk, ref, rtol=0, atol=1e-5)
        torch.testing.assert_close(chunk, chunks[0], rtol=0, atol=1e-6)


def test_conv_out_is_noop_for_one_target(base_unet):
    conv = base_unet.conv_out
    assert expand_conv_out(base_unet, 1).conv_out is conv
    assert base_unet.config.out_channels == 4


def test_already_expanded_unet_is_left_alone(tiny_ckpt):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_ckpt / "unet")  # a Marigold depth UNet: 8 in, 4 out
    conv_in, conv_out = unet.conv_in, unet.conv_out
    prepare_unet_for_task(unet, 1)
    assert unet.conv_in is conv_in and unet.conv_out is conv_out
    with pytest.raises(ValueError, match="input channels"):
        expand_conv_in(unet, 2)  # 8 channels cannot become 12 by tiling


def test_new_layers_keep_trainability_and_save_their_config(base_unet, tmp_path):
    from diffusers import UNet2DConditionModel

    base_unet.requires_grad_(True)
    unet = prepare_unet_for_task(base_unet, 2)
    assert all(p.requires_grad for p in (*unet.conv_in.parameters(), *unet.conv_out.parameters()))
    unet.save_pretrained(tmp_path / "unet")
    loaded = UNet2DConditionModel.from_pretrained(tmp_path / "unet")
    assert (loaded.config.in_channels, loaded.config.out_channels) == (12, 8)
    torch.testing.assert_close(loaded.conv_in.weight, unet.conv_in.weight)


def test_bad_n_targets(base_unet):
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError):
            expand_conv_in(base_unet, bad)

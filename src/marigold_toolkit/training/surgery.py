"""UNet surgery that turns a Stable Diffusion 2 UNet into a Marigold UNet (Marigold paper, Sec. 3.2).

The UNet input is ``cat([rgb_latent, target_latent_1, ..., target_latent_n], dim=1)`` (this order matters), so
``conv_in`` must take ``4 * (1 + n)`` channels and ``conv_out`` must produce ``4 * n`` channels.

* ``conv_in``: the SD2 weights ``[C_out, 4, k, k]`` are tiled ``1 + n`` times along the input-channel axis and
  divided by ``1 + n``; the bias is copied. If all ``1 + n`` latents are equal, the expanded conv gives
  exactly the original activation ("half the activation magnitude" per copy for depth/normals, where
  ``n = 1``).
* ``conv_out`` (only for ``n > 1``, intrinsics): weights ``[4, C_in, k, k]`` and bias are repeated ``n`` times
  along the output axis **without** scaling, so every target latent starts as the SD2 prediction.

Both functions modify the UNet in place, update its config with ``register_to_config`` (so ``save_pretrained``
writes the new channel counts) and return it. They are no-ops on a UNet that already has the right size, which
is the case when fine-tuning an existing Marigold checkpoint.

The empty-text conditioning is not built here: use
:func:`marigold_toolkit.checkpoints.loading.compute_empty_text_embedding`.
"""

from __future__ import annotations

import torch
from torch import nn

#: Channels of one Stable Diffusion VAE latent.
LATENT_CHANNELS = 4


def _check_n_targets(n_targets: int) -> int:
    if isinstance(n_targets, bool) or int(n_targets) != n_targets or n_targets < 1:
        raise ValueError(f"n_targets must be a positive integer, got {n_targets!r}")
    return int(n_targets)


def _like(conv: nn.Conv2d, in_channels: int, out_channels: int) -> nn.Conv2d:
    """A Conv2d with ``conv``'s geometry, device and dtype but new channel counts (weights uninitialised)."""
    if conv.groups != 1:
        raise ValueError(f"grouped convolutions are not supported (groups={conv.groups})")
    return nn.Conv2d(
        in_channels, out_channels, kernel_size=conv.kernel_size, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode,
        device=conv.weight.device, dtype=conv.weight.dtype,
    )


@torch.no_grad()
def expand_conv_in(unet: nn.Module, n_targets: int) -> nn.Module:
    """Give ``unet.conv_in`` ``4 * (1 + n_targets)`` input channels (weights tiled / (1 + n), bias copied).

    Args:
        unet: a ``UNet2DConditionModel`` (any ``conv_in`` output width; 320 for SD2) with 4 input channels, or
            already ``4 * (1 + n_targets)`` (then nothing changes).
        n_targets: number of target latents (1 for depth and normals, 2 or 3 for intrinsics).

    Returns:
        ``unet`` itself, modified in place; ``unet.config.in_channels`` is updated.

    Raises:
        ValueError: if ``conv_in`` has neither 4 nor ``4 * (1 + n_targets)`` input channels.
    """
    n = _check_n_targets(n_targets)
    old = unet.conv_in
    want = LATENT_CHANNELS * (1 + n)
    if old.in_channels == want:
        return unet
    if old.in_channels != LATENT_CHANNELS:
        raise ValueError(
            f"conv_in has {old.in_channels} input channels; expected {LATENT_CHANNELS} "
            "(a Stable Diffusion UNet) "
            f"or {want} (already expanded for {n} target(s))"
        )
    new = _like(old, want, old.out_channels)
    new.weight.copy_(old.weight.repeat(1, 1 + n, 1, 1) / (1 + n))
    new.weight.requires_grad_(old.weight.requires_grad)
    if old.bias is not None:
        new.bias.copy_(old.bias)
        new.bias.requires_grad_(old.bias.requires_grad)
    new.train(old.training)
    unet.conv_in = new
    unet.register_to_config(in_channels=want)
    return unet


@torch.no_grad()
def expand_conv_out(unet: nn.Module, n_targets: int) -> nn.Module:
    """Give ``unet.conv_out`` ``4 * n_targets`` output channels by repeating weights and bias (no scaling).

    A no-op for ``n_targets == 1`` or when ``conv_out`` already has ``4 * n_targets`` outputs.

    Returns:
        ``unet`` itself, modified in place; ``unet.config.out_channels`` is updated.

    Raises:
        ValueError: if ``conv_out`` has neither 4 nor ``4 * n_targets`` output channels.
    """
    n = _check_n_targets(n_targets)
    old = unet.conv_out
    want = LATENT_CHANNELS * n
    if old.out_channels == want:
        return unet
    if old.out_channels != LATENT_CHANNELS:
        raise ValueError(
            f"conv_out has {old.out_channels} output channels; expected {LATENT_CHANNELS} "
            "(a Stable Diffusion UNet) "
            f"or {want} (already expanded for {n} target(s))"
        )
    new = _like(old, old.in_channels, want)
    new.weight.copy_(old.weight.repeat(n, 1, 1, 1))
    new.weight.requires_grad_(old.weight.requires_grad)
    if old.bias is not None:
        new.bias.copy_(old.bias.repeat(n))
        new.bias.requires_grad_(old.bias.requires_grad)
    new.train(old.training)
    unet.conv_out = new
    unet.register_to_config(out_channels=want)
    return unet


def prepare_unet_for_task(unet: nn.Module, n_targets: int) -> nn.Module:
    """:func:`expand_conv_in` then :func:`expand_conv_out`: SD2 UNet -> Marigold UNet for ``n_targets``."""
    expand_conv_in(unet, n_targets)
    expand_conv_out(unet, n_targets)
    return unet


__all__ = ["LATENT_CHANNELS", "expand_conv_in", "expand_conv_out", "prepare_unet_for_task"]

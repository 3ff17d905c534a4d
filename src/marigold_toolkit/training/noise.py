"""Annealed multi-resolution noise (Marigold's ``src/util/multi_res_noise.py``, strategy
``original``, itself adapted from J. Whitaker's "multi-resolution noise" report).

Algorithm for a latent of shape ``[B, C, H, W]`` and strength ``s`` (a float or one value per sample)::

    noise = randn(B, C, H, W)
    h, w = H, W
    for i in 0..9:
        r ~ U[2, 4)                                   # one draw per level, shared by the batch
        h, w = max(1, int(h / r**i)), max(1, int(w / r**i))
        noise += upsample_bilinear(randn(B, C, h, w), size=(H, W)) * s**i
        if h == 1 or w == 1: break
    noise /= noise.std()                              # one global (unbiased) std over the whole batch

Facts worth knowing (checked in the tests):

* At ``i = 0`` the factor is ``r**0 = 1``, so a second full-resolution Gaussian is added with weight
  ``s**0 = 1`` (``0.0 ** 0 == 1`` in Python and ``torch.pow(0., 0) == 1`` in torch, also for a zero strength).
  With ``s = 0`` the result is therefore ``(n0 + n1) / std`` of two independent full-resolution Gaussians,
  i.e. plain white noise; the later levels are still drawn (the generator advances identically) but weighted
  by ``0**i = 0``.
* Strategy ``"original"`` reproduces the authors' code, in which ``h, w`` are divided **cumulatively** (the
  sizes are ``H / (r_1 r_2^2 ... r_i^i)``, truncated at every level). The paper's text writes the size as
  ``H / r^i``, which reads as a division of the full size; that variant is available as
  ``downscale_strategy="absolute"``. Example for a 60x80 latent (levels counted including ``i = 0``):
  ``original`` uses 3-4 levels (60x80 -> ~20x27 -> ~2x2 -> 1x1), ``absolute`` 4-6
  (60x80 -> ~20x27 -> ~5x7 -> ... -> 1x1).
* The random draws happen in this order on the generator's device, in float32: the initial ``randn``, then per
  level one ``rand(1)`` and one ``randn``. With the same generator seed and device this is the authors' exact
  sequence. The result is cast to ``dtype`` and moved to ``device`` at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

#: Supported ``downscale_strategy`` values (see the module docstring).
DOWNSCALE_STRATEGIES = ("original", "absolute")
_MAX_LEVELS = 10


def annealed_strength(
    timesteps: torch.Tensor, num_train_timesteps: int = 1000, base: float = 0.9
) -> torch.Tensor:
    """Per-sample strength ``base * t / num_train_timesteps`` (float32, shape and device of ``timesteps``).

    With the defaults: t = 0 -> 0, t = 500 -> 0.45, t = 999 -> 0.8991.
    """
    if num_train_timesteps <= 0:
        raise ValueError(f"num_train_timesteps must be positive, got {num_train_timesteps}")
    t = torch.as_tensor(timesteps)
    return base * t.to(torch.float32) / float(num_train_timesteps)


def _strength(strength, batch: int, device: torch.device) -> float | torch.Tensor:
    if not torch.is_tensor(strength):
        return float(strength)
    s = strength.detach().to(device=device, dtype=torch.float32)
    if s.dim() == 0:
        return s
    s = s.reshape(-1)
    if s.numel() != batch:
        raise ValueError(
            f"strength must be a scalar or have one value per sample ({batch}), got {tuple(strength.shape)}"
        )
    return s.view(batch, 1, 1, 1)


def multi_res_noise(
    shape_or_like: torch.Tensor | Sequence[int],
    strength: float | torch.Tensor = 0.9,
    generator: torch.Generator | None = None,
    downscale_strategy: str = "original",
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Multi-resolution noise with unit global std (see the module docstring for the exact algorithm).

    Args:
        shape_or_like: ``[B, C, H, W]`` as a shape, or a tensor whose shape (and, unless given, device and
            dtype) is used.
        strength: weight base ``s`` of level ``i`` (weight ``s**i``); a float, a 0-d tensor, or a tensor of
            ``B`` values (e.g. :func:`annealed_strength` of the sampled timesteps), broadcast per sample.
        generator: source of all randomness (``None``: torch's global RNG). Noise is drawn on its device.
        downscale_strategy: ``"original"`` (authors' code, cumulative division) or ``"absolute"``.
        device: device of the result (default: the tensor's device, else the generator's device, else CPU).
        dtype: dtype of the result (default: the tensor's dtype, else float32).

    Returns:
        ``[B, C, H, W]`` noise with ``noise.std() == 1`` over the whole batch.
    """
    if downscale_strategy not in DOWNSCALE_STRATEGIES:
        raise ValueError(
            f"downscale_strategy must be one of {DOWNSCALE_STRATEGIES}, got {downscale_strategy!r}"
        )
    if torch.is_tensor(shape_or_like):
        shape = tuple(shape_or_like.shape)
        device = shape_or_like.device if device is None else device
        dtype = shape_or_like.dtype if dtype is None else dtype
    else:
        shape = tuple(int(s) for s in shape_or_like)
    if len(shape) != 4 or min(shape) < 1 or shape[0] * shape[1] * shape[2] * shape[3] < 2:
        raise ValueError(f"multi-res noise needs a [B, C, H, W] shape with at least 2 elements, got {shape}")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    dtype = torch.float32 if dtype is None else dtype
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be floating point, got {dtype}")
    draw_device = generator.device if generator is not None else device

    b, c, full_h, full_w = shape
    s = _strength(strength, b, draw_device)
    noise = torch.randn(shape, generator=generator, device=draw_device, dtype=torch.float32)
    h, w = full_h, full_w
    for i in range(_MAX_LEVELS):
        r = torch.rand(1, generator=generator, device=draw_device, dtype=torch.float32) * 2 + 2
        base_h, base_w = (h, w) if downscale_strategy == "original" else (full_h, full_w)
        h, w = max(1, int(base_h / (r**i))), max(1, int(base_w / (r**i)))
        level = torch.randn((b, c, h, w), generator=generator, device=draw_device, dtype=torch.float32)
        noise += F.interpolate(level, size=(full_h, full_w), mode="bilinear", align_corners=False) * s**i
        if h == 1 or w == 1:
            break
    noise = noise / noise.std()
    return noise.to(device=device, dtype=dtype)


__all__ = ["DOWNSCALE_STRATEGIES", "annealed_strength", "multi_res_noise"]

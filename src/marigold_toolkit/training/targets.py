"""Ground truth -> training latents (reference §1.4, §1.5, §2.2 augmentation).

* :func:`normalize_depth`: metric/linear depth -> affine-invariant depth in [-1, 1] (per-image 2 %/98 %
  quantiles).
* :func:`encode_targets`: task targets -> ``[B, 4T, h, w]`` latents through the task codec and the frozen VAE
  (posterior **mean** x ``scaling_factor``, the same path as the RGB image).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..pipeline.denoise import encode_images

# torch.quantile refuses inputs above this many elements
_TORCH_QUANTILE_MAX = 2**24


def _quantiles(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``torch.quantile(values, q)`` (linear interpolation), also for inputs too large for torch.quantile."""
    if values.numel() <= _TORCH_QUANTILE_MAX:
        return torch.quantile(values, q)
    srt = values.sort().values
    pos = q * (values.numel() - 1)
    lo = pos.floor().long()
    hi = torch.clamp(lo + 1, max=values.numel() - 1)
    return torch.lerp(srt[lo], srt[hi], pos - lo)


def normalize_depth(
    depth: torch.Tensor,
    valid_mask: torch.Tensor | None = None,
    quantile: float = 0.02,
    clip: bool = True,
    invalid_value: float | None = None,
) -> torch.Tensor:
    """Per-image scale/shift normalisation of linear depth to [-1, 1] (``ScaleShiftDepthNormalizer``).

    For each image, over its valid pixels (``valid_mask & isfinite(depth) & (depth > 0)``, as the authors'
    ``mask & (depth > 0)`` plus a finiteness guard): ``lo, hi = torch.quantile(valid, [q, 1 - q])`` and
    ``d' = (d - lo) / (hi - lo) * 2 - 1``, clipped to [-1, 1] when ``clip``. Near = -1, far = +1 (depth, not
    disparity).

    Invalid pixels: with ``invalid_value=None`` (default, the authors' behaviour) they go through the same
    affine map and clipping as valid ones, so the usual invalid depth 0 becomes -1 and a too-far/inf depth +1;
    NaN depth becomes -1. Their latent cells are excluded by
    :func:`~marigold_toolkit.training.loss.latent_valid_mask` anyway, but the values still enter the VAE. With a
    number, invalid pixels are set to that value instead.

    Degenerate images (no valid pixel, one valid pixel, or ``hi == lo``, e.g. constant depth) have no relative
    depth: all their pixels become 0 (then ``invalid_value`` applies to invalid ones). No NaN or inf is
    produced.

    Args:
        depth: ``[B, 1, H, W]`` linear depth (metres or any unit).
        valid_mask: ``[B, 1, H, W]`` (bool, or nonzero = valid); ``None`` = all pixels with finite depth > 0.
        quantile: lower quantile ``q`` (upper is ``1 - q``); 0 gives min/max.
        clip: clip to [-1, 1] (``True`` in every Marigold config).
        invalid_value: ``None`` (authors' behaviour, see above) or the value given to invalid pixels.

    Returns:
        ``[B, 1, H, W]`` float32 (float64 for float64 input).
    """
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be [B, 1, H, W], got {tuple(depth.shape)}")
    if not 0.0 <= quantile < 0.5:
        raise ValueError(f"quantile must be in [0, 0.5), got {quantile}")
    d = depth if depth.dtype == torch.float64 else depth.to(torch.float32)
    valid = torch.isfinite(d) & (d > 0)
    if valid_mask is not None:
        if valid_mask.shape != depth.shape:
            raise ValueError(f"valid_mask {tuple(valid_mask.shape)} must match depth {tuple(depth.shape)}")
        valid &= valid_mask.to(d.device) != 0
    q = torch.tensor([quantile, 1.0 - quantile], dtype=d.dtype, device=d.device)
    out = torch.zeros_like(d)
    for i in range(d.shape[0]):
        vals = d[i][valid[i]]
        if vals.numel() < 2:
            continue  # degenerate: stays 0
        lo, hi = _quantiles(vals, q)
        scale = hi - lo
        ok = scale > 0
        mapped = (d[i] - lo) / torch.where(ok, scale, torch.ones_like(scale)) * 2.0 - 1.0
        out[i] = torch.where(ok, mapped, torch.zeros_like(mapped))
    if clip:
        out = out.clamp(-1.0, 1.0)
    out = torch.nan_to_num(out, nan=-1.0, posinf=1.0, neginf=-1.0)
    if invalid_value is not None:
        out = torch.where(valid, out, torch.full_like(out, float(invalid_value)))
    return out


def _module_device_dtype(module: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(module.parameters())
    return p.device, p.dtype


def _target_list(codec, targets) -> list[torch.Tensor]:
    names = codec.target_names
    if isinstance(targets, Mapping):
        missing = [n for n in names if n not in targets]
        if missing:
            raise KeyError(f"targets lack {missing}; the codec expects {names}")
        return [targets[n] for n in names]
    if not torch.is_tensor(targets):
        raise TypeError(f"targets must be a tensor or a mapping name -> tensor, got {type(targets).__name__}")
    if targets.dim() == 4 and len(names) == 1:
        return [targets]
    if targets.dim() == 5 and targets.shape[1] == len(names):
        return list(targets.unbind(dim=1))
    raise ValueError(
        f"a tensor of targets must be [B, C, H, W] (one target) or [B, T={len(names)}, C, H, W], "
        f"got {tuple(targets.shape)}"
    )


def encode_targets(vae, codec, targets, batch_size: int | None = None) -> torch.Tensor:
    """Targets -> training latents ``[B, 4T, h, w]`` (no gradient).

    Each target goes through ``codec.encode`` (prediction units -> 3-channel VAE input in [-1, 1]), then
    :func:`~marigold_toolkit.pipeline.denoise.encode_images` (posterior mean x ``vae.config.scaling_factor``).
    Latents are concatenated along channels in ``codec.target_names`` order (target ``k`` in channels
    ``4k .. 4k+3``), matching the UNet output layout.

    Args:
        vae: an ``AutoencoderKL`` (inputs are moved to its device and dtype).
        codec: a :class:`~marigold_toolkit.tasks.TaskCodec`; depth expects normalised depth in [-1, 1]
            (see :func:`normalize_depth`), normals unit vectors, intrinsics each target in [0, 1].
        targets: a mapping ``name -> [B, C, H, W]`` with every name of ``codec.target_names`` (other keys,
            e.g. a mask, are ignored); or a tensor ``[B, C, H, W]`` for a one-target codec; or
            ``[B, T, C, H, W]``.
        batch_size: rows per VAE call (default: all ``B * T`` rows at once).
    """
    items = _target_list(codec, targets)
    ref = items[0].shape
    for name, t in zip(codec.target_names, items):
        if t.dim() != 4 or t.shape[0] != ref[0] or t.shape[-2:] != ref[-2:]:
            raise ValueError(f"target {name!r} has shape {tuple(t.shape)}; all must be [B={ref[0]}, C, "
                             f"{ref[-2]}, {ref[-1]}]")
    device, dtype = _module_device_dtype(vae)
    with torch.no_grad():
        images = torch.cat([codec.encode(t.to(device=device, dtype=dtype)) for t in items])  # [T*B, 3, H, W]
        latents = encode_images(vae, images, batch_size or images.shape[0])  # [T*B, 4, h, w]
    n_targets, b = len(items), ref[0]
    _, c, h, w = latents.shape
    return latents.view(n_targets, b, c, h, w).transpose(0, 1).reshape(b, n_targets * c, h, w)


__all__ = ["normalize_depth", "encode_targets"]

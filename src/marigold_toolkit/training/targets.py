"""Ground truth -> training latents: :func:`encode_targets` sends a task's targets (in prediction units, see
:meth:`~marigold_toolkit.tasks.base.Task.training_targets`) through the task's codec and the frozen VAE
(posterior **mean** x ``scaling_factor``, the same path as the RGB image)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..pipeline.denoise import encode_images
from ..tasks import Task

def _module_device_dtype(module: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(module.parameters())
    return p.device, p.dtype


def _target_list(task: Task, targets) -> list[torch.Tensor]:
    names = task.target_names
    if isinstance(targets, Mapping):
        missing = [n for n in names if n not in targets]
        if missing:
            raise KeyError(f"targets lack {missing}; the task expects {names}")
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


def encode_targets(vae, task: Task, targets, batch_size: int | None = None, encode_fn=None) -> torch.Tensor:
    """Targets -> training latents ``[B, 4T, h, w]`` (no gradient).

    Each target goes through ``task.encode`` (prediction units -> 3-channel VAE input in [-1, 1]), then
    :func:`~marigold_toolkit.pipeline.denoise.encode_images` (posterior mean x ``vae.config.scaling_factor``).
    Latents are concatenated along channels in ``task.target_names`` order (target ``k`` in channels
    ``4k .. 4k+3``), matching the UNet output layout.

    Args:
        vae: an ``AutoencoderKL`` (inputs are moved to its device and dtype).
        task: a :class:`~marigold_toolkit.tasks.base.Task`; depth expects normalised depth in [-1, 1]
            (see :func:`~marigold_toolkit.tasks.depth.normalize_depth`), normals unit vectors, intrinsics each
            target in [0, 1].
        targets: a mapping ``name -> [B, C, H, W]`` with every name of ``task.target_names`` (other keys,
            e.g. a mask, are ignored); or a tensor ``[B, C, H, W]`` for a one-target codec; or
            ``[B, T, C, H, W]``.
        batch_size: rows per VAE call (default: all ``B * T`` rows at once).
        encode_fn: replaces ``vae.encode(x).latent_dist.mode()`` (e.g. a
            :class:`~marigold_toolkit.training.latent_cache.LatentCache`'s ``encode``).
    """
    items = _target_list(task, targets)
    ref = items[0].shape
    for name, t in zip(task.target_names, items):
        if t.dim() != 4 or t.shape[0] != ref[0] or t.shape[-2:] != ref[-2:]:
            raise ValueError(f"target {name!r} has shape {tuple(t.shape)}; all must be [B={ref[0]}, C, "
                             f"{ref[-2]}, {ref[-1]}]")
    device, dtype = _module_device_dtype(vae)
    with torch.no_grad():
        images = torch.cat([task.encode(t.to(device=device, dtype=dtype)) for t in items])  # [T*B, 3, H, W]
        latents = encode_images(vae, images, batch_size or images.shape[0], encode_fn)  # [T*B, 4, h, w]
    n_targets, b = len(items), ref[0]
    _, c, h, w = latents.shape
    return latents.view(n_targets, b, c, h, w).transpose(0, 1).reshape(b, n_targets * c, h, w)


__all__ = ["encode_targets"]

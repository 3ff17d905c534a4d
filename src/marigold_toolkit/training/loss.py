"""Latent-space loss pieces of the Marigold training objective.

Marigold trains with ``MSELoss(reduction="mean")`` between the UNet output and the v-prediction target, in
latent space. For depth (and IID-appearance) only latent cells whose 8x8 pixel footprint is entirely valid
contribute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.checks import check_same_shape, check_shape


def latent_valid_mask(pixel_mask: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Pixel validity ``[B, 1, H, W]`` -> latent validity ``[B, 1, H/factor, W/factor]`` (bool).

    A latent cell is valid only if **all** its ``factor x factor`` pixels are valid:
    ``~max_pool2d(~mask, factor, factor)``. ``H`` and ``W`` must be multiples of ``factor``. Non-bool masks
    are read as ``mask != 0``.
    """
    check_shape(pixel_mask, "B 1 H W", "pixel_mask")
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    h, w = pixel_mask.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"mask size {h}x{w} is not a multiple of the latent factor {factor}")
    invalid = (pixel_mask == 0).to(torch.float32)
    return F.max_pool2d(invalid, kernel_size=factor, stride=factor) == 0


def masked_latent_mse(
    pred: torch.Tensor, target: torch.Tensor, latent_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error over the valid latent elements (computed in float32).

    Args:
        pred, target: ``[B, C, h, w]`` (``C = 4T``).
        latent_mask: ``None`` (plain mean over all elements), or bool ``[B, 1, h, w]`` (broadcast over
            channels) or ``[B, C, h, w]``. The loss is ``sum(mask * (pred - target)**2) / mask.sum()``, i.e.
            the authors' ``mse_loss(pred[mask], target[mask])`` (one mean over the batch, not a mean of
            per-sample means).

    Returns:
        A scalar. If the mask selects nothing, the loss is 0 (still attached to the graph, zero gradient)
        instead of the NaN the authors' code would produce, so one fully invalid batch cannot poison the
        weights.
    """
    check_same_shape(pred, target, ("pred", "target"))
    check_shape(pred, "B C h w", "latents")
    diff2 = (pred.float() - target.float()) ** 2
    if latent_mask is None:
        return diff2.mean()
    b, c, h, w = pred.shape
    check_shape(latent_mask, [str(b), f"1|{c}", str(h), str(w)], "latent_mask")
    mask = (latent_mask != 0).expand(b, c, h, w)
    count = mask.sum().clamp(min=1)  # no host sync; an empty mask gives 0 / 1
    return (diff2 * mask).sum() / count


def v_prediction_target(
    scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """v-prediction target ``sqrt(abar_t) * noise - sqrt(1 - abar_t) * latents`` = ``scheduler.get_velocity``.

    Args:
        scheduler: the training ``DDPMScheduler`` (its ``alphas_cumprod`` include zero-SNR rescaling for
            v1.1).
        latents: clean target latents ``x0`` ``[B, C, h, w]``.
        noise: the noise used by ``add_noise`` ``[B, C, h, w]``.
        timesteps: ``[B]`` integer timesteps.
    """
    if latents.shape != noise.shape:
        raise ValueError(f"latents {tuple(latents.shape)} and noise {tuple(noise.shape)} differ")
    timesteps = torch.as_tensor(timesteps)
    if timesteps.dim() > 1 or (timesteps.dim() == 1 and timesteps.numel() not in (1, latents.shape[0])):
        raise ValueError(
            f"timesteps must be a scalar or [B={latents.shape[0]}], got {tuple(timesteps.shape)}"
        )
    return scheduler.get_velocity(latents, noise, timesteps)


__all__ = ["latent_valid_mask", "masked_latent_mse", "v_prediction_target"]

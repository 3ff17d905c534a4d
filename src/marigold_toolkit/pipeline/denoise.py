"""The one denoising loop shared by every task.

Rows are (image, ensemble member) pairs; any rows of the same latent size can share a UNet call. Randomness is
drawn per image from that image's own generator in the exact order diffusers' Marigold pipelines use for one
image with ``batch_size=1``, so results do not depend on how rows are batched:

1. initial noise: one ``randn`` of shape ``[E, 4T, h, w]``;
2. stochastic schedulers (LCM): for member 0 the re-noising draws of steps ``0..N-2``, then member 1, ...,
   each of shape ``[1, 4T, h, w]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


def is_stochastic(scheduler) -> bool:
    """Schedulers whose ``step`` injects fresh noise (LCM multistep)."""
    return type(scheduler).__name__ == "LCMScheduler"


@dataclass
class NoisePlan:
    """Noise for the ``E`` members of one image: ``initial [E, C, h, w]``, ``steps [E, N-1, C, h, w]`` or None."""

    initial: torch.Tensor
    steps: torch.Tensor | None


def make_generators(n: int, seed=None, generator=None) -> list[torch.Generator]:
    """One generator per image: ``generator`` (one shared by all, or a list of ``n``), else CPU generators seeded
    with ``seed`` (one int for all images or a list of ``n``; ``None``: random)."""
    if generator is not None and seed is not None:
        raise ValueError("pass either seed or generator, not both")
    if isinstance(generator, torch.Generator):
        return [generator] * n
    if generator is not None:
        if len(generator) != n:
            raise ValueError(f"got {len(generator)} generators for {n} images")
        return list(generator)
    seeds = seed if isinstance(seed, (list, tuple)) else [seed] * n
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} images")
    gens = []
    for s in seeds:
        g = torch.Generator(device="cpu")
        if s is None:
            g.seed()
        else:
            g.manual_seed(int(s))
        gens.append(g)
    return gens


def draw_noise(
    generator: torch.Generator,
    ensemble_size: int,
    latent_shape: tuple[int, int, int],
    num_steps: int,
    stochastic: bool,
    dtype: torch.dtype,
    device: torch.device,
) -> NoisePlan:
    """Draw all noise one image needs, on the generator's device, then move it to ``device``."""
    gdev = generator.device
    initial = torch.randn((ensemble_size, *latent_shape), generator=generator, device=gdev, dtype=dtype)
    steps = None
    if stochastic and num_steps > 1:
        draws = [
            torch.randn((1, *latent_shape), generator=generator, device=gdev, dtype=dtype)
            for _ in range(ensemble_size * (num_steps - 1))
        ]
        steps = torch.cat(draws).view(ensemble_size, num_steps - 1, *latent_shape).to(device)
    return NoisePlan(initial.to(device), steps)


#: ``(sample [R, 4(1+T), h, w], timestep 0-d int64, text [R, L, D]) -> prediction [R, 4T, h, w]``
UNetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: a VAE half as a plain function: encoder ``[N, 3, H, W] in [-1, 1] -> posterior mean [N, 4, H/8, W/8]``
#: (unscaled), decoder ``[R, 4, h, w] (unscaled) -> [R, 3, 8h, 8w]`` (about [-1, 1])
VaeFn = Callable[[torch.Tensor], torch.Tensor]


def as_unet_fn(unet) -> UNetFn:
    """A diffusers ``UNet2DConditionModel`` (or any ``nn.Module`` with its call convention, e.g. a
    ``torch.compile``'d one) -> :data:`UNetFn`; any other callable is taken to be a :data:`UNetFn` already
    (the injected fast-tier backends, see :mod:`marigold_toolkit.pipeline.backends`)."""
    if isinstance(unet, torch.nn.Module):
        return lambda sample, t, text: unet(sample, t, encoder_hidden_states=text, return_dict=False)[0]
    return unet


@torch.no_grad()
def encode_images(vae, images: torch.Tensor, batch_size: int, encode_fn: VaeFn | None = None) -> torch.Tensor:
    """``[N, 3, H, W]`` in [-1, 1] -> scaled posterior-mean latents ``[N, 4, H/8, W/8]``.

    ``encode_fn`` replaces ``vae.encode(x).latent_dist.mode()`` (a compiled or exported encoder); ``vae`` then
    only supplies ``config.scaling_factor``.
    """
    if encode_fn is None:
        encode_fn = lambda x: vae.encode(x).latent_dist.mode()  # noqa: E731
    out = [encode_fn(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    return torch.cat(out) * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(
    vae, latents: torch.Tensor, batch_size: int, decode_fn: Callable, vae_decode_fn: VaeFn | None = None
) -> torch.Tensor:
    """``[R, 4, h, w]`` latents -> ``decode_fn(vae image)`` for chunks of ``batch_size`` rows.

    ``vae_decode_fn`` replaces ``vae.decode(z).sample`` (a compiled or exported decoder); ``vae`` then only
    supplies ``config.scaling_factor``.
    """
    if vae_decode_fn is None:
        vae_decode_fn = lambda z: vae.decode(z).sample  # noqa: E731
    sf = vae.config.scaling_factor
    out = [decode_fn(vae_decode_fn(latents[i : i + batch_size] / sf)) for i in range(0, latents.shape[0], batch_size)]
    return torch.cat(out)


def _lcm_renoise(scheduler, step_index: int, denoised: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    prev_t = scheduler.timesteps[step_index + 1]
    alpha_prev = scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else scheduler.final_alpha_cumprod
    return alpha_prev.sqrt() * denoised + (1 - alpha_prev).sqrt() * noise


@torch.no_grad()
def denoise(
    unet,
    scheduler,
    image_latent: torch.Tensor,
    noise: torch.Tensor,
    text_embedding: torch.Tensor,
    num_steps: int,
    batch_size: int,
    step_noise: torch.Tensor | None = None,
    progress: Callable[[int], None] | None = None,
    final_x0: bool = False,
) -> torch.Tensor:
    """Run the reverse diffusion for all rows.

    Args:
        unet: a diffusers UNet, or a :data:`UNetFn` (the fast-tier backends inject theirs here, so every backend
            runs this same loop).
        image_latent: ``[R, 4, h, w]`` conditioning latents (one row per image x member).
        noise: ``[R, 4T, h, w]`` initial target latents.
        text_embedding: ``[1, L, D]`` empty-prompt embedding.
        num_steps: number of scheduler steps.
        batch_size: rows per UNet call.
        step_noise: ``[R, N-1, 4T, h, w]`` re-noising draws for stochastic schedulers, else ``None``.
        progress: called with the number of rows finished after each chunk.
        final_x0: return the last step's clean-sample estimate (``pred_original_sample``) instead of its
            ``prev_sample``, as end-to-end fine-tuned checkpoints are trained and run (E2E-FT).

    Returns:
        ``[R, 4T, h, w]`` denoised target latents.
    """
    unet_fn = as_unet_fn(unet)
    stochastic = is_stochastic(scheduler)
    if stochastic and num_steps > 1 and step_noise is None:
        raise ValueError("a stochastic scheduler needs step_noise")
    scratch = torch.Generator(device="cpu").manual_seed(0)  # LCM's own draw, replaced by the planned noise
    out = []
    for start in range(0, image_latent.shape[0], batch_size):
        cond = image_latent[start : start + batch_size]
        latent = noise[start : start + batch_size]
        text = text_embedding.expand(cond.shape[0], -1, -1)
        scheduler.set_timesteps(num_steps, device=cond.device)
        for k, t in enumerate(scheduler.timesteps):
            pred = unet_fn(torch.cat([cond, latent], dim=1), t, text)
            if not stochastic:
                out_step = scheduler.step(pred, t, latent)
                last = k == len(scheduler.timesteps) - 1
                latent = out_step.pred_original_sample if final_x0 and last else out_step.prev_sample
                continue
            denoised = scheduler.step(pred, t, latent, generator=scratch).denoised
            if k < len(scheduler.timesteps) - 1:
                latent = _lcm_renoise(scheduler, k, denoised, step_noise[start : start + batch_size, k])
            else:
                latent = denoised
        out.append(latent)
        if progress is not None:
            progress(cond.shape[0])
    return torch.cat(out)

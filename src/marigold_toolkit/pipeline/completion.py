"""Marigold-DC: depth completion by test-time guidance of a Marigold depth model with sparse metric measurements
(Viola et al., ICCV 2025; the authors' ``MarigoldDepthCompletionPipeline`` in prs-eth/Marigold-DC).

Per ensemble member the depth latent ``z`` and two scalars ``a, b`` (both 1 at the start) are optimised while
DDIM (trailing spacing) denoises ``z``. The metric depth of an affine-invariant decoded depth ``d`` is
``a^2 (c_max - c_min) d + b^2 c_min`` with ``c_min, c_max`` the smallest and largest sparse depths. At every step:

1. the UNet predicts ``v`` from ``[image latent, z]``;
2. ``eps = sqrt(abar_t) v + sqrt(1 - abar_t) z`` (no gradient; it sets the gradient's size below);
3. the DDIM step's ``x0`` preview (Tweedie's estimate) is decoded by the VAE to ``d``, mapped to metres,
   unpadded and resized to the input size (bilinear, no antialiasing);
4. loss = L1 + MSE between that depth and the sparse depths at the measured pixels; backpropagation through the
   decoder and the UNet;
5. ``z.grad`` is rescaled to the norm of ``eps``; one Adam step (lr 0.05 for ``z``, 0.005 for ``a, b``);
6. ``z`` <- the DDIM step from the updated ``z`` with the ``v`` predicted before the update.

After the last step the final ``z`` is decoded the same way; the members' metric depths merge by the per-pixel
median. The initial latents are drawn exactly as :meth:`~marigold_toolkit.pipeline.predictor.Predictor.predict`
draws them (one ``randn`` of ``[E, 4, h, w]`` from the image's generator), so a seed gives the authors' noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.image import resize, unpad
from ..tasks.depth import DepthTask
from .backends import BackendError
from .denoise import draw_noise, encode_images, make_generators

logger = logging.getLogger(__name__)

#: the authors' settings
LR_LATENT = 0.05
LR_SCALE_SHIFT = 0.005
DEFAULT_STEPS = 50
DEFAULT_SEED = 2024


class CompletionError(ValueError):
    """Depth completion cannot run with these inputs (a one-line message)."""


@dataclass
class CompletionOutput:
    """Marigold-DC's result for one image.

    Attributes:
        depth: float32 ``[H, W]`` metric depth (the units of the sparse depths) at the input resolution.
        members: float32 ``[E, H, W]`` per-member metric depths (before the median).
        losses: per member, the guidance loss (L1 + MSE at the sparse pixels) at every denoising step.
        scale_shift: per member, the final ``(scale, shift)`` of ``depth = scale * d + shift`` (``d`` the decoded
            affine-invariant depth): ``scale = a^2 (c_max - c_min)``, ``shift = b^2 c_min``.
        settings: steps, ensemble size, processing resolution, seed, number of sparse points.
    """

    depth: np.ndarray
    members: np.ndarray
    losses: list[list[float]]
    scale_shift: list[tuple[float, float]]
    settings: dict[str, Any] = field(default_factory=dict)


def _ddim_trailing(scheduler):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(scheduler.config, timestep_spacing="trailing")


def complete_depth(
    predictor,
    image,
    sparse_depth: np.ndarray,
    num_inference_steps: int = DEFAULT_STEPS,
    ensemble_size: int = 1,
    processing_resolution: int | None = None,
    seed: int | None = DEFAULT_SEED,
    generator: torch.Generator | None = None,
    show_progress: bool = False,
) -> CompletionOutput:
    """Complete ``sparse_depth`` (``H x W`` float, 0 = no measurement, same size as ``image``) with the depth
    ``predictor`` (a :class:`~marigold_toolkit.pipeline.predictor.Predictor` of a depth checkpoint on the eager or
    compile backend; the authors use ``depth-v1-0``) guided as the module docstring describes.

    Args:
        image: a path, PIL image, ``HxWx3`` array or ``[3, H, W]`` tensor, as :meth:`Predictor.predict` takes.
        num_inference_steps: DDIM steps (trailing spacing; the authors use 50).
        ensemble_size: members optimised independently and merged by the per-pixel median (10 in the authors'
            evaluations).
        processing_resolution: long edge the model runs at (default: the checkpoint's, 768 for the public ones).
        seed / generator: the initial latents; ``seed=S`` is ``torch.Generator("cpu").manual_seed(S)``.
    """
    task = predictor.task
    if not isinstance(task, DepthTask):
        raise CompletionError(f"depth completion needs a depth checkpoint; {predictor.spec.source} predicts "
                              f"{task.name}")
    if task.predicts_disparity:  # Marigold-DC's guidance parameterises metric *depth* affinely
        raise CompletionError(f"depth completion (Marigold-DC) needs a model predicting depth; "
                              f"{predictor.spec.source} predicts {task.prediction_space}")
    if predictor.backend == "onnx":
        raise BackendError("depth completion backpropagates through the UNet and the VAE decoder: use the eager "
                           "or compile backend, not onnx")
    if num_inference_steps < 1 or ensemble_size < 1:
        raise CompletionError("num_inference_steps and ensemble_size must be >= 1")
    scheduler = _ddim_trailing(predictor.scheduler)
    steps, res = predictor.resolve_settings(num_inference_steps, processing_resolution, scheduler)
    x, padding, in_size, proc_size = predictor.prepare_image(image, res)
    sparse = np.asarray(sparse_depth, dtype=np.float32)
    if sparse.shape != tuple(in_size):
        raise CompletionError(f"sparse depth is {sparse.shape[0]}x{sparse.shape[1] if sparse.ndim > 1 else ''} but "
                              f"the image is {in_size[0]}x{in_size[1]}")
    device, dtype = predictor.device, predictor.dtype
    target = torch.from_numpy(np.nan_to_num(sparse, nan=0.0))[None, None].to(device=device, dtype=torch.float32)
    mask = target > 0
    n_points = int(mask.sum())
    if n_points < 1:
        raise CompletionError("the sparse depth has no measurement (every value is 0)")
    c_min, c_max = float(target[mask].min()), float(target[mask].max())
    c_range = c_max - c_min

    generator = make_generators(1, None if generator is not None else seed, generator)[0]
    scheduler.set_timesteps(steps, device=device)
    vae, unet_fn = predictor.vae, predictor.calls.unet
    text = predictor.components.empty_text_embedding.to(dtype)
    sf = vae.config.scaling_factor
    with torch.no_grad():
        image_latent = encode_images(vae, x, 1, predictor.calls.encode)  # [1, 4, h, w]
    noise = draw_noise(generator, ensemble_size, tuple(image_latent.shape[1:]), len(scheduler.timesteps), False,
                       dtype, device).initial  # [E, 4, h, w]

    def to_metric(latent: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = task.decode(predictor.calls.decode(latent / sf)).float()  # [1, 1, PH, PW] affine-invariant in [0, 1]
        metric = (a ** 2) * c_range * d + (b ** 2) * c_min
        return resize(unpad(metric, padding), in_size, "bilinear", antialias=False)  # [1, 1, H, W]

    members, losses, scale_shift = [], [], []
    bar = tqdm(total=ensemble_size * steps, desc="Marigold-DC", disable=not show_progress, leave=False)
    for e in range(ensemble_size):
        latent = torch.nn.Parameter(noise[e:e + 1].clone())
        a = torch.nn.Parameter(torch.ones(1, device=device))
        b = torch.nn.Parameter(torch.ones(1, device=device))
        optimizer = torch.optim.Adam([{"params": [a, b], "lr": LR_SCALE_SHIFT}, {"params": [latent], "lr": LR_LATENT}])
        curve = []
        for t in scheduler.timesteps:
            optimizer.zero_grad()
            pred = unet_fn(torch.cat([image_latent, latent], dim=1), t, text)  # v-prediction [1, 4, h, w]
            with torch.no_grad():
                alpha = scheduler.alphas_cumprod[t].to(device)
                eps = alpha.sqrt() * pred + (1 - alpha).sqrt() * latent
            x0 = scheduler.step(pred, t, latent).pred_original_sample
            estimate = to_metric(x0, a, b)
            loss = (torch.nn.functional.l1_loss(estimate[mask], target[mask])
                    + torch.nn.functional.mse_loss(estimate[mask], target[mask]))
            loss.backward()
            with torch.no_grad():
                latent.grad *= torch.linalg.norm(eps).item() / max(torch.linalg.norm(latent.grad).item(), 1e-8)
            optimizer.step()
            with torch.no_grad():
                latent.data = scheduler.step(pred.detach(), t, latent).prev_sample
            curve.append(float(loss.detach()))
            bar.update(1)
        with torch.no_grad():
            members.append(to_metric(latent.detach(), a.detach(), b.detach())[0, 0])
        losses.append(curve)
        scale_shift.append((float(a.detach() ** 2 * c_range), float(b.detach() ** 2 * c_min)))
    bar.close()
    stack = torch.stack(members)  # [E, H, W]
    merged = stack.median(dim=0).values if ensemble_size > 1 else stack[0]
    settings = {"model": predictor.spec.source, "num_inference_steps": steps, "ensemble_size": ensemble_size,
                "processing_resolution": res, "seed": seed, "sparse_points": n_points,
                "scheduler": "DDIMScheduler (trailing)", "dtype": str(dtype).replace("torch.", "")}
    return CompletionOutput(merged.detach().cpu().numpy().astype(np.float32),
                            stack.detach().cpu().numpy().astype(np.float32), losses, scale_shift, settings)

"""``--mode latent-init``: per-frame prediction whose initial latent carries over between frames (the diffusers
recipe): frame 0 starts from a common noise latent ``z``, every later frame from ``0.9 z + 0.1 l_prev`` with
``l_prev`` the previous frame's final latent; one step, ensemble 1. The per-frame predictions are left un-normalised
(ensemble 1 keeps the decoded values), so one scale and shift over the whole clip maps them to [0, 1] at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: weights of the common noise and of the previous frame's latent
COMMON_WEIGHT, PREVIOUS_WEIGHT = 0.9, 0.1


@dataclass
class LatentCarry:
    """What one frame hands to the next: the common noise ``[1, 4T, h, w]`` and the last frame's latent."""

    common: torch.Tensor
    previous: torch.Tensor | None = None

    def initial(self) -> torch.Tensor:
        """The next frame's initial latent."""
        if self.previous is None:
            return self.common
        return COMMON_WEIGHT * self.common + PREVIOUS_WEIGHT * self.previous


def common_noise(predictor, frame: np.ndarray, processing_resolution: int, seed: int | None) -> torch.Tensor:
    """The clip's common noise latent for frames shaped like ``frame``, from ``torch.Generator("cpu")`` seeded
    with ``seed``."""
    x, _pad, _in, _proc = predictor.prepare_image(frame, processing_resolution)
    stride = predictor.latent_stride
    shape = (1, 4 * predictor.task.n_targets, x.shape[-2] // stride, x.shape[-1] // stride)
    gen = torch.Generator("cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def predict_frame(predictor, frame: np.ndarray, carry: LatentCarry, steps: int, processing_resolution: int,
                  resample: str = "bilinear", seed: int | None = None):
    """One frame: its prediction at the processing size (a ``MarigoldOutput``); ``carry.previous`` is updated.
    ``seed`` drives what else is random (a stochastic scheduler's re-noising)."""
    out = predictor.predict(frame, num_inference_steps=steps, ensemble_size=1, seed=seed,
                            processing_resolution=processing_resolution, match_input_resolution=False,
                            resample_method_input=resample, resample_method_output=resample,
                            latents=carry.initial(), output_latent=True, noise="gaussian")
    carry.previous = out.latent.float().cpu()
    return out

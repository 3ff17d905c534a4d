"""Depth: affine-invariant depth in [0, 1] (0 = near, 1 = far), one VAE latent repeated over RGB."""

from __future__ import annotations

from typing import Any

import torch

from ..pipeline.ensemble import ensemble_depth
from .base import TaskCodec


class DepthCodec(TaskCodec):
    task = "depth"
    channels = 1
    uncertainty_channels = 1

    def __init__(self, target_names=("depth",), scale_invariant: bool = True, shift_invariant: bool = True):
        super().__init__(list(target_names))
        self.scale_invariant = scale_invariant
        self.shift_invariant = shift_invariant

    def decode(self, image: torch.Tensor) -> torch.Tensor:
        """Mean over the 3 decoded channels, clipped to [-1, 1], mapped to [0, 1]: ``[B,3,H,W] -> [B,1,H,W]``."""
        depth = image.mean(dim=1, keepdim=True).clip(-1.0, 1.0)
        return (depth + 1.0) / 2.0

    def ensemble(self, members: torch.Tensor, output_uncertainty: bool, **kwargs: Any):
        self.check_reduction(kwargs.get("reduction", "median"))
        merged, unc = ensemble_depth(
            members[:, 0], self.scale_invariant, self.shift_invariant, output_uncertainty, **kwargs
        )
        return merged, unc

    def finalize(self, prediction: torch.Tensor) -> torch.Tensor:
        """Clip to [0, 1] after resizing (a no-op for bilinear, guards bicubic overshoot)."""
        return prediction.clip(0.0, 1.0)

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """Normalised depth ``[B, 1, H, W]`` in [-1, 1] -> 3-channel VAE input."""
        if target.dim() != 4 or target.shape[1] != 1:
            raise ValueError(f"depth target must be [B,1,H,W], got {tuple(target.shape)}")
        return target.clip(-1.0, 1.0).repeat(1, 3, 1, 1)

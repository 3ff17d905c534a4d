"""Intrinsic image decomposition: T targets (e.g. albedo + material, or albedo + shading + residual), each
a 3-channel image in [0, 1] with its own VAE latent. ``target_properties`` describes each target's space."""

from __future__ import annotations

from typing import Any

import torch

from ..pipeline.ensemble import ensemble_intrinsics
from .base import TaskCodec


class IntrinsicsCodec(TaskCodec):
    task = "intrinsics"
    channels = 3
    uncertainty_channels = 3

    def __init__(self, target_names, target_properties: dict[str, Any] | None = None):
        super().__init__(list(target_names))
        self.target_properties = dict(target_properties or {})

    def decode(self, image: torch.Tensor) -> torch.Tensor:
        return (image.clip(-1.0, 1.0) + 1.0) / 2.0

    def ensemble(self, members: torch.Tensor, output_uncertainty: bool, **kwargs: Any):
        reduction = kwargs.pop("reduction", self.default_reduction)
        self.check_reduction(reduction)
        if kwargs:
            raise ValueError(f"intrinsics ensembling takes only 'reduction', got {sorted(kwargs)}")
        return ensemble_intrinsics(members, output_uncertainty, reduction)

    def finalize(self, prediction: torch.Tensor) -> torch.Tensor:
        """Clip to [0, 1] after resizing (a no-op for bilinear, guards bicubic overshoot)."""
        return prediction.clip(0.0, 1.0)

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """One target ``[B, 3, H, W]`` in [0, 1] -> VAE input in [-1, 1]."""
        if target.dim() != 4 or target.shape[1] != 3:
            raise ValueError(f"intrinsics target must be [B,3,H,W], got {tuple(target.shape)}")
        return target.clip(0.0, 1.0) * 2.0 - 1.0

    def sub_targets(self, name: str) -> list[str | None]:
        """Channel names of a ``"stack"`` target (e.g. material -> [roughness, metallicity, None])."""
        props = self.target_properties.get(name, {})
        if props.get("prediction_space") == "stack":
            return list(props.get("sub_target_names") or [])
        return []

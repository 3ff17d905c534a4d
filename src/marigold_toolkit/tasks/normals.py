"""Surface normals: unit vectors in camera frame (X right, Y up, Z towards the viewer), values in [-1, 1]."""

from __future__ import annotations

from typing import Any

import torch

from ..pipeline.ensemble import ensemble_normals, normalize_normals
from .base import TaskCodec


class NormalsCodec(TaskCodec):
    task = "normals"
    channels = 3
    uncertainty_channels = 1
    default_reduction = "closest"
    reductions = ("closest", "mean")

    def __init__(self, target_names=("normals",), use_full_z_range: bool = True):
        super().__init__(list(target_names))
        self.use_full_z_range = use_full_z_range

    def decode(self, image: torch.Tensor) -> torch.Tensor:
        normals = image.clip(-1.0, 1.0)
        if not self.use_full_z_range:
            normals = torch.cat([normals[:, :2], normals[:, 2:] * 0.5 + 0.5], dim=1)
        return normalize_normals(normals)

    def ensemble(self, members: torch.Tensor, output_uncertainty: bool, **kwargs: Any):
        reduction = kwargs.pop("reduction", self.default_reduction)
        self.check_reduction(reduction)
        if kwargs:
            raise ValueError(f"normals ensembling takes only 'reduction', got {sorted(kwargs)}")
        return ensemble_normals(members[:, 0], output_uncertainty, reduction)

    def finalize(self, prediction: torch.Tensor) -> torch.Tensor:
        """Re-normalise after resizing (interpolation shortens vectors)."""
        return normalize_normals(prediction)

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        if target.dim() != 4 or target.shape[1] != 3:
            raise ValueError(f"normals target must be [B,3,H,W], got {tuple(target.shape)}")
        return target.clip(-1.0, 1.0)

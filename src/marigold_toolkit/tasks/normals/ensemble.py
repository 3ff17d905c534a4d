"""Test-time ensembling of surface normals, with uncertainty (the Marigold authors' algorithm): the mean
direction, then per pixel the member closest to it (or the mean itself); uncertainty = mean angle to the mean
direction / pi.
"""

from __future__ import annotations

import numpy as np
import torch

from ...core.checks import check_shape


def normalize_normals(normals: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale ``[B, 3, H, W]`` vectors to unit length (norm clamped at ``eps``); returns a new tensor."""
    check_shape(normals, "B 3 H W", "normals")
    return normals / torch.norm(normals, dim=1, keepdim=True).clamp(min=eps)


def ensemble_normals(
    normals: torch.Tensor, output_uncertainty: bool = False, reduction: str = "closest"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Merge ``[E, 3, H, W]`` unit normals.

    Returns ``([1, 3, H, W]`` normals, ``[1, 1, H, W]`` uncertainty in [0, 1] or ``None)``; ``"closest"`` picks
    per pixel the member with the highest cosine to the mean direction, ``"mean"`` returns the mean direction.

    Example:
        >>> n = normalize_normals(torch.randn(3, 3, 2, 2))
        >>> out, unc = ensemble_normals(n.repeat(1, 1, 1, 1)[:1].repeat(4, 1, 1, 1), True)
        >>> bool(torch.allclose(out, n[:1], atol=1e-6)), float(unc.max()) < 1e-3
        (True, True)
    """
    check_shape(normals, "E 3 H W", "normals")
    if reduction not in ("closest", "mean"):
        raise ValueError(f"unknown reduction {reduction!r}; use 'closest' or 'mean'")
    mean = normalize_normals(normals.mean(dim=0, keepdim=True))
    cos = (mean * normals).sum(dim=1, keepdim=True).clamp(-1, 1)  # [E,1,H,W]
    unc = cos.arccos().mean(dim=0, keepdim=True) / np.pi if output_uncertainty else None
    if reduction == "mean":
        return mean, unc
    idx = cos.argmax(dim=0, keepdim=True).repeat(1, 3, 1, 1)
    return torch.gather(normals, 0, idx), unc

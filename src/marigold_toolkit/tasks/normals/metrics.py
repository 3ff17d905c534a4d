"""Surface-normal metrics of the Marigold protocol (the authors' ``compute_cosine_error`` and statistics).

Inputs in ``[3, H, W]`` or ``[H, W, 3]`` layout (see :mod:`marigold_toolkit.core.metrics`), numpy or torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...core.arrays import ArrayLike
from ...core.metrics import EmptyMaskError, image_mask, image_pair

__all__ = ["NORMALS_METRIC_KEYS", "NORMALS_THRESHOLDS", "angular_error", "normals_metrics"]

#: Angular thresholds in degrees of the ``within_*`` normals metrics.
NORMALS_THRESHOLDS = (5.0, 7.5, 11.25, 22.5, 30.0)
#: per-image normals metrics, in report order
NORMALS_METRIC_KEYS = ("mean_angular_error", "median_angular_error", "rmse_angular_error",
                       *(f"within_{t:g}" for t in NORMALS_THRESHOLDS))

def _angular_error_chw(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid map ``[H, W]`` and float32 errors in degrees of the valid pixels (row-major), like the authors'
    ``compute_cosine_error(masked=True)``."""
    valid = torch.norm(g, dim=0) > 0
    if m is not None:
        valid = valid & m
    cos = torch.cosine_similarity(p[:, valid], g[:, valid], dim=0)  # normalises both vectors, eps 1e-8
    cos = torch.clamp(cos, min=-1.0, max=1.0)
    return valid, torch.acos(cos) * 180.0 / np.pi


def _normals_inputs(pred, gt, mask, channels_last):
    p, g, m, lp, _ = image_pair(pred, gt, None, channels_last, channels=(3,))
    if mask is not None:
        m = image_mask(mask, lp, (1, *p.shape[1:]), p.device)[0]
    return p, g, m, lp


def angular_error(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    channels_last: bool | None = None,
    return_map: bool = False,
) -> np.ndarray:
    """Per-pixel angle in degrees between predicted and ground-truth normals.

    ``torch.cosine_similarity`` over the channel dimension (both vectors normalised, eps 1e-8), clamped to
    [-1, 1], ``acos``, converted to degrees; float32 throughout, as the authors compute it. Valid pixels are
    those with ``||gt|| > 0`` (zero GT vectors would otherwise score 90 degrees), AND-ed with ``mask``.

    Args:
        pred: predicted normals (need not be unit length).
        gt: ground-truth normals; zero vectors mark invalid pixels.
        mask: optional extra bool ``[H, W]`` mask.
        channels_last: layout of ``pred``/``gt`` (``None``: inferred).
        return_map: return an ``[H, W]`` map with NaN at invalid pixels instead of the valid errors.

    Returns:
        float32 numpy array: the errors of the valid pixels in row-major order (shape ``(n,)``), or the map.

    Shape:
        - pred, gt: :math:`(3, H, W)` or :math:`(H, W, 3)`, optionally with a leading 1.
        - mask: :math:`(H, W)`.

    Example:
        >>> gt = np.array([[[0, 0, 1], [1, 0, 0], [1, 0, 0], [0, 0, 0]]], dtype=np.float32)  # [1, 4, 3] (HWC)
        >>> pred = np.array([[[0, 0, 2], [0, 1, 0], [1, 1, 0], [1, 0, 0]]], dtype=np.float32)
        >>> angular_error(pred, gt).round(3).tolist()  # the zero GT vector is excluded
        [0.0, 90.0, 45.0]
    """
    p, g, m, _ = _normals_inputs(pred, gt, mask, channels_last)
    valid, err = _angular_error_chw(p, g, m)
    if not return_map:
        return err.detach().cpu().numpy()
    out = torch.full(valid.shape, float("nan"), dtype=torch.float32, device=err.device)
    out[valid] = err
    return out.detach().cpu().numpy()


def normals_metrics(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    round_like_authors: bool = False,
    channels_last: bool | None = None,
) -> dict[str, float]:
    """Angular-error statistics of one image, keys :data:`NORMALS_METRIC_KEYS`.

    ``mean_angular_error`` (``np.average``), ``median_angular_error`` (``np.median``: the mean of the two middle
    values for an even count), ``rmse_angular_error`` (degrees), and ``within_<t>`` for t in 5, 7.5, 11.25, 22.5,
    30: the *fraction* of valid pixels with error ``< t`` (strict; the authors report percent, ``sub<t>_error``).
    Statistics are computed in numpy on the float32 errors as the authors do.

    The authors round each per-image value to 4 decimals (of the percent value, for the ``within`` metrics)
    before averaging over images. By default the values here are not rounded; ``round_like_authors=True``
    reproduces the rounding (``within_*`` become ``round(100 * fraction, 4) / 100``).

    Args:
        pred, gt, mask, channels_last: as in :func:`angular_error`.
        round_like_authors: round per-image values like the authors.

    Raises:
        EmptyMaskError: no valid pixel (all GT vectors zero, or the mask is empty).

    Example:
        >>> gt = np.array([[[0, 0, 1], [1, 0, 0], [1, 0, 0], [0, 0, 0]]], dtype=np.float32)
        >>> pred = np.array([[[0, 0, 2], [0, 1, 0], [1, 1, 0], [1, 0, 0]]], dtype=np.float32)
        >>> m = normals_metrics(pred, gt)
        >>> round(m["mean_angular_error"], 3), round(m["median_angular_error"], 3), round(m["within_11.25"], 4)
        (45.0, 45.0, 0.3333)
    """
    p, g, m, _ = _normals_inputs(pred, gt, mask, channels_last)
    _, err_t = _angular_error_chw(p, g, m)
    err = err_t.detach().cpu().numpy()
    n = err.shape[0]
    if n == 0:
        raise EmptyMaskError("no valid normal: every GT vector is zero or masked out")
    stats: dict[str, Any] = {
        "mean_angular_error": np.average(err),
        "median_angular_error": np.median(err),
        "rmse_angular_error": np.sqrt(np.sum(err * err) / n),
    }
    fractions = {f"within_{t:g}": np.sum(err < t) / n for t in NORMALS_THRESHOLDS}
    if round_like_authors:
        stats = {k: round(v, 4) for k, v in stats.items()}
        fractions = {k: round(100.0 * v, 4) / 100.0 for k, v in fractions.items()}
    return {k: float(v) for k, v in {**stats, **fractions}.items()}



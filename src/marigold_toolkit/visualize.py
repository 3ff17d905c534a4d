"""Generic visualisations as uint8 RGB arrays (``HxWx3``), ready for ``PIL.Image.fromarray``: a colour map of
a scalar map, the uncertainty heat map and side-by-side panels. Each task's own visualisation
(:meth:`~marigold_toolkit.tasks.base.Task.visualize`, e.g. ``colorize_depth``) builds on these."""

from __future__ import annotations

import numpy as np

from .core.checks import check_shape


def apply_colormap(values: np.ndarray, cmap: str) -> np.ndarray:
    """``[H, W]`` values in [0, 1] (clipped) -> uint8 RGB with matplotlib's colour map ``cmap``."""
    import matplotlib

    rgba = matplotlib.colormaps[cmap](np.clip(values, 0.0, 1.0), bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def uncertainty_heatmap(uncertainty: np.ndarray, cmap: str = "inferno", saturation_percentile: float = 95) -> np.ndarray:
    """``[H, W]`` (or ``[H, W, C]``, averaged) uncertainty -> heat map; the percentile value saturates."""
    u = np.asarray(uncertainty, dtype=np.float32)
    if u.ndim == 3:
        u = u.mean(axis=2)
    check_shape(u, "H W", "uncertainty")
    sat = float(np.percentile(u, saturation_percentile)) if u.size else 0.0
    return apply_colormap(u / sat if sat > 0 else np.zeros_like(u), cmap)


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """An input image (uint8, uint16 or float in [0, 1]; grey or RGB(A)) as uint8 RGB ``[H, W, 3]``."""
    rgb = np.asarray(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.dtype != np.uint8:
        scale = 65535.0 if rgb.dtype == np.uint16 else 1.0
        rgb = (np.clip(rgb.astype(np.float32) / scale, 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(rgb[..., :3])


def side_by_side(*images: np.ndarray) -> np.ndarray:
    """Concatenate RGB uint8 images horizontally (heights must match)."""
    if len({im.shape[0] for im in images}) != 1:
        raise ValueError("images must have the same height")
    return np.concatenate([im[..., :3] for im in images], axis=1)

"""Visualisations of predictions as uint8 RGB arrays (``HxWx3``), ready for ``PIL.Image.fromarray``."""

from __future__ import annotations

from typing import Any

import numpy as np


def _colormap(values: np.ndarray, cmap: str) -> np.ndarray:
    import matplotlib

    rgba = matplotlib.colormaps[cmap](np.clip(values, 0.0, 1.0), bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def colorize_depth(depth: np.ndarray, cmap: str = "Spectral", vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """``[H, W]`` depth -> colour image with matplotlib's ``cmap`` (Spectral: near red, far blue)."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be [H, W], got {depth.shape}")
    if vmax <= vmin:
        raise ValueError(f"invalid range [{vmin}, {vmax}]")
    return _colormap((depth - vmin) / (vmax - vmin), cmap)


def depth_to_uint16(depth: np.ndarray) -> np.ndarray:
    """``[H, W]`` depth in [0, 1] -> uint16 (x 65535), as the authors' 16-bit PNG export."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be [H, W], got {depth.shape}")
    return (np.clip(depth, 0.0, 1.0) * 65535).astype(np.uint16)


def normals_to_rgb(normals: np.ndarray, flip_x: bool = False, flip_y: bool = False, flip_z: bool = False) -> np.ndarray:
    """``[H, W, 3]`` normals in [-1, 1] -> RGB ``(n + 1) / 2 * 255``; flips change the frame's axis directions."""
    n = np.asarray(normals, dtype=np.float32)
    if n.ndim != 3 or n.shape[2] != 3:
        raise ValueError(f"normals must be [H, W, 3], got {n.shape}")
    n = n * np.array([(-1) ** flip_x, (-1) ** flip_y, (-1) ** flip_z], dtype=np.float32)
    return (np.clip((n + 1.0) * 0.5, 0.0, 1.0) * 255).astype(np.uint8)


def uncertainty_heatmap(uncertainty: np.ndarray, cmap: str = "inferno", saturation_percentile: float = 95) -> np.ndarray:
    """``[H, W]`` (or ``[H, W, 3]``, averaged) uncertainty -> heat map; the percentile value saturates."""
    u = np.asarray(uncertainty, dtype=np.float32)
    if u.ndim == 3:
        u = u.mean(axis=2)
    if u.ndim != 2:
        raise ValueError(f"uncertainty must be [H, W] or [H, W, 3], got {u.shape}")
    sat = float(np.percentile(u, saturation_percentile)) if u.size else 0.0
    return _colormap(u / sat if sat > 0 else np.zeros_like(u), cmap)


def intrinsic_to_rgb(target: np.ndarray, properties: dict[str, Any] | None = None) -> np.ndarray:
    """``[H, W, 3]`` intrinsic target in [0, 1] -> displayable sRGB.

    ``properties`` are the target's entries of ``target_properties``: linear targets get gamma 1/2.2, and
    up-to-scale ones (shading, residual) are first divided by their maximum.
    """
    x = np.asarray(target, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"intrinsic target must be [H, W, 3], got {x.shape}")
    props = properties or {}
    if props.get("prediction_space") == "linear":
        if props.get("up_to_scale", False):
            x = x / max(float(x.max()), 1e-6)
        x = np.clip(x, 0.0, 1.0) ** (1 / 2.2)
    return (np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


def side_by_side(*images: np.ndarray) -> np.ndarray:
    """Concatenate RGB uint8 images horizontally (heights must match)."""
    if len({im.shape[0] for im in images}) != 1:
        raise ValueError("images must have the same height")
    return np.concatenate([im[..., :3] for im in images], axis=1)

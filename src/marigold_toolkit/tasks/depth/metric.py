"""Metric depth from a few measurements: a robust least-squares scale and shift of an affine-invariant depth
prediction to sparse metric depths (LiDAR points, SfM points, a few tape-measured distances).

``space="depth"`` fits ``sparse ~ s * pred + t``; ``space="disparity"`` fits ``1 / sparse ~ s * pred + t``, i.e.
reads the prediction as affine-invariant *disparity* (for models that predict disparity; it also weighs near
points more). ``method="irls"`` is iteratively reweighted least squares with Huber weights (threshold 1.345 robust
sigmas, the sigma re-estimated from the residuals' median absolute deviation at every iteration), polished by a
least-squares fit on its inliers;
``method="ransac"`` draws point pairs, keeps the fit with the most inliers and refits on them by least squares.
Inliers (both methods) are the points whose residual is within ``inlier_threshold`` (relative, default 5 %) of the
measurement; residual statistics are reported in metres.

Sparse depth files (:func:`read_sparse_depth`): ``.npy`` ``H x W`` metres with 0 = missing (the Marigold-DC
format), a 16-bit PNG in millimetres (0 = missing), or a CSV of ``u,v,depth`` rows (``u`` column, ``v`` row in
pixels of the input image, depth in metres; a header line is allowed).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...core.checks import check_shape

FIT_SPACES = ("depth", "disparity")
FIT_METHODS = ("irls", "ransac")
SPARSE_EXTENSIONS = (".npy", ".png", ".csv")
_HUBER_K = 1.345
_MAD_TO_SIGMA = 1.4826


class SparseDepthError(ValueError):
    """Sparse depth measurements cannot be read or used (a one-line message naming the input)."""


@dataclass
class MetricFit:
    """The fitted ``metric = s * pred + t`` (depth space) or ``1 / (s * pred + t)`` (disparity space) and how well
    it fits the points: residuals ``metric - sparse`` in metres over all points and over the inliers."""

    scale: float
    shift: float
    space: str
    method: str
    points: int
    inliers: int
    residuals: dict[str, float] = field(default_factory=dict)
    inlier_residuals: dict[str, float] = field(default_factory=dict)
    abs_rel: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_sparse_depth(path: str | os.PathLike, height: int, width: int) -> np.ndarray:
    """Sparse metric depth of an ``height x width`` image as a float32 ``H x W`` map, 0 where there is no point
    (formats in the module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            arr = np.squeeze(arr) if arr.ndim == 3 else arr
            if not np.issubdtype(arr.dtype, np.number):
                raise SparseDepthError(f"{path}: dtype {arr.dtype} is not numeric")
            depth = arr.astype(np.float32)
        elif suffix == ".png":
            with Image.open(path) as img:
                if img.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                    raise SparseDepthError(f"{path}: a sparse depth PNG must be 16-bit grey in millimetres, got "
                                           f"mode {img.mode}")
                depth = np.asarray(img).astype(np.float32) / 1000.0
        elif suffix == ".csv":
            depth = _read_csv(path, height, width)
        else:
            raise SparseDepthError(f"{path}: sparse depth must be .npy (metres), .png (16-bit mm) or .csv (u,v,depth)")
    except SparseDepthError:
        raise
    except (OSError, ValueError) as exc:
        raise SparseDepthError(f"{path}: cannot read sparse depth ({type(exc).__name__}: {exc})") from None
    if depth.shape != (height, width):
        raise SparseDepthError(f"{path}: sparse depth is {depth.shape[0]}x{depth.shape[1] if depth.ndim > 1 else ''} "
                               f"but the image is {height}x{width}")
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    return depth


def _read_csv(path: Path, height: int, width: int) -> np.ndarray:
    depth = np.zeros((height, width), dtype=np.float32)
    with open(path, newline="", encoding="utf-8") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].strip().startswith("#"):
                continue
            try:
                u, v, z = (float(x) for x in row[:3])
            except ValueError:
                if line_no == 1:
                    continue  # a header
                raise SparseDepthError(f"{path}:{line_no}: expected u,v,depth numbers, got {row!r}") from None
            iu, iv = int(round(u)), int(round(v))
            if not (0 <= iu < width and 0 <= iv < height):
                raise SparseDepthError(f"{path}:{line_no}: pixel ({u:g}, {v:g}) is outside the {width}x{height} image")
            depth[iv, iu] = z
    return depth


def sparse_depth_file(source: str | os.PathLike, stem: str) -> Path | None:
    """The sparse depth of input ``stem``: ``source`` itself for a file, ``source/<stem>.npy|png|csv`` for a
    folder (``None`` when the folder has none for this stem)."""
    source = Path(source)
    if not source.is_dir():
        return source
    for ext in SPARSE_EXTENSIONS:
        if (source / f"{stem}{ext}").is_file():
            return source / f"{stem}{ext}"
    return None


def _stats(residuals: np.ndarray) -> dict[str, float]:
    r = np.abs(residuals)
    if r.size == 0:
        return {}
    return {"mae": float(r.mean()), "rmse": float(np.sqrt((r ** 2).mean())), "median": float(np.median(r)),
            "p90": float(np.percentile(r, 90)), "max": float(r.max())}


def _lstsq(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    a = np.stack([x, np.ones_like(x)], axis=1)
    if w is not None:
        sw = np.sqrt(w)
        a, y = a * sw[:, None], y * sw
    (s, t), *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(s), float(t)


def _robust_sigma(r: np.ndarray) -> float:
    return float(_MAD_TO_SIGMA * np.median(np.abs(r - np.median(r))))


def _inliers(x: np.ndarray, y: np.ndarray, s: float, t: float, threshold: float) -> np.ndarray:
    return np.abs(y - (s * x + t)) <= threshold * np.maximum(np.abs(y), 1e-12)


def _irls(x: np.ndarray, y: np.ndarray, iterations: int, threshold: float) -> tuple[float, float, np.ndarray]:
    s, t = _lstsq(x, y)
    floor = 1e-9 * float(np.median(np.abs(y)))
    for _ in range(iterations):
        r = y - (s * x + t)
        sigma = max(_robust_sigma(r), floor)
        delta = _HUBER_K * sigma
        w = np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        s_new, t_new = _lstsq(x, y, w)
        done = abs(s_new - s) <= 1e-12 * max(1.0, abs(s)) and abs(t_new - t) <= 1e-12 * max(1.0, abs(t))
        s, t = s_new, t_new
        if done:
            break
    inliers = _inliers(x, y, s, t, threshold)
    if inliers.sum() >= 2 and np.ptp(x[inliers]) > 0:  # polish: least squares on the inliers
        s, t = _lstsq(x[inliers], y[inliers])
        inliers = _inliers(x, y, s, t, threshold)
    return s, t, inliers


def _ransac(x: np.ndarray, y: np.ndarray, threshold: float, iterations: int, seed: int) -> tuple[float, float, np.ndarray]:
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(iterations):
        i, j = rng.choice(len(x), 2, replace=False)
        if x[i] == x[j]:
            continue
        s = (y[i] - y[j]) / (x[i] - x[j])
        inliers = _inliers(x, y, s, y[i] - s * x[i], threshold)
        if best is None or inliers.sum() > best.sum():
            best = inliers
    if best is None or best.sum() < 2:
        best = np.ones(len(x), dtype=bool)
    s, t = _lstsq(x[best], y[best])
    return s, t, _inliers(x, y, s, t, threshold)


def fit_metric(pred: np.ndarray, sparse: np.ndarray, space: str = "depth", method: str = "irls",
               iterations: int = 50, inlier_threshold: float = 0.05, seed: int = 0) -> tuple[np.ndarray, MetricFit]:
    """Fit ``pred`` (``H x W`` affine-invariant depth) to the ``sparse`` metres (``H x W``, 0 = no point) and
    return the metric depth map (float32 metres; non-positive or non-finite where the fit inverts to no valid
    depth) and the :class:`MetricFit`.

    Example (a known scale and shift, one gross outlier):
        >>> pred = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
        >>> sparse = np.zeros_like(pred); sparse[::2, ::2] = 3.0 * pred[::2, ::2] + 1.5; sparse[0, 0] = 40.0
        >>> metric, fit = fit_metric(pred, sparse)
        >>> round(fit.scale, 4), round(fit.shift, 4), fit.points, fit.inliers
        (3.0, 1.5, 6, 5)
    """
    pred = np.asarray(pred, dtype=np.float64)
    sparse = np.asarray(sparse, dtype=np.float64)
    check_shape(pred, "H W", "prediction")
    if sparse.shape != pred.shape:
        raise SparseDepthError(f"sparse depth is {sparse.shape} but the prediction is {pred.shape}")
    if space not in FIT_SPACES:
        raise SparseDepthError(f"unknown fit space {space!r}; use one of {FIT_SPACES}")
    if method not in FIT_METHODS:
        raise SparseDepthError(f"unknown fit method {method!r}; use one of {FIT_METHODS}")
    valid = np.isfinite(sparse) & (sparse > 0) & np.isfinite(pred)
    n = int(valid.sum())
    if n < 2 or np.ptp(pred[valid]) <= 0:
        raise SparseDepthError(f"the sparse depth has {n} usable point(s) at distinct predicted depths; a scale "
                               "and shift need at least 2")
    x = pred[valid]
    y = sparse[valid] if space == "depth" else 1.0 / sparse[valid]
    if method == "irls":
        s, t, inliers = _irls(x, y, iterations, inlier_threshold)
    else:
        s, t, inliers = _ransac(x, y, inlier_threshold, max(iterations, 1) * 20, seed)
    if space == "depth":
        metric = s * pred + t
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            disp = s * pred + t
            metric = np.where(disp > 0, 1.0 / disp, np.nan)
    residuals = metric[valid] - sparse[valid]
    with np.errstate(divide="ignore", invalid="ignore"):
        abs_rel = float(np.nanmean(np.abs(residuals) / sparse[valid]))
    fit = MetricFit(scale=s, shift=t, space=space, method=method, points=n, inliers=int(inliers.sum()),
                    residuals=_stats(residuals[np.isfinite(residuals)]),
                    inlier_residuals=_stats(residuals[inliers & np.isfinite(residuals)]),
                    abs_rel=abs_rel if math.isfinite(abs_rel) else float("nan"))
    return metric.astype(np.float32), fit

"""Per-image evaluation metrics of the Marigold protocol: depth, surface normals, intrinsic decomposition.

Pure functions on one image at a time; inputs may be numpy arrays or torch tensors (kept on their device), and
scalar metrics come back as python floats. Each function reproduces what the authors' evaluation code computes
(``src/util/metric.py`` and ``script/*/eval.py`` of prs-eth/Marigold, the evaluation protocol notes), including the
float32 arithmetic and the order of operations, with two deliberate differences:

* an empty mask raises :class:`EmptyMaskError` (a ``ValueError``) instead of producing NaN; the runner counts and
  excludes such images;
* ``silog_rmse`` clamps its variance term at 0, so float32 cancellation cannot turn a perfect-up-to-scale
  prediction into NaN (identical otherwise).

Dataset values are the arithmetic mean of the per-image values (:func:`mean_over_images`): every image weighs
the same, pixels are not pooled.

Image layouts (normals and intrinsics): ``[C, H, W]`` or ``[H, W, C]`` (optionally with a leading batch dimension
of 1; ``C`` is 3, or 1 for the grey-level metrics). The layout is inferred from which end has 3 (or 1) channels;
pass ``channels_last=True/False`` when both ends do (e.g. a ``3 x W x 3`` image). Results come back in the layout
and kind (numpy/tensor) they came in.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .alignment import (
    ArrayLike,
    EmptyMaskError,
    _align_scale_tensor,
    _is_tensor,
    _like,
    _squeeze_to_2d,
    _to_tensor,
)

__all__ = [
    "DEPTH_METRIC_KEYS",
    "NORMALS_METRIC_KEYS",
    "NORMALS_THRESHOLDS",
    "EmptyMaskError",
    "MetricUnavailable",
    "abs_rel",
    "angular_error",
    "delta1",
    "delta2",
    "delta3",
    "depth_metrics",
    "i_rmse",
    "intrinsics_metrics",
    "linear_to_srgb",
    "log10",
    "lpips",
    "lpips_available",
    "mean_over_images",
    "normals_metrics",
    "prepare_iid_pair",
    "psnr",
    "quantile_map",
    "rmse",
    "rmse_log",
    "silog_rmse",
    "sq_rel",
    "srgb_to_linear",
    "ssim",
]


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed in this environment (e.g. LPIPS without its package or local weights)."""


DEPTH_METRIC_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "i_rmse",
                     "silog_rmse")
#: Angular thresholds in degrees of the ``within_*`` normals metrics.
NORMALS_THRESHOLDS = (5.0, 7.5, 11.25, 22.5, 30.0)
NORMALS_METRIC_KEYS = ("mean_angular_error", "median_angular_error", "rmse_angular_error",
                       *(f"within_{t:g}" for t in NORMALS_THRESHOLDS))
#: Target names that are only defined up to scale (the authors' IID lighting model).
UP_TO_SCALE_TARGETS = ("shading", "residual")


# ================================================================================================================
# depth
# ================================================================================================================


@dataclass
class _Depth:
    pred: torch.Tensor  # [H, W] float32
    gt: torch.Tensor  # [H, W] float32
    mask: torch.Tensor  # [H, W] bool
    n: torch.Tensor  # int64 count of valid pixels


def _depth_inputs(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None) -> _Depth:
    device = pred.device if _is_tensor(pred) else None
    p = _squeeze_to_2d(_to_tensor(pred, torch.float32, device), "pred")
    g = _squeeze_to_2d(_to_tensor(gt, torch.float32, device), "gt")
    m = torch.ones_like(g, dtype=torch.bool) if mask is None else _squeeze_to_2d(
        _to_tensor(mask, torch.bool, device), "mask")
    if not (p.shape == g.shape == m.shape):
        raise ValueError(f"shape mismatch: pred {tuple(p.shape)}, gt {tuple(g.shape)}, mask {tuple(m.shape)}")
    n = m.sum((-1, -2))
    if int(n) == 0:
        raise EmptyMaskError("the valid mask selects no pixel")
    gv, pv = g[m], p[m]
    if not bool(torch.all(torch.isfinite(gv) & (gv > 0))):
        raise ValueError("gt must be finite and > 0 at every valid pixel (fix the mask)")
    if not bool(torch.all(torch.isfinite(pv) & (pv > 0))):
        raise ValueError("pred must be finite and > 0 at every valid pixel; clip it first (see align_depth)")
    return _Depth(p, g, m, n)


def _masked_mean(x: torch.Tensor, d: _Depth) -> torch.Tensor:
    """The authors' per-image mean: invalid entries set to 0, sum over H and W, divide by the valid count."""
    return torch.sum(x.masked_fill(~d.mask, 0), (-1, -2)) / d.n


def _abs_rel(d: _Depth) -> float:
    return float(_masked_mean(torch.abs(d.pred - d.gt) / d.gt, d))


def _sq_rel(d: _Depth) -> float:
    return float(_masked_mean(torch.pow(torch.abs(d.pred - d.gt), 2) / d.gt, d))


def _rms(diff: torch.Tensor, d: _Depth) -> float:
    return float(torch.sqrt(_masked_mean(torch.pow(diff.masked_fill(~d.mask, 0), 2), d)))


def _rmse(d: _Depth) -> float:
    return _rms(d.pred - d.gt, d)


def _rmse_log(d: _Depth) -> float:
    return _rms(torch.log(d.pred) - torch.log(d.gt), d)


def _log10(d: _Depth) -> float:
    return float(torch.abs(torch.log10(d.pred[d.mask]) - torch.log10(d.gt[d.mask])).mean())


def _delta(d: _Depth, threshold: float) -> float:
    ratio = torch.max(d.pred / d.gt, d.gt / d.pred)
    hit = torch.where(ratio < threshold, torch.ones_like(ratio), torch.zeros_like(ratio))
    return float(_masked_mean(hit, d))


def _i_rmse(d: _Depth) -> float:
    return _rms(1.0 / d.pred - 1.0 / d.gt, d)


def _silog_rmse(d: _Depth) -> float:
    diff = (torch.log(d.pred) - torch.log(d.gt)).masked_fill(~d.mask, 0)
    first = torch.sum(torch.pow(diff, 2), (-1, -2)) / d.n
    second = torch.pow(torch.sum(diff, (-1, -2)), 2) / (d.n ** 2)
    return float(torch.sqrt(torch.clamp(first - second, min=0.0)) * 100)


_DEPTH_FUNCS = {
    "abs_rel": _abs_rel,
    "sq_rel": _sq_rel,
    "rmse": _rmse,
    "rmse_log": _rmse_log,
    "log10": _log10,
    "delta1": functools.partial(_delta, threshold=1.25),
    "delta2": functools.partial(_delta, threshold=1.25 ** 2),
    "delta3": functools.partial(_delta, threshold=1.25 ** 3),
    "i_rmse": _i_rmse,
    "silog_rmse": _silog_rmse,
}

_DEPTH_ARGS_DOC = """
    Args:
        pred: predicted depth, already aligned and clipped (finite and > 0 at valid pixels).
        gt: ground-truth depth (finite and > 0 at valid pixels; anything elsewhere).
        mask: bool valid pixels, or ``None`` for all pixels.

    Raises:
        EmptyMaskError: the mask selects no pixel.
        ValueError: shape mismatch, or non-finite / non-positive values at valid pixels.

    Shape:
        - pred, gt, mask: :math:`(H, W)`, optionally with leading singleton dimensions.
"""


def abs_rel(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    r"""Absolute relative difference :math:`\frac{1}{n}\sum |p - g| / g` (the authors' ``abs_relative_difference``).
    {args}
    Example:
        >>> abs_rel(np.array([[1.0, 3.0, 7.0]]), np.array([[2.0, 3.0, 0.0]]), np.array([[True, True, False]]))
        0.25
    """
    return _abs_rel(_depth_inputs(pred, gt, mask))


def sq_rel(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    r"""Squared relative difference :math:`\frac{1}{n}\sum (p - g)^2 / g` (``squared_relative_difference``).
    {args}
    Example:
        >>> sq_rel(np.array([[1.0, 3.0]]), np.array([[2.0, 3.0]]))
        0.25
    """
    return _sq_rel(_depth_inputs(pred, gt, mask))


def rmse(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    r"""Root mean squared error :math:`\sqrt{\frac{1}{n}\sum (p - g)^2}` (``rmse_linear``).
    {args}
    Example:
        >>> rmse(np.array([[1.0, 3.0]]), np.array([[3.0, 3.0]]))  # sqrt(4 / 2)
        1.4142135381698608
    """
    return _rmse(_depth_inputs(pred, gt, mask))


def rmse_log(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    r"""RMSE of natural logarithms :math:`\sqrt{\frac{1}{n}\sum (\ln p - \ln g)^2}`.
    {args}
    Example:
        >>> round(rmse_log(np.array([[np.e, 1.0]]), np.array([[1.0, 1.0]])), 5)  # sqrt(1 / 2)
        0.70711
    """
    return _rmse_log(_depth_inputs(pred, gt, mask))


def log10(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    r"""Mean absolute base-10 log error :math:`\frac{1}{n}\sum |\log_{10} p - \log_{10} g|`.
    {args}
    Example:
        >>> log10(np.array([[10.0, 1.0]]), np.array([[1.0, 1.0]]))
        0.5
    """
    return _log10(_depth_inputs(pred, gt, mask))


def delta1(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    r"""Fraction of valid pixels with :math:`\max(p/g, g/p) < 1.25` (strict), in [0, 1] (``delta1_acc``).
    {args}
    Example:
        >>> delta1(np.array([[1.0, 1.2, 5.0]]), np.array([[1.0, 1.0, 4.0]]))  # 5/4 = 1.25 is not < 1.25
        0.6666666865348816
    """
    return _DEPTH_FUNCS["delta1"](_depth_inputs(pred, gt, mask))


def delta2(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    r"""Fraction of valid pixels with :math:`\max(p/g, g/p) < 1.25^2` (strict), in [0, 1].
    {args}
    Example:
        >>> delta2(np.array([[1.0, 1.5, 2.0]]), np.array([[1.0, 1.0, 1.0]]))
        0.6666666865348816
    """
    return _DEPTH_FUNCS["delta2"](_depth_inputs(pred, gt, mask))


def delta3(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    r"""Fraction of valid pixels with :math:`\max(p/g, g/p) < 1.25^3` (strict), in [0, 1].
    {args}
    Example:
        >>> delta3(np.array([[1.0, 1.9, 2.0]]), np.array([[1.0, 1.0, 1.0]]))
        0.6666666865348816
    """
    return _DEPTH_FUNCS["delta3"](_depth_inputs(pred, gt, mask))


def i_rmse(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    r"""RMSE of inverse depth :math:`\sqrt{\frac{1}{n}\sum (1/p - 1/g)^2}`.
    {args}
    Example:
        >>> i_rmse(np.array([[0.5, 1.0]]), np.array([[1.0, 1.0]]))  # sqrt((1 + 0) / 2)
        0.7071067690849304
    """
    return _i_rmse(_depth_inputs(pred, gt, mask))


def silog_rmse(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    r"""Scale-invariant log RMSE as the authors compute it: :math:`100\sqrt{\overline{d^2} - \bar{d}^{\,2}}`,
    :math:`d = \ln p - \ln g` over the valid pixels (the variance of the log error; the square root is taken of
    ``max(0, .)``, see the module notes).
    {args}
    Example:
        >>> silog_rmse(np.array([[2.0, 2.0]]), np.array([[1.0, 1.0]]))  # a pure scale error
        0.0
        >>> round(silog_rmse(np.array([[np.e, 1.0]]), np.array([[1.0, 1.0]])), 3)  # d = [1, 0]: 100 * sqrt(1/2 - 1/4)
        50.0
    """
    return _silog_rmse(_depth_inputs(pred, gt, mask))


for _f in (abs_rel, sq_rel, rmse, rmse_log, log10, delta1, delta2, delta3, i_rmse, silog_rmse):
    _f.__doc__ = _f.__doc__.replace("{args}", _DEPTH_ARGS_DOC.rstrip() + "\n")


def depth_metrics(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None) -> dict[str, float]:
    """All depth metrics of one image, keys :data:`DEPTH_METRIC_KEYS` (deltas as fractions, not percent).

    The inputs are converted and checked once. Call :func:`~marigold_toolkit.evaluation.alignment.align_depth`
    first: the authors' order is alignment, clip to the dataset range, clip to >= 1e-6, metrics.

    Args:
        pred: aligned and clipped prediction.
        gt: ground-truth depth.
        mask: bool valid pixels (``None``: all).

    Returns:
        ``{"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "i_rmse",
        "silog_rmse"}`` as floats.

    Raises:
        EmptyMaskError: the mask selects no pixel.
        ValueError: shape mismatch, or non-finite / non-positive values at valid pixels.

    Shape:
        - pred, gt, mask: :math:`(H, W)`, optionally with leading singleton dimensions.

    Example:
        >>> m = depth_metrics(np.array([[1.0, 3.0]]), np.array([[2.0, 3.0]]), np.array([[True, True]]))
        >>> m["abs_rel"], m["delta1"]
        (0.25, 0.5)
        >>> list(m) == list(DEPTH_METRIC_KEYS)
        True
    """
    d = _depth_inputs(pred, gt, mask)
    return {k: _DEPTH_FUNCS[k](d) for k in DEPTH_METRIC_KEYS}


# ================================================================================================================
# image layout helpers (normals, intrinsics)
# ================================================================================================================


@dataclass(frozen=True)
class _Layout:
    shape: tuple[int, ...]  # the original shape
    channels_last: bool
    gray2d: bool  # the input was a plain [H, W] map


def _image_chw(x: ArrayLike, name: str, channels_last: bool | None, device: Any,
               channels: tuple[int, ...] = (1, 3)) -> tuple[torch.Tensor, _Layout]:
    """float32 ``[C, H, W]`` tensor of an image in any accepted layout, and how to undo it."""
    t = _to_tensor(x, None, device)
    if not t.is_floating_point():
        t = t.float()
    t = t.to(torch.float32)
    shape = tuple(t.shape)
    if t.dim() == 2 and 1 in channels:
        return t.unsqueeze(0), _Layout(shape, False, True)
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"{name}: expected [C, H, W] or [H, W, C] (optionally [1, ...]), got shape {shape}")
    first, last = t.shape[0] in channels, t.shape[-1] in channels
    if channels_last is None:
        if first == last:
            why = "ambiguous: pass channels_last=" if first else "no dimension has a valid channel count"
            raise ValueError(f"{name}: cannot tell the channel dimension of shape {shape} ({why}; "
                             f"channels must be one of {channels})")
        channels_last = last
    if channels_last:
        if not last:
            raise ValueError(f"{name}: shape {shape} has no valid channel count {channels} in the last dimension")
        t = t.permute(2, 0, 1)
    elif not first:
        raise ValueError(f"{name}: shape {shape} has no valid channel count {channels} in the first dimension")
    return t, _Layout(shape, bool(channels_last), False)


def _image_restore(t: torch.Tensor, layout: _Layout, ref: ArrayLike) -> ArrayLike:
    """Inverse of :func:`_image_chw`: back to the original layout, shape and kind."""
    if layout.channels_last and not layout.gray2d:
        t = t.permute(1, 2, 0)
    return _like(t.contiguous().reshape(layout.shape), ref)


def _image_mask(mask: ArrayLike | None, layout: _Layout, chw: tuple[int, int, int], device: Any) -> torch.Tensor:
    """bool ``[C, H, W]`` mask from ``[H, W]``, ``[1, H, W]``, ``[H, W, 1]`` or the image's own layout."""
    c, h, w = chw
    if mask is None:
        return torch.ones((c, h, w), dtype=torch.bool, device=device)
    m = _to_tensor(mask, torch.bool, device)
    shape = tuple(m.shape)
    if m.dim() == 4 and m.shape[0] == 1:
        m = m[0]
    if m.dim() == 2 and tuple(m.shape) == (h, w):
        return m.expand(c, h, w)
    if m.dim() == 3:
        if layout.channels_last and tuple(m.shape) == (h, w, c):
            return m.permute(2, 0, 1)
        if not layout.channels_last and tuple(m.shape) == (c, h, w):
            return m
        if tuple(m.shape) == (1, h, w):
            return m.expand(c, h, w)
        if tuple(m.shape) == (h, w, 1):
            return m.permute(2, 0, 1).expand(c, h, w)
    raise ValueError(f"mask of shape {shape} does not match an image of {c} channel(s) and size {h}x{w}")


def _image_pair(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None, channels_last: bool | None,
                channels: tuple[int, ...] = (1, 3)):
    device = pred.device if _is_tensor(pred) else (gt.device if _is_tensor(gt) else None)
    p, lp = _image_chw(pred, "pred", channels_last, device, channels)
    g, lg = _image_chw(gt, "gt", channels_last if channels_last is not None else lp.channels_last, device, channels)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch: pred {lp.shape} vs gt {lg.shape}")
    m = _image_mask(mask, lp, tuple(p.shape), device) if mask is not None else None
    return p, g, m, lp, lg


# ================================================================================================================
# surface normals
# ================================================================================================================


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
    p, g, m, lp, _ = _image_pair(pred, gt, None, channels_last, channels=(3,))
    if mask is not None:
        m = _image_mask(mask, lp, (1, *p.shape[1:]), p.device)[0]
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


# ================================================================================================================
# intrinsic image decomposition
# ================================================================================================================


def _psnr_chw(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None, data_range: float) -> float:
    if m is not None:
        p, g = p[m], g[m]
    if g.numel() == 0:
        raise EmptyMaskError("the mask selects no pixel")
    sse = torch.sum(torch.pow(p - g, 2))
    n = torch.tensor(g.numel(), device=g.device)
    dr = torch.tensor(float(data_range), device=g.device)
    val = (2 * torch.log(dr) - torch.log(sse / n)) * (10 / torch.log(torch.tensor(10.0, device=g.device)))
    return float(val)


def psnr(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    data_range: float = 1.0,
    *,
    channels_last: bool | None = None,
) -> float:
    r"""Peak signal-to-noise ratio :math:`10 \log_{10}(R^2 / \mathrm{MSE})` in dB, torchmetrics'
    ``PeakSignalNoiseRatio(data_range=R)`` semantics (float32, MSE over all channels and pixels, no clamping).

    With a mask only the masked values enter the MSE (the authors index ``pred[mask]``, ``gt[mask]``).
    Identical images give ``inf``.

    Args:
        pred, gt: images of the same shape.
        mask: bool ``[H, W]`` (all channels) or per channel in the image's layout; ``None`` for all pixels.
        data_range: ``R``.
        channels_last: layout (``None``: inferred).

    Raises:
        EmptyMaskError: the mask selects no pixel.

    Shape:
        - pred, gt: :math:`(C, H, W)`, :math:`(H, W, C)` (C = 1 or 3), :math:`(H, W)`, optionally with a leading 1.

    Example:
        >>> round(psnr(np.array([[0.5, 0.5]]), np.array([[0.5, 0.6]])), 4)  # MSE = 0.01 / 2: 10 log10(200)
        23.0103
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    p, g, m, _, _ = _image_pair(pred, gt, mask, channels_last)
    return _psnr_chw(p, g, m, data_range)


def _gaussian_1d(size: int, sigma: float, dtype: torch.dtype, device: Any) -> torch.Tensor:
    dist = torch.arange(start=(1 - size) / 2, end=(1 + size) / 2, step=1, dtype=dtype, device=device)
    gauss = torch.exp(-torch.pow(dist / sigma, 2) / 2)
    return (gauss / gauss.sum()).unsqueeze(dim=0)  # [1, size]


_SSIM_SIGMA = 1.5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


def _ssim_chw(p: torch.Tensor, g: torch.Tensor, data_range: float, crop_border: bool) -> float:
    p, g = p.unsqueeze(0), g.unsqueeze(0)  # [1, C, H, W]
    c = p.shape[1]
    size = int(3.5 * _SSIM_SIGMA + 0.5) * 2 + 1  # 11, torchmetrics' Gaussian kernel size for sigma 1.5
    pad = (size - 1) // 2
    if p.shape[-1] <= pad or p.shape[-2] <= pad:
        raise ValueError(f"SSIM needs images larger than {pad} pixels per side (reflect padding), "
                         f"got {tuple(p.shape[-2:])}")
    c1 = pow(_SSIM_K1 * data_range, 2)
    c2 = pow(_SSIM_K2 * data_range, 2)
    p = F.pad(p, (pad, pad, pad, pad), mode="reflect")
    g = F.pad(g, (pad, pad, pad, pad), mode="reflect")
    k1d = _gaussian_1d(size, _SSIM_SIGMA, p.dtype, p.device)
    kernel = torch.matmul(k1d.t(), k1d).expand(c, 1, size, size)
    out = F.conv2d(torch.cat((p, g, p * p, g * g, p * g)), kernel, groups=c)
    mu_p, mu_g, e_pp, e_gg, e_pg = out.split(1)
    mu_p_sq, mu_g_sq, mu_pg = mu_p.pow(2), mu_g.pow(2), mu_p * mu_g
    sigma_p_sq = torch.clamp(e_pp - mu_p_sq, min=0.0)
    sigma_g_sq = torch.clamp(e_gg - mu_g_sq, min=0.0)
    sigma_pg = e_pg - mu_pg
    upper = 2 * sigma_pg + c2
    lower = sigma_p_sq + sigma_g_sq + c2
    ssim_map = ((2 * mu_pg + c1) * upper) / ((mu_p_sq + mu_g_sq + c1) * lower)
    if crop_border:
        ssim_map = ssim_map[..., pad:-pad, pad:-pad]
    return float(ssim_map.reshape(1, -1).mean(-1))


def ssim(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    data_range: float = 1.0,
    *,
    crop_border: bool = False,
    channels_last: bool | None = None,
) -> float:
    """Structural similarity, a re-implementation of torchmetrics' ``StructuralSimilarityIndexMeasure`` defaults.

    Gaussian window 11x11 with sigma 1.5, ``k1 = 0.01``, ``k2 = 0.03``, ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``,
    reflect padding by 5, per-channel (grouped) convolution, variances clamped at 0, mean over the SSIM map of all
    channels; float32. With a mask, the invalid pixels of *both* images are set to 0 first (the authors' choice);
    an empty mask raises :class:`EmptyMaskError`.

    Versions: torchmetrics <= 1.4.1 also cropped the 5-pixel border off the SSIM map before the mean; 1.4.2 and
    later (this project's pinned oracle) average the whole map. The authors do not pin torchmetrics;
    ``crop_border=True`` reproduces the older behaviour.

    Args:
        pred, gt: images of the same shape, values nominally in ``[0, data_range]``.
        mask: bool ``[H, W]`` or per channel in the image's layout; ``None``: no masking.
        data_range: ``R``.
        crop_border: drop the 5-pixel border of the SSIM map (torchmetrics <= 1.4.1).
        channels_last: layout (``None``: inferred).

    Raises:
        EmptyMaskError: the mask selects no pixel.
        ValueError: an image side is 5 pixels or less (reflect padding needs more).

    Shape:
        - pred, gt: :math:`(C, H, W)`, :math:`(H, W, C)` (C = 1 or 3), :math:`(H, W)`, optionally with a leading 1.

    Example:
        >>> img = np.linspace(0, 1, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
        >>> round(ssim(img, img), 6)
        1.0
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    p, g, m, _, _ = _image_pair(pred, gt, mask, channels_last)
    if m is not None:
        if not bool(m.any()):
            raise EmptyMaskError("the mask selects no pixel")
        p, g = p.masked_fill(~m, 0), g.masked_fill(~m, 0)
    return _ssim_chw(p, g, data_range, crop_border)


_TORCH_QUANTILE_MAX = 2 ** 24  # torch.quantile refuses larger inputs


def _quantile_map_chw(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None, percentile: float,
                      target: float) -> tuple[torch.Tensor, torch.Tensor]:
    brightness = 0.3 * g[0, :, :] + 0.59 * g[1, :, :] + 0.11 * g[2, :, :]
    brightness = brightness[m[0]] if m is not None else brightness.flatten()
    if brightness.numel() == 0:
        raise EmptyMaskError("the mask selects no pixel")
    q = percentile / 100.0
    if brightness.numel() <= _TORCH_QUANTILE_MAX:
        current = torch.quantile(brightness, q)
    else:  # linear interpolation like torch.quantile, in float64
        current = torch.tensor(np.quantile(brightness.detach().cpu().numpy().astype(np.float64), q))
    eps = 0.0001
    scale = 0 if current < eps else float(target / current)
    return torch.clamp(scale * p, 0, 1), torch.clamp(scale * g, 0, 1)


def quantile_map(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    percentile: float = 90.0,
    target: float = 0.8,
    channels_last: bool | None = None,
) -> tuple[ArrayLike, ArrayLike]:
    """Map both images to [0, 1] with one scale: the GT's ``percentile`` brightness becomes ``target``.

    Brightness is ``0.3 R + 0.59 G + 0.11 B`` of the GT over the valid pixels (channel 0 of a per-channel mask,
    as the authors index it); its percentile is ``torch.quantile`` (linear interpolation). Both images are
    multiplied by ``target / percentile`` (by 0 when the percentile is below 1e-4) and clamped to [0, 1]. Used by
    the authors for the up-to-scale IID targets (shading, residual), after scale alignment.

    Args:
        pred, gt: RGB images of the same shape.
        mask: bool ``[H, W]`` or per channel; ``None``: all pixels.
        percentile, target: 90 and 0.8 in the authors' code.
        channels_last: layout (``None``: inferred).

    Returns:
        ``(pred_mapped, gt_mapped)``, float32, each in its input's layout and kind.

    Raises:
        EmptyMaskError: the mask selects no pixel.

    Shape:
        - pred, gt: :math:`(3, H, W)` or :math:`(H, W, 3)`, optionally with a leading 1.

    Example:
        >>> gt = np.full((1, 2, 3), 0.4, dtype=np.float32)  # grey, brightness 0.4 -> scale 2
        >>> p, g = quantile_map(np.full((1, 2, 3), 0.3, dtype=np.float32), gt)
        >>> p[0, 0].astype(float).round(4).tolist(), g[0, 0].astype(float).round(4).tolist()
        ([0.6, 0.6, 0.6], [0.8, 0.8, 0.8])
    """
    p, g, m, lp, lg = _image_pair(pred, gt, mask, channels_last, channels=(3,))
    pm, gm = _quantile_map_chw(p, g, m, percentile, target)
    return _image_restore(pm, lp, pred), _image_restore(gm, lg, gt)


def prepare_iid_pair(
    pred: ArrayLike,
    gt: ArrayLike,
    target_name: str,
    mask: ArrayLike | None = None,
    up_to_scale: bool | None = None,
    *,
    channels_last: bool | None = None,
) -> tuple[ArrayLike, ArrayLike]:
    """The authors' preparation of one IID target before PSNR/SSIM/LPIPS (``compute_iid_metric``).

    For up-to-scale targets (default: ``target_name`` in ``("shading", "residual")``): least-squares scale of
    ``pred`` to ``gt`` over the masked values (float32 ``torch.linalg.lstsq``, no shift), then
    :func:`quantile_map` (GT's 90th-percentile brightness -> 0.8, same scale for both, clamp to [0, 1]).
    Other targets are returned unchanged (as float32). Colour-space conversions (:func:`linear_to_srgb`,
    :func:`srgb_to_linear`) are the caller's business, before this step, as in the authors' script.

    Args:
        pred, gt: RGB images of the same shape.
        target_name: e.g. ``"albedo"``, ``"shading"``, ``"residual"``, ``"material"``.
        mask: bool ``[H, W]`` or per channel; ``None``: all pixels.
        up_to_scale: override the name-based choice.
        channels_last: layout (``None``: inferred).

    Returns:
        ``(pred, gt)`` ready for :func:`intrinsics_metrics`, in their input layouts and kinds.

    Raises:
        EmptyMaskError: an up-to-scale target with an empty mask.

    Example:
        >>> gt = np.full((1, 2, 3), 0.4, dtype=np.float32)
        >>> p, g = prepare_iid_pair(0.25 * gt, gt, "shading")  # scale 4, then quantile-mapped by 2
        >>> p.astype(float).round(4).tolist() == g.astype(float).round(4).tolist() == [[[0.8] * 3] * 2]
        True
    """
    if up_to_scale is None:
        up_to_scale = target_name in UP_TO_SCALE_TARGETS
    p, g, m, lp, lg = _image_pair(pred, gt, mask, channels_last, channels=(3,) if up_to_scale else (1, 3))
    if up_to_scale:
        p, _ = _align_scale_tensor(p, g, m)
        p, g = _quantile_map_chw(p, g, m, 90.0, 0.8)
    return _image_restore(p, lp, pred), _image_restore(g, lg, gt)


_GAMMA = 2.2


def _pow(x: ArrayLike, exponent: float) -> ArrayLike:
    t = _to_tensor(x, None, x.device if _is_tensor(x) else None)
    if not t.is_floating_point():
        t = t.float()
    return _like(t ** exponent, x)


def srgb_to_linear(x: ArrayLike) -> ArrayLike:
    """sRGB -> linear as the authors do it: a pure gamma, ``x ** 2.2`` (not the piecewise sRGB curve).

    Example:
        >>> round(float(srgb_to_linear(np.float32(0.5))), 6)
        0.217638
    """
    return _pow(x, _GAMMA)


def linear_to_srgb(x: ArrayLike) -> ArrayLike:
    """Linear -> sRGB as the authors do it: ``x ** (1 / 2.2)``. Negative values give NaN.

    Example:
        >>> round(float(linear_to_srgb(srgb_to_linear(np.float32(0.5)))), 6)
        0.5
    """
    return _pow(x, 1.0 / _GAMMA)


def intrinsics_metrics(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    data_range: float = 1.0,
    channels_last: bool | None = None,
) -> dict[str, float]:
    """``{"psnr": ..., "ssim": ...}`` of one prepared IID target (see :func:`prepare_iid_pair`).

    PSNR over the masked values, SSIM with invalid pixels zeroed, as the authors compute them. LPIPS needs
    pretrained weights and is separate (:func:`lpips`).

    Example:
        >>> img = np.linspace(0, 1, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
        >>> m = intrinsics_metrics(img, img)
        >>> m["psnr"], round(m["ssim"], 6)
        (inf, 1.0)
    """
    return {
        "psnr": psnr(pred, gt, mask, data_range, channels_last=channels_last),
        "ssim": ssim(pred, gt, mask, data_range, channels_last=channels_last),
    }


# ---------------------------------------------------------------------------------------------------------------- LPIPS

_ALEXNET_CHECKPOINT = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet_Weights.IMAGENET1K_V1 file name


def _lpips_unavailable_reason() -> str | None:
    """Why LPIPS cannot run here without a download, or ``None`` when it can."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "the 'lpips' package is not installed"
    try:
        tv_spec = importlib.util.find_spec("torchvision")
    except (ImportError, ValueError):
        tv_spec = None
    if tv_spec is None:
        return "torchvision (needed by the 'lpips' package) is not installed"
    locations = list(spec.submodule_search_locations or [])
    pkg_dir = Path(locations[0]) if locations else Path(str(spec.origin)).parent
    linear = pkg_dir / "weights" / "v0.1" / "alex.pth"
    if not linear.is_file():
        return f"the LPIPS linear-layer weights are missing ({linear})"
    backbone = Path(torch.hub.get_dir()) / "checkpoints" / _ALEXNET_CHECKPOINT
    if not backbone.is_file():
        return (f"the AlexNet backbone weights are not in the local torch hub cache ({backbone}); "
                "they are never downloaded by this toolkit")
    return None


def lpips_available() -> bool:
    """Whether :func:`lpips` can run: the ``lpips`` package (and torchvision) installed and both weight files
    (LPIPS linear layers, torchvision AlexNet) present locally. Nothing is downloaded.

    Example:
        >>> isinstance(lpips_available(), bool)
        True
    """
    return _lpips_unavailable_reason() is None


@functools.lru_cache(maxsize=4)
def _load_lpips_model(device: str) -> Any:
    import lpips as lpips_pkg

    model = lpips_pkg.LPIPS(net="alex", verbose=False).eval().to(device)
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def lpips(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    channels_last: bool | None = None,
) -> float:
    """LPIPS (AlexNet) distance like torchmetrics' ``LearnedPerceptualImagePatchSimilarity(normalize=True)``.

    Inputs are RGB in [0, 1] (mapped to [-1, 1] by ``normalize``); with a mask the invalid pixels of both images
    are set to 0 first, as the authors do for SSIM and LPIPS.

    Raises:
        MetricUnavailable: the ``lpips`` package or its weights are not available locally (see
            :func:`lpips_available`); nothing is ever downloaded.
        ValueError: values outside [0, 1].
        EmptyMaskError: the mask selects no pixel.
    """
    reason = _lpips_unavailable_reason()
    if reason is not None:
        raise MetricUnavailable(f"LPIPS is unavailable: {reason}. Install 'lpips' and place the weights locally "
                                "to enable it.")
    p, g, m, _, _ = _image_pair(pred, gt, mask, channels_last, channels=(3,))
    if m is not None:
        if not bool(m.any()):
            raise EmptyMaskError("the mask selects no pixel")
        p, g = p.masked_fill(~m, 0), g.masked_fill(~m, 0)
    for name, t in (("pred", p), ("gt", g)):
        if not (bool(t.min() >= 0) and bool(t.max() <= 1)):
            raise ValueError(f"LPIPS with normalize=True expects {name} values in [0, 1]")
    model = _load_lpips_model(str(p.device))
    with torch.no_grad():
        return float(model(p.unsqueeze(0), g.unsqueeze(0), normalize=True).reshape(()))


# ================================================================================================================
# averaging over images
# ================================================================================================================


def _is_number(v: Any) -> bool:
    if isinstance(v, bool) or v is None:
        return False
    if isinstance(v, (int, float, np.number)):
        return True
    return (_is_tensor(v) and v.numel() == 1) or (isinstance(v, np.ndarray) and v.size == 1)


def mean_over_images(per_image: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Dataset value of each metric: the arithmetic mean of its per-image values (the authors' ``MetricTracker``
    with ``n=1``: every image weighs the same, pixels are not pooled).

    A key is averaged over the images that have a numeric value for it (non-numeric entries such as a file
    name are skipped); keys keep their order of first appearance. Non-finite values propagate (e.g. an infinite
    PSNR of an exact prediction makes the mean infinite, as it would for the authors).

    Raises:
        ValueError: no image.

    Example:
        >>> mean_over_images([{"stem": "a", "abs_rel": 0.1, "delta1": 1.0}, {"stem": "b", "abs_rel": 0.3}])
        {'abs_rel': 0.2, 'delta1': 1.0}
    """
    rows = list(per_image)
    if not rows:
        raise ValueError("mean_over_images needs at least one image")
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in rows:
        for k, v in row.items():
            if not _is_number(v):
                continue
            totals[k] = totals.get(k, 0.0) + float(v)
            counts[k] = counts.get(k, 0) + 1
    return {k: totals[k] / counts[k] for k in totals}


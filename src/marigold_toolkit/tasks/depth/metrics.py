"""Depth metrics of the Marigold protocol (the authors' ``src/util/metric.py``), per image.

Pure functions on one image; inputs may be numpy arrays or torch tensors (kept on their device), and scalar
metrics come back as python floats, computed with the authors' float32 arithmetic and order of operations, with
two deliberate differences:

* an empty mask raises :class:`~marigold_toolkit.core.metrics.EmptyMaskError` (a ``ValueError``) instead of
  producing NaN; the evaluation counts and excludes such images;
* ``silog_rmse`` clamps its variance term at 0, so float32 cancellation cannot turn a perfect-up-to-scale
  prediction into NaN (identical otherwise).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np  # noqa: F401 - the doctests use it
import torch

from ...core.arrays import ArrayLike, is_tensor, squeeze_to_2d, to_tensor
from ...core.metrics import EmptyMaskError

__all__ = ["DEPTH_METRIC_KEYS", "abs_rel", "delta1", "delta2", "delta3", "depth_metrics", "i_rmse", "log10",
           "rmse", "rmse_log", "silog_rmse", "sq_rel"]

#: per-image depth metrics, in report order (deltas as fractions, not percent)
DEPTH_METRIC_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "i_rmse",
                     "silog_rmse")

@dataclass
class _Depth:
    pred: torch.Tensor  # [H, W] float32
    gt: torch.Tensor  # [H, W] float32
    mask: torch.Tensor  # [H, W] bool
    n: torch.Tensor  # int64 count of valid pixels


def _depth_inputs(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None) -> _Depth:
    device = pred.device if is_tensor(pred) else None
    p = squeeze_to_2d(to_tensor(pred, torch.float32, device), "pred")
    g = squeeze_to_2d(to_tensor(gt, torch.float32, device), "gt")
    m = torch.ones_like(g, dtype=torch.bool) if mask is None else squeeze_to_2d(
        to_tensor(mask, torch.bool, device), "mask")
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

    The inputs are converted and checked once. Call :func:`~marigold_toolkit.tasks.depth.alignment.align_depth`
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



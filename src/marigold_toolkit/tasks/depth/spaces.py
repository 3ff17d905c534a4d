"""The two prediction spaces of a depth model, depth and disparity, and the conversions between them that are
well defined.

A depth checkpoint predicts in one space, named by ``prediction_type`` in its ``model_index.json``:

* ``depth``: 0 = near, 1 = far (every public Marigold checkpoint);
* ``disparity``: inverse depth, 1 = near, 0 = far (diffusers' ``MarigoldDepthPipeline`` accepts it and processes
  it exactly like depth; trained here with ``pipeline.prediction_type: disparity``).

Both are normally *affine-invariant*: the prediction ``p`` relates to the true quantity ``X`` (depth ``D`` or
disparity ``1 / D``) by ``p = a X + b`` with unknown ``a > 0`` and ``b``. The other space's quantity is then
``1 / X = a / (p - b)``, which depends on the unknown shift ``b``: ``1 / p`` is **not** an affine-invariant
disparity of an affine-invariant depth (nor the reverse), and no choice of ``b`` made without measurements is
right in general. A conversion is exact only when the shift is known:

* after a metric fit to sparse measurements (:mod:`.metric`): ``f = s p + t`` is metric depth (fit in depth
  space) or metric disparity (fit in disparity space), and ``1 / f`` is the other one;
* for a model without a shift (``shift_invariant: false``: scale-invariant or metric predictions), ``1 / p``.

:func:`convert_prediction` implements exactly these, and writes the result in the convention of a native
prediction of the target space: an affine-invariant map in [0, 1] (min-max over the pixels where it is finite;
the physical values are the metric fit's, ``<stem>_depth_metric.npy``). Pixels beyond the end of the fitted space
(a fitted depth <= 0, "in front of the camera", or a fitted disparity <= 0, "beyond infinity") have an infinite
value in the other space and land on its end (1: nearest for disparity, farthest for depth).
"""

from __future__ import annotations

import numpy as np

from ...core.checks import check_shape
from .geometry import relative_depth

#: ``model_index.json`` ``prediction_type`` values of a depth model; the first is the default
PREDICTION_SPACES = ("depth", "disparity")


def check_space(space: str, what: str = "prediction space") -> str:
    """``space`` if it is one of :data:`PREDICTION_SPACES`, else a ``ValueError`` naming ``what``."""
    if space not in PREDICTION_SPACES:
        raise ValueError(f"{what} {space!r} is not one of {', '.join(PREDICTION_SPACES)}")
    return space


def other_space(space: str) -> str:
    """``"disparity"`` for ``"depth"`` and the reverse."""
    return PREDICTION_SPACES[1 - PREDICTION_SPACES.index(check_space(space))]


def to_depth_order(pred: np.ndarray, space: str) -> np.ndarray:
    """A [0, 1] prediction in ``space`` as a value that grows with depth (depth itself, ``1 - p`` for disparity):
    what the far-clip test and the depth colour map read.

    >>> to_depth_order(np.array([0.0, 0.25, 1.0]), "disparity").tolist()
    [1.0, 0.75, 0.0]
    """
    p = np.asarray(pred, dtype=np.float32)
    return p if check_space(space) == "depth" else (1.0 - p).astype(np.float32)


def normalize_unit(values: np.ndarray) -> np.ndarray:
    """Min-max of the finite values to [0, 1]; ``+inf`` -> 1, ``-inf`` and NaN -> 0 (a constant map -> 0).

    >>> normalize_unit(np.array([2.0, 4.0, np.inf, 3.0])).tolist()
    [0.0, 1.0, 1.0, 0.5]
    """
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    out = np.zeros(v.shape, dtype=np.float64)
    if finite.any():
        lo, hi = float(v[finite].min()), float(v[finite].max())
        if hi > lo:
            out[finite] = (v[finite] - lo) / (hi - lo)
    out[np.isposinf(v)] = 1.0
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def invert(values: np.ndarray) -> np.ndarray:
    """``1 / v`` where ``v > 0``, ``+inf`` where ``v <= 0`` (beyond the end of the space), NaN stays NaN.

    >>> invert(np.array([0.5, 4.0, 0.0, -1.0])).tolist()
    [2.0, 0.25, inf, inf]
    """
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape, np.inf)
    pos = v > 0
    out[pos] = 1.0 / v[pos]
    out[np.isnan(v)] = np.nan
    return out


def convert_prediction(pred: np.ndarray, target_space: str, fit_space: str, scale: float = 1.0,
                       shift: float = 0.0) -> np.ndarray:
    """The prediction ``pred`` (``[H, W]``) as an affine-invariant map in ``target_space`` (module docstring),
    given that ``f = scale * pred + shift`` is the true quantity of ``fit_space`` (up to a scale): after a metric
    fit ``(scale, shift)`` are the fit's; for a model without a shift, ``(1, 0)`` in the model's own space.

    Returns float32 ``[H, W]`` in [0, 1] (``target_space``'s convention: depth 0 = near, disparity 1 = near).

    Example (true depth 1..4 m, a fitted depth prediction, converted to disparity):
        >>> pred = np.array([[0.0, 1.0 / 3.0, 1.0]])  # depth 1, 2, 4 m = 3 * pred + 1
        >>> convert_prediction(pred, "disparity", "depth", 3.0, 1.0).astype(float).round(4).tolist()  # 1/D = 1, .5, .25
        [[1.0, 0.3333, 0.0]]
    """
    p = np.asarray(pred, dtype=np.float64)
    check_shape(p, "H W", "prediction")
    check_space(target_space, "output space")
    f = float(scale) * p + float(shift)
    values = f if check_space(fit_space, "fit space") == target_space else invert(f)
    return normalize_unit(values)


def relative_depth_from(pred: np.ndarray, space: str, ratio: float) -> np.ndarray:
    """An affine-invariant prediction in [0, 1] -> positive relative depth in ``[1, ratio]`` (the nearest point at 1,
    the farthest at ``ratio``) by a *stated* choice of the unknown scale and shift, not a measurement: depth
    ``z = 1 + (ratio - 1) d``; disparity ``q`` is mapped to disparity ``1 / ratio + (1 - 1 / ratio) q`` and
    inverted, so both spaces span the same range (depth: :func:`~.geometry.relative_depth`).

    >>> relative_depth_from(np.array([1.0, 0.0]), "disparity", 10.0).round(4).tolist()
    [1.0, 10.0]
    """
    if check_space(space) == "depth":
        return relative_depth(pred, ratio)
    if ratio <= 1.0:
        raise ValueError(f"depth range ratio must be > 1, got {ratio}")
    q = np.clip(np.asarray(pred, dtype=np.float64), 0.0, 1.0)
    return (1.0 / (1.0 / ratio + (1.0 - 1.0 / ratio) * q)).astype(np.float32)


__all__ = ["PREDICTION_SPACES", "check_space", "convert_prediction", "invert", "normalize_unit", "other_space",
           "relative_depth_from", "to_depth_order"]

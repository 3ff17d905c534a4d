"""Alignment of affine-invariant predictions to ground truth, in the Marigold authors' evaluation order.

Pure functions on single images. They accept numpy arrays or torch tensors and return the aligned prediction as
the same kind of object as ``pred`` (numpy in, numpy out; a tensor comes back on ``pred``'s device), always
float32, together with the fitted coefficients as python floats.

What the authors' ``script/depth/eval.py`` does, and what is reproduced here:

* ``least_squares``: ``[pred 1] . [s t]^T ~ gt`` over the valid pixels with ``np.linalg.lstsq`` on float32 inputs.
  NumPy solves in float64 and rounds the solution to float32; ``pred * s + t`` is then evaluated in float32 on
  every pixel, valid or not.
* ``least_squares_disparity``: the same fit against ``1 / gt``, over ``mask & (gt > 0) & (pred > 0)``; the
  aligned disparity is clipped to ``>= 1e-3`` and inverted.
* afterwards (:func:`align_depth`): clip to ``[min_depth, max_depth]``, then to ``>= 1e-6``.

Depth inputs are single ``[H, W]`` maps; leading singleton dimensions (``[1, H, W]``, ``[1, 1, H, W]``) are
accepted and kept in the output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...core.arrays import ArrayLike, like, shape_of, squeeze_to_2d, to_numpy
from ...core.metrics import EmptyMaskError

__all__ = [
    "ALIGNMENT_METHODS",
    "align_depth",
    "align_depth_least_squares",
    "align_depth_least_squares_disparity",
]

#: Accepted ``method`` names of :func:`align_depth` -> canonical name. The authors' CLI spells them without
#: the plural "s"; ``None`` (the authors' "not given") means no alignment.
ALIGNMENT_METHODS: dict[Any, str] = {
    "least_squares": "least_squares",
    "least_square": "least_squares",
    "least_squares_disparity": "least_squares_disparity",
    "least_square_disparity": "least_squares_disparity",
    "none": "none",
    None: "none",
}

_DISPARITY_MIN = 1e-3  # the authors' floor on aligned disparity before inversion
_DEPTH_FLOOR = 1e-6  # the authors' final clip, applied after the dataset range


def _depth_triplet(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 ``[H, W]`` pred and gt, bool ``[H, W]`` mask, with the shapes checked."""
    p = squeeze_to_2d(to_numpy(pred, np.float32), "pred")
    g = squeeze_to_2d(to_numpy(gt, np.float32), "gt")
    m = squeeze_to_2d(to_numpy(mask), "mask")
    if m.dtype != np.bool_:
        m = m.astype(bool)
    if not (p.shape == g.shape == m.shape):
        raise ValueError(f"shape mismatch: pred {p.shape}, gt {g.shape}, mask {m.shape} (all must be [H, W]); "
                         "resize the prediction to the ground truth first")
    return p, g, m


def _downsample_for_fit(x: np.ndarray, scale_factor: float, is_mask: bool = False) -> np.ndarray:
    """The authors' fit-only downsampling: ``nn.Upsample(scale_factor, mode="nearest")`` applied to ``x[None]``.

    Note that ``x[None]`` is 3-D (``[1, H, W]``), which ``nn.Upsample`` reads as ``(N, C, L)``: only the last axis
    (the width) is resampled and every row is kept. This is what the authors' code computes, reproduced as is.
    """
    t = torch.as_tensor(x).unsqueeze(0)
    if is_mask:
        t = t.float()
    out = torch.nn.Upsample(scale_factor=scale_factor, mode="nearest")(t)
    if is_mask:
        out = out.bool()
    return out.numpy()


def _lstsq_affine(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, max_res: int | None) -> tuple[Any, Any]:
    """Float32 ``(scale, shift)`` arrays of shape ``(1,)`` as returned by the authors' ``np.linalg.lstsq`` fit."""
    if not mask.any():
        raise EmptyMaskError("the alignment mask selects no pixel")
    fit_pred, fit_gt, fit_mask = pred, gt, mask
    if max_res is not None:
        if max_res <= 0:
            raise ValueError(f"max_res must be positive, got {max_res}")
        scale_factor = np.min(max_res / np.array(pred.shape[-2:]))
        if scale_factor < 1:
            fit_gt = _downsample_for_fit(gt, scale_factor)
            fit_pred = _downsample_for_fit(pred, scale_factor)
            fit_mask = _downsample_for_fit(mask, scale_factor, is_mask=True)
            if not fit_mask.any():
                raise EmptyMaskError(f"the alignment mask selects no pixel after downsampling to max_res={max_res}")
    gt_masked = fit_gt[fit_mask].reshape((-1, 1))
    pred_masked = fit_pred[fit_mask].reshape((-1, 1))
    a = np.concatenate([pred_masked, np.ones_like(pred_masked)], axis=-1)
    x = np.linalg.lstsq(a, gt_masked, rcond=None)[0]  # float32 in -> float64 solve -> float32 out
    scale, shift = x
    return scale, shift


# ----------------------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------------------


def align_depth_least_squares(
    pred: ArrayLike, gt: ArrayLike, mask: ArrayLike, max_res: int | None = None
) -> tuple[ArrayLike, float, float]:
    r"""Least-squares scale and shift of ``pred`` to ``gt`` in depth space (the authors' ``least_square``).

    Solves :math:`\min_{s,t} \sum_{i \in \text{mask}} (s\,p_i + t - g_i)^2` with ``np.linalg.lstsq`` and
    returns ``pred * s + t`` over the whole image.

    Args:
        pred: prediction (affine-invariant depth).
        gt: ground-truth depth. Values outside ``mask`` are ignored (they may be 0, inf or NaN).
        mask: bool, the pixels used for the fit.
        max_res: if given and smaller than the image, the fit runs on a nearest-neighbour copy downsampled by
            ``min(max_res / H, max_res / W)`` exactly as the authors do it (``--alignment_max_res``; only ETH3D
            uses it, with 1024). Their ``nn.Upsample`` call sees a 3-D tensor, so only the *width* is subsampled
            and all rows are kept; this is reproduced. ``s`` and ``t`` always apply to the full-resolution map.

    Returns:
        ``(aligned, scale, shift)``: float32 aligned prediction with ``pred``'s shape and kind (numpy/tensor),
        and the coefficients as python floats (float32 values, as the authors' fit returns them).

    Raises:
        EmptyMaskError: the mask (or its downsampled copy) selects no pixel.
        ValueError: shapes differ.

    Shape:
        - pred, gt, mask: :math:`(H, W)`, optionally with leading singleton dimensions.

    Example:
        >>> pred = np.array([[0.0, 1.0, 2.0, 9.0]], dtype=np.float32)
        >>> gt = np.array([[1.0, 3.0, 5.0, 0.0]], dtype=np.float32)  # gt = 2 * pred + 1; last pixel invalid
        >>> aligned, s, t = align_depth_least_squares(pred, gt, gt > 0)
        >>> round(s, 5), round(t, 5)
        (2.0, 1.0)
        >>> aligned.astype(float).round(4).tolist()
        [[1.0, 3.0, 5.0, 19.0]]
    """
    p, g, m = _depth_triplet(pred, gt, mask)
    scale, shift = _lstsq_affine(p, g, m, max_res)
    aligned = (p * scale + shift).astype(np.float32, copy=False)
    return like(aligned.reshape(shape_of(pred)), pred), float(scale[0]), float(shift[0])


def align_depth_least_squares_disparity(
    pred: ArrayLike, gt: ArrayLike, mask: ArrayLike, max_res: int | None = None
) -> tuple[ArrayLike, float, float]:
    """Least-squares scale and shift of ``pred`` to the ground-truth *disparity* (``least_square_disparity``).

    ``gt_disp = 1 / gt`` where ``gt > 0`` (else 0); the fit mask is ``mask & (gt > 0) & (pred > 0)`` (predicted
    zeros are left out of the fit but still aligned); ``disp = clip(pred * s + t, 1e-3, None)`` and the returned
    depth is ``1 / disp``. No eval script of the authors uses this option.

    Args:
        pred: prediction, read as affine-invariant disparity.
        gt: ground-truth depth.
        mask: bool valid pixels.
        max_res: fit-only downsampling, as in :func:`align_depth_least_squares`.

    Returns:
        ``(aligned_depth, scale, shift)``; the coefficients are in disparity space.

    Raises:
        EmptyMaskError: the fit mask selects no pixel.

    Shape:
        - pred, gt, mask: :math:`(H, W)`, optionally with leading singleton dimensions.

    Example:
        >>> pred = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
        >>> gt = (1.0 / (2.0 * pred + 0.5)).astype(np.float32)  # disparity = 2 * pred + 0.5
        >>> depth, s, t = align_depth_least_squares_disparity(pred, gt, np.ones_like(gt, dtype=bool))
        >>> round(s, 4), round(t, 4)
        (2.0, 0.5)
        >>> np.allclose(depth, gt)
        True
    """
    p, g, m = _depth_triplet(pred, gt, mask)
    gt_disp = np.zeros_like(g)
    gt_pos = g > 0
    gt_disp[gt_pos] = 1.0 / g[gt_pos]
    fit_mask = m & gt_pos & (p > 0)
    scale, shift = _lstsq_affine(p, gt_disp, fit_mask, max_res)
    disp = np.clip(p * scale + shift, a_min=_DISPARITY_MIN, a_max=None)
    depth = np.zeros_like(disp)
    pos = disp > 0
    depth[pos] = 1.0 / disp[pos]
    depth = depth.astype(np.float32, copy=False).reshape(shape_of(pred))
    return like(depth, pred), float(scale[0]), float(shift[0])


def align_depth(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike,
    method: str | None,
    min_depth: float,
    max_depth: float,
    max_res: int | None = None,
    return_scale_shift: bool = False,
) -> ArrayLike | tuple[ArrayLike, float | None, float | None]:
    """The authors' steps 3-4 for one depth image: alignment, then clipping.

    1. ``method``: ``"least_squares"`` (:func:`align_depth_least_squares`), ``"least_squares_disparity"``
       (:func:`align_depth_least_squares_disparity`) or ``"none"``/``None`` (the prediction as it is). The
       authors' spellings ``"least_square"`` and ``"least_square_disparity"`` are accepted.
    2. ``clip(pred, min_depth, max_depth)`` on every pixel, then ``clip(pred, 1e-6, None)``.

    Args:
        pred: prediction at the ground truth's resolution.
        gt: ground-truth depth.
        mask: bool valid pixels (already including the dataset's range and eval crop).
        method: see above.
        min_depth, max_depth: the dataset's depth range (``max_depth`` may be ``inf``).
        max_res: fit-only downsampling for the least-squares methods (ETH3D: 1024).
        return_scale_shift: also return the fitted ``(scale, shift)`` (``None`` for ``"none"``).

    Returns:
        The aligned and clipped float32 prediction (``pred``'s shape and kind), or
        ``(prediction, scale, shift)`` with ``return_scale_shift``.

    Raises:
        ValueError: unknown ``method``, ``min_depth > max_depth`` or shape mismatch.
        EmptyMaskError: the mask selects no pixel (a ``ValueError``).

    Shape:
        - pred, gt, mask: :math:`(H, W)`, optionally with leading singleton dimensions.

    Example:
        >>> pred = np.array([[0.0, 1.0, 2.0, 10.0]], dtype=np.float32)
        >>> gt = 2 * pred + 1  # aligned = [1, 3, 5, 21]
        >>> align_depth(pred, gt, np.ones_like(gt, dtype=bool), "least_squares", 2.0, 10.0).round(4).tolist()
        [[2.0, 3.0, 5.0, 10.0]]
    """
    try:
        canonical = ALIGNMENT_METHODS[method.lower() if isinstance(method, str) else method]
    except (KeyError, TypeError):
        raise ValueError(f"unknown alignment method {method!r}; use one of 'least_squares', "
                         "'least_squares_disparity' or 'none'") from None
    if not min_depth <= max_depth:
        raise ValueError(f"min_depth ({min_depth}) must not exceed max_depth ({max_depth})")
    p, g, m = _depth_triplet(pred, gt, mask)
    if not m.any():
        raise EmptyMaskError("the valid mask selects no pixel")

    scale = shift = None
    if canonical == "least_squares":
        aligned, scale, shift = align_depth_least_squares(p, g, m, max_res=max_res)
    elif canonical == "least_squares_disparity":
        aligned, scale, shift = align_depth_least_squares_disparity(p, g, m, max_res=max_res)
    else:
        aligned = p
    aligned = np.clip(aligned, a_min=min_depth, a_max=max_depth)
    aligned = np.clip(aligned, a_min=_DEPTH_FLOOR, a_max=None)
    out = like(aligned.astype(np.float32, copy=False).reshape(shape_of(pred)), pred)
    return (out, scale, shift) if return_scale_shift else out

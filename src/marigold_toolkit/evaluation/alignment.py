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

__all__ = [
    "ALIGNMENT_METHODS",
    "EmptyMaskError",
    "align_depth",
    "align_depth_least_squares",
    "align_depth_least_squares_disparity",
    "align_scale",
]

ArrayLike = np.ndarray | torch.Tensor

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


class EmptyMaskError(ValueError):
    """The mask selects no pixel, so a fit or a metric is undefined.

    The evaluation runner counts such images and leaves them out of the averages (the authors' code would produce
    NaN or crash instead). Also importable as ``marigold_toolkit.evaluation.metrics.EmptyMaskError``.
    """


# ----------------------------------------------------------------------------------------------------------------
# conversion helpers (shared with .metrics)
# ----------------------------------------------------------------------------------------------------------------


def _is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _to_numpy(x: ArrayLike, dtype: Any = None) -> np.ndarray:
    """numpy view/copy of an array or tensor (tensors are detached and moved to the CPU)."""
    if _is_tensor(x):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x if dtype is None else x.astype(dtype, copy=False)


def _c_array(x: Any) -> np.ndarray:
    """C-contiguous, writeable numpy array (``torch.from_numpy`` needs both; 0-d stays 0-d)."""
    a = np.asarray(x)
    if not (a.flags.c_contiguous and a.flags.writeable):
        a = a.copy(order="C")
    return a


def _to_tensor(x: ArrayLike, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
    """torch tensor of an array or tensor (no copy where possible)."""
    t = x if _is_tensor(x) else torch.from_numpy(_c_array(x))
    if device is not None:
        t = t.to(device)
    return t if dtype is None else t.to(dtype)


def _like(x: np.ndarray | torch.Tensor, ref: ArrayLike) -> ArrayLike:
    """Return ``x`` as the same kind of object as ``ref`` (numpy array, or tensor on ``ref``'s device)."""
    if _is_tensor(ref):
        t = x if _is_tensor(x) else torch.from_numpy(_c_array(x))
        return t.to(ref.device)
    return x.detach().cpu().numpy() if _is_tensor(x) else x


def _shape(x: ArrayLike) -> tuple[int, ...]:
    return tuple(x.shape) if _is_tensor(x) else np.shape(x)


def _squeeze_to_2d(x: np.ndarray, name: str) -> np.ndarray:
    """``[..., H, W]`` with only singleton leading dims -> ``[H, W]``."""
    if x.ndim < 2 or any(s != 1 for s in x.shape[:-2]):
        raise ValueError(f"{name}: expected an [H, W] map (optionally with leading singleton dims), "
                         f"got shape {tuple(x.shape)}")
    return x.reshape(x.shape[-2:])


def _depth_triplet(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 ``[H, W]`` pred and gt, bool ``[H, W]`` mask, with the shapes checked."""
    p = _squeeze_to_2d(_to_numpy(pred, np.float32), "pred")
    g = _squeeze_to_2d(_to_numpy(gt, np.float32), "gt")
    m = _squeeze_to_2d(_to_numpy(mask), "mask")
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
    return _like(aligned.reshape(_shape(pred)), pred), float(scale[0]), float(shift[0])


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
    depth = depth.astype(np.float32, copy=False).reshape(_shape(pred))
    return _like(depth, pred), float(scale[0]), float(shift[0])


def align_scale(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> tuple[ArrayLike, float]:
    r"""Least-squares scale (no shift) of ``pred`` to ``gt``: :math:`\min_s \sum_{i \in \text{mask}} (s p_i - g_i)^2`.

    Computed like the authors' ``compute_alignment_scale`` (IID shading and residual): ``torch.linalg.lstsq`` in
    float32 of the masked values, in row-major order, as one column. Also useful for scale-invariant (metric up to
    scale) depth models.

    Args:
        pred: prediction, any shape.
        gt: target, same shape as ``pred``.
        mask: bool, ``pred``'s shape or broadcastable to it (e.g. ``[H, W]`` for a ``[3, H, W]`` image), or
            ``None`` for all elements.

    Returns:
        ``(aligned, scale)``: float32 ``pred * scale`` with ``pred``'s shape and kind, and the scale as a float.

    Raises:
        EmptyMaskError: the mask selects no element.
        ValueError: shapes differ or the mask does not broadcast.

    Example:
        >>> pred = np.array([1.0, 2.0, 5.0], dtype=np.float32)
        >>> gt = np.array([2.0, 5.0, -1.0], dtype=np.float32)
        >>> aligned, s = align_scale(pred, gt, np.array([True, True, False]))  # s = (1*2 + 2*5) / (1 + 4)
        >>> round(s, 5)
        2.4
        >>> aligned.astype(float).round(4).tolist()
        [2.4, 4.8, 12.0]
    """
    device = pred.device if _is_tensor(pred) else None
    p = _to_tensor(pred, torch.float32, device)
    g = _to_tensor(gt, torch.float32, device)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch: pred {tuple(p.shape)} vs gt {tuple(g.shape)}")
    aligned, scale = _align_scale_tensor(p, g, None if mask is None else _to_tensor(mask, torch.bool, device))
    return _like(aligned, pred), scale


def _align_scale_tensor(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None) -> tuple[torch.Tensor, float]:
    if m is not None:
        try:
            m = torch.broadcast_to(m, p.shape)
        except RuntimeError as e:
            raise ValueError(f"mask of shape {tuple(m.shape)} does not broadcast to {tuple(p.shape)}") from e
        pm, gm = p[m], g[m]
    else:
        pm, gm = p.reshape(-1), g.reshape(-1)
    if pm.numel() == 0:
        raise EmptyMaskError("the scale-alignment mask selects no element")
    x = torch.linalg.lstsq(pm.reshape(-1, 1), gm.reshape(-1, 1)).solution  # [1, 1]
    scale = x.reshape(())
    return scale * p, float(scale)


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
    out = _like(aligned.astype(np.float32, copy=False).reshape(_shape(pred)), pred)
    return (out, scale, shift) if return_scale_shift else out

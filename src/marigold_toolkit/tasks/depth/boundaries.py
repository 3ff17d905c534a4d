"""Depth-discontinuity (occlusion boundary) precision, recall and F1 of a depth map against ground truth.

A pair of pixels ``baseline`` apart along a row or a column is a boundary at threshold ``t`` when the larger of
the two depths is more than ``t`` times the smaller. Precision is the fraction of predicted boundary pairs that are
ground-truth boundary pairs, recall the converse; both are averaged over the thresholds (by default 1.05 .. 1.25,
as the scale-invariant boundary metrics of the monocular-depth literature, which use ``baseline=1``: neighbours).
A larger baseline tolerates an edge spread over up to ``baseline`` pixels (a prediction upsampled from a coarse
grid), still within ``baseline`` pixels of the true one. Ratios are invariant to the scale of the prediction but
not to its shift: score an affine-invariant prediction after aligning it to the ground truth. Pairs count only
where both pixels are valid and positive.
"""

from __future__ import annotations

import numpy as np

from ...core.checks import check_shape
from ...core.metrics import EmptyMaskError

#: default ratio thresholds
BOUNDARY_THRESHOLDS = tuple(float(t) for t in np.linspace(1.05, 1.25, 5).round(4))
BOUNDARY_METRIC_KEYS = ("boundary_precision", "boundary_recall", "boundary_f1")


def _pair_ratios(depth: np.ndarray, valid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth ratios (>= 1) of the pairs ``k`` pixels apart along rows, then columns, flattened, and which pairs
    are valid."""
    ratios = []
    for a, b, va, vb in ((depth[:, :-k], depth[:, k:], valid[:, :-k], valid[:, k:]),
                         (depth[:-k, :], depth[k:, :], valid[:-k, :], valid[k:, :])):
        ok = va & vb
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.maximum(a, b) / np.minimum(a, b)
        ratios.append(np.where(ok, r, np.nan).ravel())
    return np.concatenate(ratios), np.concatenate([np.isfinite(r) for r in ratios])


def boundary_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None,
                     thresholds: tuple[float, ...] = BOUNDARY_THRESHOLDS, baseline: int = 1) -> dict[str, float]:
    """Boundary precision / recall / F1 of ``pred`` against ``gt`` (both ``[H, W]``, positive depths) over pixel
    pairs ``baseline`` apart.

    ``boundary_f1`` is the harmonic mean of the threshold-averaged precision and recall. At a threshold where
    neither map has a boundary, precision = recall = 1; where only one has, the other's empty set scores 0
    (no boundary predicted: precision 0, recall 0; no boundary to find: recall 1, precision 0).

    Raises:
        EmptyMaskError: no valid neighbour pair.

    >>> gt = np.array([[1.0, 1.0, 2.0, 2.0]] * 3)
    >>> m = boundary_metrics(gt * 3.0, gt)  # a scaled copy has the same boundaries
    >>> m["boundary_precision"], m["boundary_recall"], m["boundary_f1"]
    (1.0, 1.0, 1.0)
    >>> shifted = np.array([[1.0, 2.0, 2.0, 2.0]] * 3)  # the step one pixel off
    >>> boundary_metrics(shifted, gt)["boundary_f1"]
    0.0
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    check_shape(pred, "H W", "pred")
    check_shape(gt, "H W", "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} differ")
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred) & (pred > 0)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    if baseline < 1 or baseline >= max(pred.shape):
        raise ValueError(f"baseline must be in [1, {max(pred.shape)}), got {baseline}")
    rp, ok_p = _pair_ratios(pred, valid, baseline)
    rg, ok_g = _pair_ratios(gt, valid, baseline)
    ok = ok_p & ok_g
    if not ok.any():
        raise EmptyMaskError("no valid neighbour pair for the boundary metrics")
    rp, rg = rp[ok], rg[ok]
    precisions, recalls = [], []
    for t in thresholds:
        bp, bg = rp > t, rg > t
        hit = float(np.count_nonzero(bp & bg))
        n_p, n_g = np.count_nonzero(bp), np.count_nonzero(bg)
        if n_p == 0 and n_g == 0:
            precisions.append(1.0)
            recalls.append(1.0)
            continue
        precisions.append(hit / n_p if n_p else 0.0)
        recalls.append(hit / n_g if n_g else 1.0)
    p, r = float(np.mean(precisions)), float(np.mean(recalls))
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"boundary_precision": p, "boundary_recall": r, "boundary_f1": f1}

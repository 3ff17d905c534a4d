"""Per-image scoring in the authors' order: resize -> mask -> align -> clip -> metrics.

Shared by the benchmark runner and the custom-folder scorer. Every function returns a flat dict of per-image
metrics; intrinsic targets use ``"<target>/<metric>"`` keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .alignment import align_depth
from .metrics import (
    depth_metrics,
    intrinsics_metrics,
    lpips,
    lpips_available,
    linear_to_srgb,
    normals_metrics,
    prepare_iid_pair,
    srgb_to_linear,
)

logger = logging.getLogger(__name__)

DEPTH_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "i_rmse", "silog_rmse")
NORMALS_KEYS = ("mean_angular_error", "median_angular_error", "rmse_angular_error", "within_5", "within_7.5",
                "within_11.25", "within_22.5", "within_30")


def resize_prediction(pred: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``[H, W]`` or ``[H, W, C]`` to ``size`` as the authors' pipeline does (bilinear, antialias)."""
    pred = np.asarray(pred, dtype=np.float32)
    if pred.shape[:2] == tuple(size):
        return pred
    t = torch.from_numpy(np.ascontiguousarray(pred))
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    t = F.interpolate(t, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    out = t[0, 0] if pred.ndim == 2 else t[0].permute(1, 2, 0)
    return out.contiguous().numpy()


def score_depth(pred, gt, mask, alignment: str, min_depth: float, max_depth: float, max_res: int | None = None):
    """Returns ``(metrics, aligned_prediction)``; raises ``EmptyMaskError`` for an image without valid pixels."""
    pred = resize_prediction(pred, gt.shape[:2])
    if pred.ndim == 3:
        pred = pred.mean(axis=2)
    aligned = align_depth(pred, gt, mask, alignment, min_depth, max_depth, max_res=max_res)
    aligned = np.asarray(aligned, dtype=np.float32)
    return depth_metrics(aligned, gt, mask), aligned


def score_normals(pred, gt, mask=None):
    pred = np.clip(resize_prediction(pred, gt.shape[:2]), -1.0, 1.0)
    return normals_metrics(pred, gt, mask)


def score_intrinsics(
    preds: dict[str, np.ndarray],
    gts: dict[str, np.ndarray],
    mask=None,
    up_to_scale: Iterable[str] = ("shading", "residual"),
    linear_space: Iterable[str] = (),
    srgb_space: Iterable[str] = (),
    masks: dict[str, np.ndarray] | None = None,
    with_lpips: bool = False,
):
    """PSNR/SSIM per target, in the authors' order: optional colour-space conversion of both images
    (``linear_space``: sRGB -> linear, e.g. material; ``srgb_space``: linear -> sRGB, e.g. Hypersim albedo), then
    for ``up_to_scale`` targets a least-squares scale and the quantile mapping, then the metrics.
    ``masks`` (target -> ``[H, W]`` or ``[H, W, C]`` bool) override ``mask`` per target; ``with_lpips`` adds
    ``<target>/lpips`` (see :func:`lpips_enabled`)."""
    up_to_scale, linear_space, srgb_space = set(up_to_scale), set(linear_space), set(srgb_space)
    out = {}
    for name, gt in gts.items():
        m = masks.get(name, mask) if masks else mask
        if m is not None and np.ndim(m) == 3 and np.shape(m)[2] == 1:
            m = np.broadcast_to(m, gt.shape)
        pred = resize_prediction(preds[name], gt.shape[:2])
        if name in linear_space:
            pred, gt = srgb_to_linear(pred), srgb_to_linear(gt)
        elif name in srgb_space:
            pred, gt = linear_to_srgb(pred), linear_to_srgb(gt)
        p, g = prepare_iid_pair(pred, gt, name, m, name in up_to_scale)
        for k, v in intrinsics_metrics(p, g, m).items():
            out[f"{name}/{k}"] = v
        if with_lpips:
            out[f"{name}/lpips"] = lpips(p, g, m)
    return out


_LPIPS_NOTICE = []


def lpips_enabled() -> bool:
    """LPIPS is scored when its package and weights are installed locally; otherwise one clear log line."""
    if lpips_available():
        return True
    if not _LPIPS_NOTICE:
        from .metrics import _lpips_unavailable_reason

        logger.warning("LPIPS skipped: %s (install `lpips` and its weights locally to report it)",
                       _lpips_unavailable_reason())
        _LPIPS_NOTICE.append(True)
    return False

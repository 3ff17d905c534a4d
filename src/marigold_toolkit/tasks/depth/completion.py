"""Depth completion as an evaluation task: metric depth (``marigold complete``'s ``<stem>_depth_metric.npy``)
scored against metric ground truth in metres, as the Marigold-DC authors score it (``script/eval.py``): MAE and
RMSE over the pixels with ground truth (``gt > 0``), per image, then averaged over images.

No checkpoint predicts this task: its predictions come from a depth checkpoint guided by sparse measurements
(:func:`~marigold_toolkit.pipeline.completion.complete_depth`), so the latent codec is not available.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...core.checks import shape_matches
from ...core.image import resize_prediction
from ...core.metrics import EmptyMaskError
from ..base import ErrorMap, Task, TaskError, as_target_dict
from ..registry import register_task

#: the target (and prediction file suffix) of completed metric depth
METRIC_TARGET = "depth_metric"


@register_task
class DepthCompletionTask(Task):
    """Metric depth from sparse measurements, scored in metres (MAE, RMSE)."""

    name = "depth_completion"
    channels = 1
    metric_keys = ("mae", "rmse")
    validation_metric = "mae"

    def __init__(self, target_names: Sequence[str] | None = None):
        super().__init__([METRIC_TARGET] if target_names is None else target_names)

    @classmethod
    def check_targets(cls, targets: Sequence[str]) -> None:
        raise TaskError("depth_completion is an evaluation task: train a depth model and complete with it")

    def decode(self, image: torch.Tensor) -> torch.Tensor:
        raise TaskError("depth_completion has no latent codec: its depth comes from `marigold complete`")

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        raise TaskError("depth_completion has no latent codec: its depth comes from `marigold complete`")

    def score(self, preds: Mapping[str, np.ndarray], gt: Any, mask: np.ndarray | None = None
              ) -> tuple[dict[str, float], np.ndarray]:
        """MAE and RMSE (metres) of the prediction (resized to the ground truth, bilinear antialiased, if its size
        differs) over the pixels with finite ground truth > 0 (and ``mask``); ``aux`` is the resized prediction."""
        g = np.asarray(as_target_dict(gt, self.target_names)[self.target_names[0]], dtype=np.float32)
        pred = resize_prediction(preds[self.target_names[0]], g.shape[:2])
        valid = np.isfinite(g) & (g > 0)
        if mask is not None:
            valid &= np.asarray(mask, dtype=bool)
        if not valid.any():
            raise EmptyMaskError("the ground truth has no valid pixel")
        err = pred[valid].astype(np.float64) - g[valid]
        if not np.isfinite(err).all():
            raise ValueError("the prediction is not finite at every ground-truth pixel")
        return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean()))}, pred

    def error_map(self, gt: Any, mask: np.ndarray, preds: Mapping[str, np.ndarray], aux: Any) -> ErrorMap:
        g = as_target_dict(gt, self.target_names)[self.target_names[0]]
        err = np.where(mask & (g > 0), np.abs(aux - g), np.nan)
        span = float(np.nanmax(np.where(g > 0, g, np.nan))) if (g > 0).any() else 1.0
        return ErrorMap(err, "absolute error (m)", np.clip(aux / max(span, 1e-6), 0, 1), "completed depth")

    def check_folder_pair(self, target: str, gt: np.ndarray, pred: np.ndarray) -> None:
        if not (shape_matches(gt, "H W") and shape_matches(pred, "H W")):
            raise ValueError(f"metric depth must be HxW, got GT {gt.shape} and prediction {pred.shape}")

"""Surface normals: unit vectors in the camera frame (X right, Y up, Z towards the viewer), values in [-1, 1].

Checkpoints: ``MarigoldNormalsPipeline``, ``prediction_type`` ``normals``, ``model_index.json`` field
``use_full_z_range``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...core.checks import check_shape, shape_matches
from ...core.image import resize_prediction, to_chw
from ...io.dataset_files import DataSource, read_npy
from ..base import ErrorMap, Task, _batch_mask, as_target_dict
from ..registry import register_task
from .ensemble import ensemble_normals, normalize_normals
from .metrics import NORMALS_METRIC_KEYS, angular_error, normals_metrics
from .training import NormalsAugmentation, augment_and_resize_normals, normals_augmentation, prepare_normals


def normals_to_rgb(normals: np.ndarray, flip_x: bool = False, flip_y: bool = False, flip_z: bool = False) -> np.ndarray:
    """``[H, W, 3]`` normals in [-1, 1] -> RGB ``(n + 1) / 2 * 255``; flips change the frame's axis directions.

    >>> normals_to_rgb(np.array([[[0.0, 0.0, 1.0]]])).tolist()
    [[[127, 127, 255]]]
    """
    n = np.asarray(normals, dtype=np.float32)
    check_shape(n, "H W 3", "normals")
    n = n * np.array([(-1) ** flip_x, (-1) ** flip_y, (-1) ** flip_z], dtype=np.float32)
    return (np.clip((n + 1.0) * 0.5, 0.0, 1.0) * 255).astype(np.uint8)


def angular_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean angle (radians) between ``[B, 3, H, W]`` normals over valid pixels (zero GT vectors excluded)."""
    valid = gt.norm(dim=1) > 0
    if mask is not None:
        valid &= mask
    cos = torch.nn.functional.cosine_similarity(pred, gt, dim=1).clamp(-1 + 1e-6, 1 - 1e-6)
    ang = torch.acos(cos)
    return ang[valid].mean() if valid.any() else pred.sum() * 0


@register_task
class NormalsTask(Task):
    """Camera-frame surface normals."""

    name = "normals"
    pipeline_classes = ("MarigoldNormalsPipeline",)
    prediction_types = ("normals",)
    index_fields = ("use_full_z_range",)
    channels = 3
    reductions = ("closest", "mean")
    value_range = (-1.0, 1.0)
    metric_keys = NORMALS_METRIC_KEYS
    report_keys = ("mean_angular_error", "median_angular_error", "within_5", "within_7.5", "within_11.25",
                   "within_22.5", "within_30")
    validation_metric = "mean_angular_error"
    mask_latent_loss = False  # the authors train normals without a mask
    target_file_extensions = (".npy",)
    training_option_names = ("blur", "augmentation")

    def __init__(self, target_names: Sequence[str] | None = None, use_full_z_range: bool = True):
        super().__init__(target_names)
        self.use_full_z_range = bool(use_full_z_range)

    @property
    def uncertainty_channels(self) -> int:
        return 1

    # -- checkpoint
    @classmethod
    def from_model_index(cls, index: Mapping[str, Any], where: str = "model_index.json") -> NormalsTask:
        return cls(use_full_z_range=bool(index.get("use_full_z_range", True)))

    def model_index_fields(self) -> dict[str, Any]:
        return {"use_full_z_range": self.use_full_z_range}

    @classmethod
    def from_config(cls, targets: Sequence[str], pipeline: Mapping[str, Any]) -> NormalsTask:
        cls.check_targets(targets)
        return cls(targets, pipeline.get("use_full_z_range", True))

    # -- codec
    def decode(self, image: torch.Tensor) -> torch.Tensor:
        normals = image.clip(-1.0, 1.0)
        if not self.use_full_z_range:
            normals = torch.cat([normals[:, :2], normals[:, 2:] * 0.5 + 0.5], dim=1)
        return normalize_normals(normals)

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        check_shape(target, "B 3 H W", "normals target")
        return target.clip(-1.0, 1.0)

    def finalize(self, prediction: torch.Tensor) -> torch.Tensor:
        """Re-normalise after resizing (interpolation shortens vectors)."""
        return normalize_normals(prediction)

    deviation_key = "angular_deg"

    def deviation(self, pred: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
        """Mean and max angle in degrees between two normal maps ``[N, 3, H, W]``, with the mean/max absolute
        difference."""
        out = super().deviation(pred, ref)
        cos = (normalize_normals(pred.double()) * normalize_normals(ref.double())).sum(dim=1).clamp(-1.0, 1.0)
        angle = torch.rad2deg(torch.arccos(cos))
        out.update(angular_deg=float(angle.mean()), max_angular_deg=float(angle.max()))
        return out

    # -- ensembling
    def ensemble(self, members: torch.Tensor, output_uncertainty: bool, **kwargs: Any):
        """Per pixel the member closest to the mean direction (``reduction="closest"``) or the mean direction
        (``"mean"``); uncertainty = mean angle to the mean direction / pi."""
        reduction = kwargs.pop("reduction", self.default_reduction)
        self.check_reduction(reduction)
        if kwargs:
            raise ValueError(f"normals ensembling takes only 'reduction', got {sorted(kwargs)}")
        return ensemble_normals(members[:, 0], output_uncertainty, reduction)

    # -- training
    def e2e_loss(self, decoded: torch.Tensor, batch: Mapping[str, Any], device: torch.device) -> torch.Tensor:
        """Mean angular error (radians) over the valid pixels."""
        return angular_loss(decoded[:, 0], batch["normals"].to(device), _batch_mask(batch, device))

    def read_target_file(self, source: DataSource, rel_path: str, target: str) -> np.ndarray:
        """``.npy`` ``[H, W, 3]`` (or ``[3, H, W]``) camera-frame normals."""
        arr = np.asarray(read_npy(source, rel_path))
        if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[2] != 3:
            arr = np.moveaxis(arr, 0, -1)
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"normal map has dtype {arr.dtype}")
        return arr

    def training_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        opts = super().training_options(options)
        return {"blur": bool(opts.get("blur", False)),
                "augmentation": normals_augmentation(opts.get("augmentation"))}

    def training_sample(self, rgb: np.ndarray, targets: Mapping[str, np.ndarray], mask: torch.Tensor | None,
                        rng: np.random.Generator, augment: bool, resize: tuple[int, int] | None,
                        blur: bool = False, augmentation: NormalsAugmentation | None = None) -> dict[str, Any]:
        """Unit normals valid where finite and longer than 0.1; the authors' flip / blur / colour jitter and
        bilinear resize (:mod:`.training`)."""
        normals, valid = prepare_normals(to_chw(targets["normals"]))
        if mask is not None:
            valid = valid & mask
        return augment_and_resize_normals(rgb, normals, valid, rng, augment, blur,
                                          augmentation or NormalsAugmentation(), resize)

    # -- scoring
    def score(self, preds: Mapping[str, np.ndarray], gt: Any, mask: np.ndarray | None = None) -> tuple[dict, None]:
        """Angular-error statistics (:func:`~.metrics.normals_metrics`) of the prediction resized to the ground
        truth and clipped to [-1, 1]; zero (or non-finite) ground-truth vectors are not scored."""
        g = np.nan_to_num(np.asarray(as_target_dict(gt, self.target_names)["normals"], dtype=np.float32), nan=0.0)
        pred = np.clip(resize_prediction(preds["normals"], g.shape[:2]), -1.0, 1.0)
        return normals_metrics(pred, g, mask), None

    def error_map(self, gt: Any, mask: np.ndarray, preds: Mapping[str, np.ndarray], aux: Any) -> ErrorMap:
        g = as_target_dict(gt, self.target_names)["normals"]
        pred = resize_prediction(preds["normals"], g.shape[:2])
        err = np.asarray(angular_error(pred, g, return_map=True), dtype=np.float32)
        err = np.where(mask & (np.linalg.norm(g, axis=-1) > 0), err, np.nan)
        return ErrorMap(err, "angular error (deg)", (np.clip(pred, -1, 1) + 1) / 2)

    def check_folder_pair(self, target: str, gt: np.ndarray, pred: np.ndarray) -> None:
        if not (shape_matches(gt, "H W 3") and shape_matches(pred, "H W 3")):
            raise ValueError(f"normals must be HxWx3, got GT {gt.shape} and prediction {pred.shape}")

    # -- files
    def visualize(self, target: str, array: np.ndarray) -> np.ndarray:
        return normals_to_rgb(array)

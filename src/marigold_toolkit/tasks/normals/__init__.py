"""Surface normals in the camera frame (X right, Y up, Z towards the viewer). The task object, its ensembling,
metrics, training-sample pipeline and visualisation."""

from .ensemble import ensemble_normals, normalize_normals
from .metrics import NORMALS_METRIC_KEYS, NORMALS_THRESHOLDS, angular_error, normals_metrics
from .task import NormalsTask, angular_loss, normals_to_rgb
from .training import (
    MIN_NORMAL_LENGTH,
    NormalsAugmentation,
    augment_and_resize_normals,
    augment_normals_rgb,
    draw_normals_params,
    normals_augmentation,
    prepare_normals,
    unit_normals,
)

__all__ = ["NormalsTask", "MIN_NORMAL_LENGTH", "NORMALS_METRIC_KEYS", "NORMALS_THRESHOLDS", "NormalsAugmentation",
           "angular_error", "angular_loss", "augment_and_resize_normals", "augment_normals_rgb",
           "draw_normals_params", "ensemble_normals", "normalize_normals", "normals_augmentation",
           "normals_metrics", "normals_to_rgb", "prepare_normals", "unit_normals"]

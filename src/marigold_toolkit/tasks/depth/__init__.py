"""Depth: affine-invariant depth in [0, 1] (0 = near, 1 = far). The task object, its ensembling, alignment,
metrics, training-target normalisation and visualisation."""

from .alignment import ALIGNMENT_METHODS, align_depth, align_depth_least_squares, align_depth_least_squares_disparity
from .ensemble import ensemble_depth
from .metrics import DEPTH_METRIC_KEYS, depth_metrics
from .task import (
    DepthTask,
    affine_invariant_l1,
    colorize_depth,
    depth_range_mask,
    depth_to_uint16,
    normalize_depth,
    read_depth_file,
)

__all__ = ["DepthTask", "ALIGNMENT_METHODS", "DEPTH_METRIC_KEYS", "affine_invariant_l1", "align_depth",
           "align_depth_least_squares", "align_depth_least_squares_disparity", "colorize_depth",
           "depth_metrics", "depth_range_mask", "depth_to_uint16", "ensemble_depth", "normalize_depth",
           "read_depth_file"]

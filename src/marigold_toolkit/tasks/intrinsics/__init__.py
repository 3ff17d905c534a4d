"""Intrinsic image decomposition (albedo / shading / residual, albedo / roughness / metallicity). The task
object, its metrics and visualisation."""

from .metrics import UP_TO_SCALE_TARGETS, intrinsics_metrics, linear_to_srgb, prepare_iid_pair, quantile_map, srgb_to_linear
from .task import IntrinsicsTask, intrinsic_to_rgb

__all__ = ["IntrinsicsTask", "UP_TO_SCALE_TARGETS", "intrinsic_to_rgb", "intrinsics_metrics", "linear_to_srgb",
           "prepare_iid_pair", "quantile_map", "srgb_to_linear"]

"""Per-task target codecs, built from a checkpoint's :class:`~marigold_toolkit.models.checkpoint.MarigoldSpec`."""

from __future__ import annotations

from .base import TaskCodec
from .depth import DepthCodec
from .intrinsics import IntrinsicsCodec
from .normals import NormalsCodec

TASKS = ("depth", "normals", "intrinsics")


def codec_for_spec(spec) -> TaskCodec:
    """The codec of a checkpoint, configured from its model_index fields."""
    if spec.task == "depth":
        return DepthCodec(spec.target_names, spec.scale_invariant, spec.shift_invariant)
    if spec.task == "normals":
        return NormalsCodec(spec.target_names, spec.use_full_z_range)
    if spec.task == "intrinsics":
        return IntrinsicsCodec(spec.target_names, spec.target_properties)
    raise ValueError(f"unknown task {spec.task!r}")


__all__ = ["TaskCodec", "DepthCodec", "NormalsCodec", "IntrinsicsCodec", "codec_for_spec", "TASKS"]

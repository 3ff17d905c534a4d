"""Checkpoints: resolving, reading model_index.json, loading components."""

from .checkpoint import CheckpointError, MarigoldSpec, read_spec, resolve_checkpoint_path
from .loading import MarigoldComponents, load_components

__all__ = ["CheckpointError", "MarigoldSpec", "MarigoldComponents", "read_spec", "resolve_checkpoint_path",
           "load_components"]

"""Checkpoints: named models, resolving a name to a folder, reading and writing ``model_index.json``, loading the
inference components, the offline SD2 layout pieces and the ONNX export."""

from .loading import MarigoldComponents, load_components
from .model_index import MarigoldSpec, build_model_index, read_spec, write_model_index
from .registry import list_models, register_model, resolve_alias
from .resolve import CheckpointError, resolve_checkpoint_path

__all__ = ["CheckpointError", "MarigoldSpec", "MarigoldComponents", "build_model_index", "list_models",
           "load_components", "read_spec", "register_model", "resolve_alias", "resolve_checkpoint_path",
           "write_model_index"]

"""Inference: image geometry, the shared denoising loop, ensembling and the :class:`Predictor`."""

from .ensemble import ensemble_depth, ensemble_intrinsics, ensemble_normals, normalize_normals
from .outputs import MarigoldOutput
from .predictor import Predictor

__all__ = ["Predictor", "MarigoldOutput", "ensemble_depth", "ensemble_normals", "ensemble_intrinsics",
           "normalize_normals"]

"""Inference: the shared denoising loop, the model-call backends and the :class:`Predictor`."""

from .high_resolution import HighResolution
from .outputs import MarigoldOutput
from .predictor import Predictor

__all__ = ["HighResolution", "Predictor", "MarigoldOutput"]

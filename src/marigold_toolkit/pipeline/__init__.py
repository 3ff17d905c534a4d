"""Inference: the shared denoising loop, the model-call backends and the :class:`Predictor`."""

from .outputs import MarigoldOutput
from .predictor import Predictor

__all__ = ["Predictor", "MarigoldOutput"]

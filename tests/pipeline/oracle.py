"""Helpers to run diffusers' Marigold pipelines (the authors' reference code) as a test oracle."""

from __future__ import annotations

import diffusers
import numpy as np
import torch

from marigold_toolkit.testing import LAYOUTS

_CACHE: dict[str, object] = {}


def oracle(path) -> object:
    """diffusers' pipeline for a checkpoint folder, cached per folder."""
    key = str(path)
    if key not in _CACHE:
        layout = next(name for name in LAYOUTS if key.endswith(name))
        pipe = getattr(diffusers, LAYOUTS[layout]["pipeline"]).from_pretrained(path)
        pipe.set_progress_bar_config(disable=True)
        _CACHE[key] = pipe
    return _CACHE[key]


def oracle_predict(path, image, seed: int, **kwargs):
    """Run the oracle on one image; returns ``(prediction [T,H,W,C], uncertainty or None)`` as numpy."""
    pipe = oracle(path)
    e = kwargs.get("ensemble_size", 1)
    out = pipe(image, generator=torch.Generator("cpu").manual_seed(seed), output_uncertainty=e > 1, **kwargs)
    return out.prediction, out.uncertainty


def stack_ours(d: dict[str, np.ndarray]) -> np.ndarray:
    """Our per-target dict -> ``[T, H, W, C]`` like diffusers' output."""
    return np.stack([v if v.ndim == 3 else v[..., None] for v in d.values()])

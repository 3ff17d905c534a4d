"""Shared fixtures: tiny random checkpoints in every public Marigold layout, built once per session with
diffusers' own ``save_pretrained``; tests never reach the network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from marigold_toolkit.testing import LAYOUTS, build_random_checkpoint  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def checkpoint_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def checkpoints(checkpoint_root) -> dict[str, Path]:
    """layout name -> folder of a tiny random checkpoint (depth-v1-1 also carries fp16 variant files)."""
    out = {}
    for i, layout in enumerate(LAYOUTS):
        variant = "fp16" if layout == "depth-v1-1" else None
        out[layout] = build_random_checkpoint(checkpoint_root / layout, layout, seed=i, variant=variant)
    return out


@pytest.fixture(scope="session")
def depth_ckpt(checkpoints) -> Path:
    return checkpoints["depth-v1-1"]


@pytest.fixture
def rgb_image() -> np.ndarray:
    """A 37x53 random uint8 RGB image (odd size: exercises padding)."""
    return (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)


def pytest_collection_modifyitems(config, items):
    if not items:
        raise pytest.UsageError("no tests collected")

"""Benchmark dataset interface shared by the depth, normals and intrinsics loaders.

A benchmark reads its published on-disk format under a root folder, in the order of the authors' split file,
and yields :class:`EvalSample` objects with ground truth in evaluation units and the validity mask already
including the dataset's depth range and evaluation crop (the protocol's step 1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class EvalSample:
    """One evaluation sample.

    Attributes:
        stem: unique, filesystem-safe id (used for cached prediction and per-image CSV rows).
        rgb: ``[H, W, 3]`` uint8 input image (after any benchmark crop such as KITTI's KB crop).
        gt: depth ``[H, W]`` float32 metres; normals ``[H, W, 3]`` float32 unit vectors; intrinsics: dict
            target name -> ``[H, W, 3]`` float32 in [0, 1].
        valid_mask: ``[H, W]`` bool, the pixels that are scored.
        meta: anything else (e.g. source paths, camera intrinsics).
    """

    stem: str
    rgb: np.ndarray
    gt: Any
    valid_mask: np.ndarray
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class InferenceDefaults:
    """The authors' inference settings for a benchmark."""

    processing_resolution: int
    num_inference_steps: int | None = None  # None: the checkpoint's default
    ensemble_size: int = 1
    seed: int = 1234
    resample_method: str = "bilinear"


class Benchmark(ABC):
    """A benchmark: split file + published file layout under ``root``.

    Class attributes describe the protocol; ``__getitem__`` decodes one sample.
    """

    name: str = ""
    task: str = ""  # depth | normals | intrinsics
    split_file: str = ""  # the authors' split file name (shipped under evaluation/splits/ when small)
    num_samples: int | None = None  # published count, e.g. 654 for NYUv2
    min_depth: float = 0.0
    max_depth: float = float("inf")
    alignment: str = "least_squares"  # least_squares | least_squares_disparity | none
    alignment_max_res: int | None = None
    inference: InferenceDefaults = InferenceDefaults(processing_resolution=0)

    def __init__(self, root: str | Path, split: str | Path | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: data folder for benchmark '{self.name}' does not exist")
        self.entries = self.read_split(Path(split) if split else None)

    @abstractmethod
    def read_split(self, split: Path | None) -> list[Any]:
        """Parse the split file (``split`` or the default) into per-sample entries."""

    @abstractmethod
    def load(self, entry: Any) -> EvalSample:
        """Decode one entry from disk."""

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> EvalSample:
        return self.load(self.entries[i])

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

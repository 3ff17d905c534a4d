"""Per-task target codecs: how a task's targets go into and come out of the frozen VAE.

The denoising loop is shared by all tasks; a codec only says how many 4-channel latents a prediction has, how a
decoded VAE image becomes a prediction, how ensemble members merge, and how ground truth is encoded for training.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


class TaskCodec(ABC):
    """Encode/decode of one task's targets.

    Shapes: ``T`` targets, ``C`` channels per decoded target (1 for depth, 3 otherwise),
    ``U`` channels of the uncertainty map per target.
    """

    task: str = ""
    channels: int = 3
    uncertainty_channels: int = 1
    default_reduction: str = "median"
    reductions: tuple[str, ...] = ("median", "mean")

    def __init__(self, target_names: list[str]):
        self.target_names = list(target_names)

    @property
    def n_targets(self) -> int:
        return len(self.target_names)

    @abstractmethod
    def decode(self, image: torch.Tensor) -> torch.Tensor:
        """VAE decoder output ``[B, 3, H, W]`` in about [-1, 1] -> prediction ``[B, C, H, W]``."""

    @abstractmethod
    def ensemble(
        self, members: torch.Tensor, output_uncertainty: bool, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[E, T, C, H, W]`` -> (``[T, C, H, W]``, ``[T, U, H, W]`` or ``None``)."""

    def finalize(self, prediction: torch.Tensor) -> torch.Tensor:
        """Post-process ``[T, C, H, W]`` after resizing to the output size (default: nothing)."""
        return prediction

    @abstractmethod
    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """Ground truth ``[B, C, H, W]`` in prediction units -> VAE input ``[B, 3, H, W]`` in [-1, 1]."""

    def check_reduction(self, reduction: str) -> None:
        if reduction not in self.reductions:
            raise ValueError(f"{self.task}: reduction must be one of {self.reductions}, got {reduction!r}")

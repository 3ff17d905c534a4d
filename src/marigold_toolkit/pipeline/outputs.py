"""Output dataclass of :meth:`marigold_toolkit.Predictor.predict`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MarigoldOutput:
    """The prediction for one image.

    Attributes:
        task: the task's name (``"depth"``, ``"normals"``, ``"intrinsics"``, or a registered task of your own).
        targets: per target name a float32 array: depth ``[H, W]`` in [0, 1] (affine-invariant, 0 = near),
            normals ``[H, W, 3]`` unit vectors in [-1, 1] (X right, Y up, Z to the viewer), intrinsics
            ``[H, W, 3]`` in [0, 1] in the target's prediction space (see ``target_properties``).
        uncertainty: per target name a float32 array (depth/normals ``[H, W]``, intrinsics ``[H, W, 3]``), or
            ``None`` without ensembling.
        input_size: ``(H, W)`` of the input image.
        processing_size: ``(h, w)`` at which the model ran (before padding to the latent stride).
        settings: the resolved inference settings (steps, ensemble size, resolution, seed, ...).
        latent: the final latents ``[E, 4T, h, w]`` with ``predict(..., output_latent=True)``, else ``None``.
    """

    task: str
    targets: dict[str, np.ndarray]
    uncertainty: dict[str, np.ndarray] | None = None
    input_size: tuple[int, int] = (0, 0)
    processing_size: tuple[int, int] = (0, 0)
    settings: dict = field(default_factory=dict)
    latent: Any = None

    @property
    def prediction(self) -> np.ndarray:
        """Depth ``[H, W]``, normals ``[H, W, 3]``, or for intrinsics all targets stacked ``[T, H, W, 3]``."""
        values = list(self.targets.values())
        return values[0] if len(values) == 1 else np.stack(values)

    @property
    def target_names(self) -> list[str]:
        return list(self.targets)

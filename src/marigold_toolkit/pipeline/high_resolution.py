"""Training-free high-resolution prediction: a global pass, then overlapping native-resolution tiles aligned to it.

1. The whole image at the processing resolution, resized back to the input size (the global prediction).
2. Tiles of ``tile_size`` input pixels (default: the processing resolution) with ``overlap`` between neighbours,
   each predicted on its own at native resolution, ``batch_size`` tiles per model call chunk (memory is bounded by
   one chunk, whatever the image size).
3. Each tile is brought onto the global prediction over its pixels by the task (:meth:`Task.align_tile`; depth: a
   least-squares scale and shift), then the tiles are blended with weights that fall towards their borders
   (:func:`~marigold_toolkit.core.tiles.border_weights`) and post-processed by the task.

The global pass fixes the layout of the scene; the tiles add the detail the model resolves at native resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..core.image import to_chw
from ..core.tiles import border_weights, tile_grid
from ..tasks.base import chw_to_hwc
from .outputs import MarigoldOutput


@dataclass(frozen=True)
class HighResolution:
    """Settings of :func:`predict_high_resolution`.

    Attributes:
        overlap: fraction of a tile shared with each neighbour, in [0, 1) (default 0.5).
        tile_size: tile edge in input pixels; ``None``: the processing resolution.
    """

    overlap: float = 0.5
    tile_size: int | None = None

    def __post_init__(self):
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"high-resolution overlap must be in [0, 1), got {self.overlap}")
        if self.tile_size is not None and self.tile_size < 16:
            raise ValueError(f"high-resolution tile_size must be >= 16 pixels, got {self.tile_size}")


def _tile_seed(seed: int | None, k: int) -> int | None:
    return None if seed is None else int(seed) + 1 + k


def _per_pixel(weights: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``[H, W]`` weights shaped to multiply or divide ``like`` (``[H, W]`` or ``[H, W, C]``)."""
    return weights if like.ndim == 2 else weights[..., None]


def predict_high_resolution(
    predictor: Any,
    image: torch.Tensor,
    hr: HighResolution,
    processing_resolution: int,
    seed: int | None = None,
    batch_size: int = 1,
    output_uncertainty: bool = False,
    **kwargs: Any,
) -> MarigoldOutput:
    """One image ``[1, 3, H, W]`` in [0, 1] -> a :class:`MarigoldOutput` at ``H x W`` built from a global pass and
    aligned tiles.

    Args:
        predictor: a :class:`~.predictor.Predictor` (or anything with its ``task`` and ``predict``); its task must
            define :meth:`Task.align_tile`.
        image: the input image.
        hr: overlap and tile size.
        processing_resolution: the global pass's long edge (> 0).
        seed: the global pass's seed; tile ``k`` uses ``seed + 1 + k`` (``None``: random).
        batch_size: rows per model call, and tiles per chunk.
        output_uncertainty: blend the tiles' uncertainties (scaled as the task aligns the tile).
        kwargs: passed to every :meth:`Predictor.predict` call (steps, ensemble size, resampling, noise, ...).
    """
    task = predictor.task
    if not task.supports_tiling:
        raise ValueError(f"high-resolution prediction is not defined for the {task.name} task")
    H, W = image.shape[-2:]
    tile = hr.tile_size or processing_resolution
    common = dict(kwargs, batch_size=batch_size, output_uncertainty=output_uncertainty, high_resolution=False)
    glob = predictor.predict(image, processing_resolution=processing_resolution, match_input_resolution=True,
                             seed=seed, **common)
    tiles = tile_grid(H, W, tile, hr.overlap)
    acc = {name: np.zeros(a.shape, dtype=np.float64) for name, a in glob.targets.items()}
    acc_unc = ({name: np.zeros(a.shape, dtype=np.float64) for name, a in glob.uncertainty.items()}
               if output_uncertainty else None)
    wsum = np.zeros((H, W), dtype=np.float64)
    for start in range(0, len(tiles), batch_size):
        chunk = tiles[start : start + batch_size]
        crops = [image[(..., *t.slices)] for t in chunk]
        seeds = None if seed is None else [_tile_seed(seed, start + j) for j in range(len(chunk))]
        outs = predictor.predict(crops, processing_resolution=0, match_input_resolution=True, seed=seeds, **common)
        for t, out in zip(chunk, outs):
            ys, xs = t.slices
            w = border_weights(t.h, t.w).astype(np.float64)
            wsum[ys, xs] += w
            for name, pred in out.targets.items():
                aligned, factor = task.align_tile(name, pred, glob.targets[name][ys, xs])
                acc[name][ys, xs] += _per_pixel(w, aligned) * aligned
                if acc_unc is not None:
                    u = out.uncertainty[name] * abs(factor)
                    acc_unc[name][ys, xs] += _per_pixel(w, u) * u
    targets, uncertainty = {}, ({} if acc_unc is not None else None)
    for name, total in acc.items():
        blended = total / _per_pixel(wsum, total)
        targets[name] = chw_to_hwc(task.finalize(to_chw(blended.astype(np.float32))[None])[0])
        if acc_unc is not None:
            u = acc_unc[name] / _per_pixel(wsum, acc_unc[name])
            uncertainty[name] = u.astype(np.float32)
    settings = dict(glob.settings, high_resolution={**asdict(hr), "tile_size": tile, "tiles": len(tiles)})
    return MarigoldOutput(task=glob.task, targets=targets, uncertainty=uncertainty, input_size=(H, W),
                          processing_size=glob.processing_size, settings=settings)

"""Overlapping tiles over an image and blending weights that fall towards the tile borders."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """A window ``[y0, y0 + h) x [x0, x0 + w)`` of an image."""

    y0: int
    x0: int
    h: int
    w: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y0 + self.h), slice(self.x0, self.x0 + self.w)


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of windows of size ``tile`` covering ``[0, length)`` with at least ``overlap`` (fraction of
    ``tile``) shared between neighbours, spread evenly; the first starts at 0, the last ends at ``length``.

    >>> tile_starts(1024, 512, 0.5)
    [0, 256, 512]
    >>> tile_starts(1000, 512, 0.5)
    [0, 244, 488]
    >>> tile_starts(300, 512, 0.5)
    [0]
    """
    if tile < 1 or length < 1:
        raise ValueError(f"tile {tile} and length {length} must be >= 1")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if length <= tile:
        return [0]
    stride = max(1, math.floor(tile * (1.0 - overlap)))
    n = math.ceil((length - tile) / stride) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def tile_grid(height: int, width: int, tile: int, overlap: float) -> list[Tile]:
    """Row-major tiles of ``tile x tile`` pixels (clamped to the image) covering ``height x width``.

    >>> [(t.y0, t.x0, t.h, t.w) for t in tile_grid(600, 1000, 512, 0.5)]
    [(0, 0, 512, 512), (0, 244, 512, 512), (0, 488, 512, 512), (88, 0, 512, 512), (88, 244, 512, 512), (88, 488, 512, 512)]
    """
    th, tw = min(tile, height), min(tile, width)
    return [Tile(y, x, th, tw) for y in tile_starts(height, th, overlap) for x in tile_starts(width, tw, overlap)]


def border_weights(h: int, w: int) -> np.ndarray:
    """``[h, w]`` float32 blending weights: the product of the distances (in pixels, from 1 at the outermost
    pixel) to the nearest border along each axis, normalised to a maximum of 1; positive everywhere.

    >>> border_weights(1, 4).tolist()
    [[0.5, 1.0, 1.0, 0.5]]
    """
    def ramp(n: int) -> np.ndarray:
        i = np.arange(n, dtype=np.float64)
        r = np.minimum(i + 1, n - i)
        return r / r.max()

    return np.outer(ramp(h), ramp(w)).astype(np.float32)

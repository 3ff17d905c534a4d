"""Array files written atomically: float32 ``.npy`` and 8/16-bit PNG, as files or as bytes.

One place for how predictions and rendered maps are encoded on disk; every writer goes through
:func:`~marigold_toolkit.core.atomic.atomic_write_bytes`, so a killed process never leaves a partial file.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from ..core.atomic import atomic_write_bytes
from ..visualize import side_by_side, to_uint8_rgb


def npy_bytes(array: np.ndarray, dtype: np.dtype | type = np.float32) -> bytes:
    """``array`` as the bytes of a ``.npy`` file in ``dtype`` (no pickle).

    >>> np.load(io.BytesIO(npy_bytes(np.ones((2, 3))))).dtype
    dtype('float32')
    """
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=dtype), allow_pickle=False)
    return buf.getvalue()


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 ``H x W`` / ``H x W x 3`` or uint16 ``H x W`` (16-bit grey) -> the bytes of a PNG file."""
    arr = np.asarray(array)
    if arr.dtype not in (np.uint8, np.uint16) or (arr.dtype == np.uint16 and arr.ndim != 2):
        raise ValueError(f"PNG: expected uint8 HxW/HxWx3 or uint16 HxW, got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as a float32 ``.npy`` file atomically."""
    atomic_write_bytes(path, npy_bytes(array))


def save_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (see :func:`png_bytes`) as a PNG file atomically."""
    atomic_write_bytes(path, png_bytes(array))


def save_preview(path: str | os.PathLike, image: np.ndarray, panels: list[np.ndarray]) -> None:
    """Write the input ``image`` (uint8/uint16/float, resized to the panels' size) next to the uint8 RGB
    ``panels`` (same height, e.g. each target's visualisation) as one PNG, atomically."""
    if not panels:
        raise ValueError("a preview needs at least one panel")
    h, w = panels[0].shape[:2]
    rgb = np.asarray(Image.fromarray(to_uint8_rgb(image)).resize((w, h), Image.BILINEAR))
    save_png(path, side_by_side(rgb, *panels))

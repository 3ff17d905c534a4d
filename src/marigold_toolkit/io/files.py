"""Array files written atomically: float32 ``.npy`` and 8/16-bit PNG, as files or as bytes.

One place for how predictions and rendered maps are encoded on disk; every writer goes through
:func:`~marigold_toolkit.core.atomic.atomic_write_bytes`, so a killed process never leaves a partial file.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

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


# --- 16-bit PNG with a value range (label shards, server answers) -------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def quantize_uint16(array: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Float ``array`` with values in ``value_range = (lo, hi)`` -> uint16 ``(v - lo) / (hi - lo) * 65535``,
    clipped and truncated (the rule of the authors' 16-bit depth PNGs).

    >>> quantize_uint16(np.array([[-1.0, 0.0, 1.0]]), (-1.0, 1.0)).tolist()
    [[0, 32767, 65535]]
    """
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f"value range [{lo}, {hi}] is empty")
    scaled = (np.asarray(array, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return (np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0) * 65535).astype(np.uint16)


def dequantize_uint16(q: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Inverse of :func:`quantize_uint16` up to its step ``(hi - lo) / 65535``: float32 values.

    >>> dequantize_uint16(np.array([0, 65535], dtype=np.uint16), (-1.0, 1.0)).tolist()
    [-1.0, 1.0]
    """
    lo, hi = float(value_range[0]), float(value_range[1])
    return (lo + np.asarray(q, dtype=np.float64) / 65535.0 * (hi - lo)).astype(np.float32)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png16_bytes(array: np.ndarray, value_range: tuple[float, float]) -> bytes:
    """Float ``H x W`` or ``H x W x 3`` with values in ``value_range`` -> a 16-bit grey or 16-bit RGB PNG
    (:func:`quantize_uint16`). Pillow writes the grey ones; the RGB ones (which Pillow cannot write) are encoded
    here with the *Sub* filter on every row. Read them back with :func:`read_png16` (or OpenCV's ``imdecode``
    with ``IMREAD_UNCHANGED``, which gives BGR)."""
    arr = np.asarray(array)
    if arr.ndim == 2:
        return png_bytes(quantize_uint16(arr, value_range))
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"16-bit PNG: expected HxW or HxWx3, got shape {arr.shape}")
    h, w, _ = arr.shape
    raw = quantize_uint16(arr, value_range).astype(">u2").view(np.uint8).reshape(h, w * 6)
    sub = raw.copy()
    sub[:, 6:] = raw[:, 6:] - raw[:, :-6]  # uint8 arithmetic wraps modulo 256, as the filter defines
    rows = np.concatenate([np.ones((h, 1), dtype=np.uint8), sub], axis=1)  # filter type 1 (Sub) per row
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + _png_chunk(b"IEND", b""))


def _unfilter(data: bytes, h: int, stride: int, bpp: int) -> np.ndarray:
    """The raw bytes ``[h, stride]`` of a non-interlaced PNG's decompressed IDAT stream (all five filters)."""
    rows = np.frombuffer(data, dtype=np.uint8)
    if rows.size != h * (stride + 1):
        raise ValueError(f"PNG: image data has {rows.size} bytes, expected {h * (stride + 1)}")
    rows = rows.reshape(h, stride + 1)
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum per byte position modulo the pixel size
            cur = np.cumsum(np.pad(line, (0, -stride % bpp)).reshape(-1, bpp), axis=0).reshape(-1)[:stride]
        elif kind == 2:
            cur = line + prev
        elif kind in (3, 4):
            cur = np.zeros(stride, dtype=np.int64)
            up = prev.astype(np.int64)
            for x in range(stride):
                a = int(cur[x - bpp]) if x >= bpp else 0
                b = int(up[x])
                if kind == 3:
                    pred = (a + b) // 2
                else:
                    c = int(up[x - bpp]) if x >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (int(line[x]) + pred) & 0xFF
        else:
            raise ValueError(f"PNG: unknown filter type {kind} in row {y}")
        out[y] = (cur & 0xFF).astype(np.uint8)
        prev = out[y]
    return out


def read_png16(data: bytes, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """The bytes of a 16-bit grey or RGB PNG -> uint16 ``H x W`` / ``H x W x 3`` or, with ``value_range``,
    float32 values (:func:`dequantize_uint16`). Non-interlaced files only (what :func:`png16_bytes` and the
    common encoders write); a clear ``ValueError`` for anything else."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos, header, idat = len(PNG_SIGNATURE), None, []
    while pos + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG: no IHDR chunk")
    w, h, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3}.get(color)
    if depth != 16 or channels is None or interlace:
        raise ValueError(f"PNG: expected a non-interlaced 16-bit grey or RGB image, got bit depth {depth}, "
                         f"colour type {color}, interlace {interlace}")
    try:
        raw = _unfilter(zlib.decompress(b"".join(idat)), h, w * channels * 2, channels * 2)
    except zlib.error as exc:
        raise ValueError(f"PNG: corrupt image data ({exc})") from exc
    q = raw.view(">u2").astype(np.uint16).reshape((h, w) if channels == 1 else (h, w, 3))
    return q if value_range is None else dequantize_uint16(q, value_range)

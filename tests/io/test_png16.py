"""16-bit PNG with a value range: round trips, Pillow as the oracle, every PNG row filter."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit.io.files import (PNG_SIGNATURE, dequantize_uint16, png16_bytes, quantize_uint16,
                                       read_png16)
from marigold_toolkit.tasks import get_task
from marigold_toolkit.tasks.depth.task import depth_to_uint16


def test_grey_round_trip_and_pillow_reads_it():
    rng = np.random.default_rng(0)
    depth = rng.random((7, 11)).astype(np.float32)
    data = png16_bytes(depth, (0.0, 1.0))
    q = read_png16(data)
    assert q.dtype == np.uint16 and q.shape == (7, 11)
    np.testing.assert_array_equal(q, depth_to_uint16(depth))  # the same quantisation as predict's _depth.png
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), q)
    back = read_png16(data, (0.0, 1.0))
    assert np.abs(back - depth).max() <= 1 / 65535 + 1e-7


def test_rgb_round_trip_within_one_step_and_pillow_sees_the_high_bytes():
    rng = np.random.default_rng(1)
    normals = rng.uniform(-1, 1, (5, 9, 3)).astype(np.float32)
    data = png16_bytes(normals, (-1.0, 1.0))
    q = read_png16(data)
    np.testing.assert_array_equal(q, quantize_uint16(normals, (-1.0, 1.0)))
    assert np.abs(read_png16(data, (-1.0, 1.0)) - normals).max() <= 2 / 65535 + 1e-7
    # Pillow decodes a 48-bit PNG to 8-bit RGB: the high byte of each sample
    pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(pil, (q >> 8).astype(np.uint8))


def test_quantisation_by_hand():
    assert quantize_uint16(np.array([0.25, 2.0, -3.0, np.nan]), (0.0, 1.0)).tolist() == [16383, 65535, 0, 0]
    assert dequantize_uint16(np.array([32767], dtype=np.uint16), (0.0, 2.0)).tolist() == pytest.approx([0.99998474])
    with pytest.raises(ValueError, match="empty"):
        quantize_uint16(np.zeros(2), (1.0, 1.0))


def _filter_rows(raw: np.ndarray, kind: int, bpp: int) -> bytes:
    """A plain-Python PNG encoder's filter step (the forward direction), for rows ``raw [h, stride]``."""
    out = bytearray()
    prev = [0] * raw.shape[1]
    for row in raw.tolist():
        out.append(kind)
        for x, v in enumerate(row):
            a = row[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out.append((v - pred) % 256)
        prev = row
    return bytes(out)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4])
def test_every_row_filter_decodes(kind):
    rng = np.random.default_rng(kind)
    q = rng.integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    raw = q.astype(">u2").view(np.uint8).reshape(4, 36)
    data = (PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 4, 16, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(_filter_rows(raw, kind, 6))) + _chunk(b"IEND", b""))
    np.testing.assert_array_equal(read_png16(data), q)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="not a PNG"):
        read_png16(b"GIF89a")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((2, 2, 3), dtype=np.uint8)).save(buf, format="PNG")
    with pytest.raises(ValueError, match="bit depth 8"):
        read_png16(buf.getvalue())
    with pytest.raises(ValueError, match="HxW or HxWx3"):
        png16_bytes(np.zeros((2, 2, 4)), (0.0, 1.0))


def test_tasks_name_their_value_range():
    assert get_task("depth")().value_range == (0.0, 1.0)
    assert get_task("normals")().value_range == (-1.0, 1.0)
    assert get_task("intrinsics")(["albedo"]).value_range == (0.0, 1.0)
    assert all(get_task(n).uncertainty_range == (0.0, 1.0) for n in ("depth", "normals", "intrinsics"))

"""Resizing and padding: hand-computed sizes, round trips, and agreement with diffusers' image processor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.pipelines.marigold import MarigoldImageProcessor

from marigold_toolkit.core.image import (
    pad_to_multiple,
    processing_size,
    resize,
    resize_to_max_edge,
    to_tensor,
    unpad,
)


@pytest.mark.parametrize("h,w,res,expected", [
    (40, 150, 72, (19, 72)), (480, 640, 768, (576, 768)), (768, 1024, 768, (576, 768)),
    (100, 100, 64, (64, 64)), (480, 640, 0, (480, 640)), (3, 2000, 768, (1, 768)),
])
def test_processing_size(h, w, res, expected):
    assert processing_size(h, w, res) == expected


def test_processing_size_errors():
    with pytest.raises(ValueError, match="aspect ratio"):
        processing_size(1, 2000, 768)
    with pytest.raises(ValueError, match=">= 0"):
        processing_size(10, 10, -1)


@pytest.mark.parametrize("h,w", [(37, 53), (64, 64), (8, 9), (1, 1)])
def test_pad_unpad_round_trip(h, w):
    x = torch.rand(2, 3, h, w)
    y, pad = pad_to_multiple(x, 8)
    assert y.shape[-2] % 8 == 0 and y.shape[-1] % 8 == 0
    assert pad == ((-h) % 8, (-w) % 8)
    torch.testing.assert_close(unpad(y, pad), x, atol=0, rtol=0)
    # replicate padding: the last row/column is repeated
    torch.testing.assert_close(y[..., -1, :w], x[..., -1, :], atol=0, rtol=0)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest-exact", "area", "nearest"])
def test_resize_equals_diffusers(mode):
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(resize_to_max_edge(x, 24, mode),
                               MarigoldImageProcessor.resize_to_max_edge(x, 24, mode), atol=0, rtol=0)
    torch.testing.assert_close(resize(x, (50, 70), mode),
                               MarigoldImageProcessor.resize_antialias(x, (50, 70), mode, is_aa=False), atol=0, rtol=0)


def test_resize_rejects_unknown_mode():
    with pytest.raises(ValueError, match="resampling"):
        resize(torch.rand(1, 1, 4, 4), (2, 2), "lanczos")


def test_to_tensor_conversions():
    u8 = np.array([[[0, 128, 255]]], dtype=np.uint8)
    torch.testing.assert_close(to_tensor(u8).flatten(), torch.tensor([0.0, 128 / 255, 1.0]))
    u16 = np.array([[[0, 65535, 32768]]], dtype=np.uint16)
    torch.testing.assert_close(to_tensor(u16).flatten(), torch.tensor([0.0, 1.0, 32768 / 65535]))
    grey = np.array([[0.25]], dtype=np.float32)
    assert to_tensor(grey).flatten().tolist() == [0.25, 0.25, 0.25]
    assert to_tensor(torch.full((3, 2, 2), 0.5)).shape == (1, 3, 2, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_tensor(np.full((2, 2, 3), 1.5, dtype=np.float32))
    with pytest.raises(ValueError, match="dtype"):
        to_tensor(np.zeros((2, 2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="shape"):
        to_tensor(np.zeros((2, 2, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_tensor(np.full((2, 2, 3), np.nan, dtype=np.float32))


def test_to_tensor_matches_diffusers_layout():
    """Same memory format as diffusers' processor, so convolutions give bitwise-equal results."""
    arr = (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)
    ours, _ = pad_to_multiple(to_tensor(arr) * 2 - 1, 8)
    ref, _, _ = MarigoldImageProcessor().preprocess(arr, 0, "bilinear")
    torch.testing.assert_close(ours, ref, atol=0, rtol=0)
    assert ours.stride() == ref.stride()

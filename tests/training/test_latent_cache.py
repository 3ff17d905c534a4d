"""LatentCache: content-addressed, per-row, bounded."""

from __future__ import annotations

import pytest
import torch

from marigold_toolkit.training.latent_cache import LatentCache, row_key


class CountingEncoder:
    """A deterministic stand-in for the VAE encoder: 2x2 average pooling, counting the rows it sees."""

    def __init__(self):
        self.rows = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return torch.nn.functional.avg_pool2d(x, 2)


def test_repeated_rows_come_from_the_cache_and_equal_fresh_encodings():
    enc = CountingEncoder()
    cache = LatentCache(enc, max_bytes=1 << 20)
    x = torch.rand(3, 3, 8, 8)
    first = cache.encode(x)
    assert enc.rows == 3 and cache.misses == 3 and cache.hits == 0
    torch.testing.assert_close(first, torch.nn.functional.avg_pool2d(x, 2), rtol=0, atol=0)
    # two old rows (in another order), one flipped row (a different input): only the flip is encoded
    batch = torch.stack([x[2], x[0].flip(-1)])
    second = cache.encode(batch)
    assert enc.rows == 4 and cache.hits == 1 and cache.misses == 4
    torch.testing.assert_close(second, torch.nn.functional.avg_pool2d(batch, 2), rtol=0, atol=0)
    assert cache.stats()["latent_cache_hit_rate"] == pytest.approx(1 / 5)
    assert len(cache) == 4 and cache.nbytes == 4 * 3 * 4 * 4 * 4


def test_a_full_cache_keeps_serving_and_stops_adding():
    enc = CountingEncoder()
    row_bytes = 3 * 4 * 4 * 4
    cache = LatentCache(enc, max_bytes=2 * row_bytes)
    x = torch.rand(3, 3, 8, 8)
    cache.encode(x)
    assert len(cache) == 2 and cache.nbytes == 2 * row_bytes
    cache.encode(x)
    assert enc.rows == 4 and cache.hits == 2  # rows 0 and 1 served, row 2 encoded again
    with pytest.raises(ValueError, match="max_bytes"):
        LatentCache(enc, max_bytes=0)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        cache.encode(torch.rand(3, 8, 8))


def test_row_key_separates_shape_dtype_and_content():
    x = torch.arange(12, dtype=torch.float32)
    keys = {row_key(x), row_key(x.view(3, 4)), row_key(x.double()), row_key(x + 1e-6)}
    assert len(keys) == 4
    assert row_key(x) == row_key(x.clone())

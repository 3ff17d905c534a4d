"""A content-addressed cache of frozen-VAE latents for fine-tuning (``data.cache_latents_mb``).

Marigold fine-tuning encodes every micro-batch (the image and each target) with the frozen VAE encoder; at small
scale (a small UNet, a dataset seen many times) the encoder costs as much as the UNet's forward and backward
pass. The VAE is frozen and the encoding is the posterior mean, so a VAE input that was seen before has a known
latent. :class:`LatentCache` keys each input row ``[3, H, W]`` by a digest of its bytes (with shape and dtype),
so an augmentation that changes the input (a flip, a colour jitter) is simply a different key: the cache never
returns the latent of another input, whatever the augmentations are.

Rows that are not cached are encoded **one row at a time**, so a row's latent does not depend on the rows it was
batched with (CPU convolution kernels may round differently for different batch sizes): a run with the cache
gives the same numbers whether a row came from the cache or was encoded anew, and resuming a run (which starts
with an empty cache) stays bit-identical. Compared with a run without the cache (whole micro-batches through the
encoder) results differ at float rounding level only.

When the cache holds ``max_bytes`` of latents it stops adding rows (it keeps serving the ones it has).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)


def row_key(row: torch.Tensor) -> bytes:
    """A digest of one tensor's shape, dtype and bytes (the tensor is read on the CPU)."""
    t = row.detach().cpu().contiguous()
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((tuple(t.shape), str(t.dtype))).encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy())  # the tensor's own buffer, not a copy
    return h.digest()


class LatentCache:
    """Latents of VAE inputs seen before.

    Args:
        encode_fn: ``[1, 3, H, W] -> [1, C, h, w]`` (the frozen encoder, scaled posterior mean).
        max_bytes: stop adding rows once the cached latents take this much memory.

    ``hits`` and ``misses`` count rows served from the cache and rows encoded.
    """

    def __init__(self, encode_fn: Callable[[torch.Tensor], torch.Tensor], max_bytes: int):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.encode_fn = encode_fn
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._store: dict[bytes, torch.Tensor] = {}
        self._full_logged = False

    def __len__(self) -> int:
        return len(self._store)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` -> ``[N, C, h, w]`` on the device and dtype of ``images``' encoder output."""
        if images.dim() != 4:
            raise ValueError(f"images must be [N, 3, H, W], got {tuple(images.shape)}")
        rows = []
        for i in range(images.shape[0]):
            key = row_key(images[i])
            cached = self._store.get(key)
            if cached is not None:
                self.hits += 1
                rows.append(cached.to(images.device))
                continue
            self.misses += 1
            latent = self.encode_fn(images[i : i + 1])[0]
            rows.append(latent)
            self._add(key, latent)
        return torch.stack(rows)

    def _add(self, key: bytes, latent: torch.Tensor) -> None:
        size = latent.numel() * latent.element_size()
        if self.nbytes + size > self.max_bytes:
            if not self._full_logged:
                logger.info("latent cache full (%d rows, %.0f MB): new inputs are encoded without caching",
                            len(self._store), self.nbytes / 2**20)
                self._full_logged = True
            return
        self._store[key] = latent.detach().cpu().clone()
        self.nbytes += size

    def stats(self) -> dict[str, float]:
        """``{"latent_cache_hit_rate", "latent_cache_mb"}`` since the cache was created."""
        total = self.hits + self.misses
        return {"latent_cache_hit_rate": self.hits / total if total else 0.0,
                "latent_cache_mb": self.nbytes / 2**20}


__all__ = ["LatentCache", "row_key"]

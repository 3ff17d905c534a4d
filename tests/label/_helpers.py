"""Helpers for the ``marigold label`` tests: argument lists, images, reading shards back, one-thread runs."""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from marigold_toolkit.label.shards import iter_labels, read_manifest

from ..cli._helpers import random_image, save_image


def label_args(inputs, model, out, *, steps=1, ensemble=1, res=64, seed=0, batch_size=1, shard_size=2, extra=()):
    """Argument list for ``marigold label`` with explicit settings (always on the CPU)."""
    inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    return ["label", *inputs, "--model", model, "--output", out, "--steps", steps, "--ensemble", ensemble,
            "--processing-resolution", res, "--seed", seed, "--batch-size", batch_size, "--shard-size", shard_size,
            "--device", "cpu", *extra]


def make_images(folder: Path, n: int = 4, seed: int = 0) -> list[Path]:
    """``n`` small images of different sizes and kinds in ``folder``: RGB PNGs, a JPEG, a grey PNG, a 16-bit PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        h, w = 28 + 5 * (i % 8), 44 - 3 * (i % 8)
        kind = i % 4
        if kind == 0:
            paths.append(save_image(folder / f"img{i:02d}.png", h, w, seed + i))
        elif kind == 1:
            paths.append(save_image(folder / f"img{i:02d}.jpg", h, w, seed + i, quality=90))
        elif kind == 2:
            p = folder / f"img{i:02d}.png"
            Image.fromarray(random_image(h, w, seed + i)[..., 0]).save(p)
            paths.append(p)
        else:
            p = folder / f"img{i:02d}.png"
            Image.fromarray(random_image(h, w, seed + i)[..., 1].astype(np.uint16) * 257).save(p)
            paths.append(p)
    return paths


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def rows_by_key(out: Path) -> dict[str, dict]:
    """Every row of a Parquet job's shards by key (stored bytes, not decoded); fails on a repeated key."""
    rows = list(iter_labels(out, decode=False))
    counts = Counter(r["key"] for r in rows)
    assert all(c == 1 for c in counts.values()), f"keys written twice: {[k for k, c in counts.items() if c > 1]}"
    return {r["key"]: r for r in rows}


def shard_files(out: Path) -> dict[str, tuple[int, str]]:
    """Finished shard files -> (mtime_ns, sha256 of the content)."""
    return {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in sorted(Path(out).glob("part-*"))}


def manifest(out: Path) -> dict:
    return read_manifest(out)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch threads (CPU results change at float-rounding level with the thread count)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)

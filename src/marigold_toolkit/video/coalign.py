"""RollingDepth's global co-alignment: one scale and shift per snippet, so that the snippets agree on every frame.

For snippets ``X`` (per dilation ``[n, L, H, W]``, values in the model's prediction space, shifted so the smallest
is 0) the aligned snippet is ``s * X + t``. Each iteration takes, per frame, the mean of every aligned snippet
frame that covers it (a detached target), and minimises the L1 distance of each snippet frame to its frame's
target, divided by the target's mean magnitude, plus the same in reciprocal space (``1 / max(x, 1e-3)``),
plus the regularisers ``0.1 * max(0, 1 - s)^2`` and ``10 * t^2`` (means over each dilation's snippets). The
distances are averaged over the dense ``[rows, frames, pixels]`` layout the authors use (rows = the snippet
lengths of all dilations summed; uncovered entries count as 0), which fixes their weight against the
regularisers. The optimisation runs on every ``factor``-th pixel after a ``border``-pixel crop; Adam, lr 1e-3,
betas (0.5, 0.9), 2000 iterations. The video is then, per frame, the mean of the aligned snippets at full size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoalignConfig:
    """The co-alignment's settings (defaults: the authors')."""

    factor: int = 10
    border: int = 2
    iterations: int = 2000
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    scale_weight: float = 0.1
    shift_weight: float = 10.0
    reciprocal_weight: float = 1.0
    reciprocal_floor: float = 1e-3


@dataclass
class Coalignment:
    """Per dilation, the fitted ``scales`` and ``shifts`` (``[n]`` each), the global ``offset`` subtracted
    before fitting, and the loss of each iteration."""

    scales: list[np.ndarray]
    shifts: list[np.ndarray]
    offset: float
    losses: list[float]


def _frame_index(indices: Sequence[Sequence[int]]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(indices, dtype=np.int64))


def fit_coalignment(samples: Sequence[np.ndarray], indices: Sequence[Sequence[Sequence[int]]], n_frames: int,
                    offset: float, config: CoalignConfig = CoalignConfig(), device: str | torch.device = "cpu",
                    show_progress: bool = False) -> Coalignment:
    """Fit the scales and shifts on sampled pixels.

    Args:
        samples: per dilation the snippets' sampled pixels ``[n, L, P]`` (e.g. :func:`sample_pixels`), already
            shifted by ``-offset``.
        indices: per dilation the frame indices ``[n, L]`` of each snippet.
        n_frames: frames in the video (every one covered by some snippet).
        offset: the global shift already subtracted (kept in the result for :func:`merge_snippets`).
    """
    dev = torch.device(device)
    xs = [torch.as_tensor(np.asarray(x, dtype=np.float32), device=dev) for x in samples]
    idx = [_frame_index(i).to(dev) for i in indices]
    for x, i in zip(xs, idx):
        if x.shape[:2] != i.shape:
            raise ValueError(f"snippet samples {tuple(x.shape)} do not match their indices {tuple(i.shape)}")
    n_pix = xs[0].shape[-1]
    counts = torch.zeros(n_frames, device=dev)
    for i in idx:
        counts.index_add_(0, i.reshape(-1), torch.ones(i.numel(), device=dev))
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten()[:5].tolist()
        raise ValueError(f"frames {missing} are covered by no snippet")
    rows = sum(i.shape[1] for i in idx)
    denom = float(rows * n_frames * n_pix)
    scales = [torch.ones(x.shape[0], 1, 1, device=dev, requires_grad=True) for x in xs]
    shifts = [torch.zeros(x.shape[0], 1, 1, device=dev, requires_grad=True) for x in xs]
    opt = torch.optim.Adam(scales + shifts, lr=config.lr, betas=config.betas)
    losses = []

    def per_frame_mean(values: list[torch.Tensor]) -> torch.Tensor:
        total = torch.zeros(n_frames, n_pix, device=dev)
        for v, i in zip(values, idx):
            total.index_add_(0, i.reshape(-1), v.reshape(-1, n_pix))
        return total / counts[:, None]

    for _ in tqdm(range(config.iterations), desc="co-alignment", disable=not show_progress, leave=False):
        opt.zero_grad()
        aligned = [x * s + t for x, s, t in zip(xs, scales, shifts)]
        recip = [a.clamp_min(config.reciprocal_floor).reciprocal() for a in aligned]
        with torch.no_grad():
            target, target_r = per_frame_mean(aligned), per_frame_mean(recip)
            norm, norm_r = target.abs().mean(-1), target_r.abs().mean(-1)
        loss = sum(((a - target[i]).abs() / norm[i][..., None]).sum() for a, i in zip(aligned, idx)) / denom
        loss_r = sum(((r - target_r[i]).abs() / norm_r[i][..., None]).sum() for r, i in zip(recip, idx)) / denom
        reg = sum(config.scale_weight * (1 - s).clamp_min(0).pow(2).mean() + config.shift_weight * t.pow(2).mean()
                  for s, t in zip(scales, shifts))
        total = loss + config.reciprocal_weight * loss_r + reg
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    return Coalignment([s.detach().flatten().cpu().numpy() for s in scales],
                       [t.detach().flatten().cpu().numpy() for t in shifts], float(offset), losses)


def sample_pixels(snippets: np.ndarray, factor: int, border: int) -> np.ndarray:
    """``[n, L, H, W]`` -> ``[n, L, P]``: every ``factor``-th pixel after cropping ``border`` pixels."""
    if snippets.ndim != 4:
        raise ValueError(f"snippets must be [n, L, H, W], got shape {snippets.shape}")
    h, w = snippets.shape[-2:]
    if h <= 2 * border or w <= 2 * border:
        raise ValueError(f"snippets of {w}x{h} are too small for a {border}-pixel border crop")
    cropped = snippets[..., border : h - border : factor, border : w - border : factor]
    return np.ascontiguousarray(cropped, dtype=np.float32).reshape(*snippets.shape[:2], -1)


def merge_snippets(snippets: Sequence[np.ndarray], indices: Sequence[Sequence[Sequence[int]]], fit: Coalignment,
                   n_frames: int, out: np.ndarray | None = None) -> np.ndarray:
    """The video ``[n_frames, H, W]``: per frame the mean of every aligned snippet frame covering it
    (``s * (x - offset) + t``). ``snippets`` may be memory-mapped; ``out`` (e.g. a memory map) receives the
    result frame by frame, so only one frame's sum is in memory."""
    h, w = snippets[0].shape[-2:]
    out = np.zeros((n_frames, h, w), dtype=np.float32) if out is None else out
    cover: list[list[tuple[int, int, int]]] = [[] for _ in range(n_frames)]
    for k, idx in enumerate(indices):
        for j, frames in enumerate(idx):
            for pos, f in enumerate(frames):
                cover[f].append((k, j, pos))
    for f in range(n_frames):
        acc = np.zeros((h, w), dtype=np.float64)
        for k, j, pos in cover[f]:
            acc += fit.scales[k][j] * (np.asarray(snippets[k][j, pos], dtype=np.float64) - fit.offset) \
                + fit.shifts[k][j]
        out[f] = (acc / len(cover[f])).astype(np.float32)
    return out

"""Conversions between numpy arrays and torch tensors, and a quantile without torch's input-size limit.

Functions that accept "array-like" inputs take numpy arrays or torch tensors and hand results back as the kind
they were given (numpy in, numpy out; a tensor comes back on the input's device).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .checks import check_shape

ArrayLike = np.ndarray | torch.Tensor

#: torch.quantile refuses inputs with more elements than this
TORCH_QUANTILE_MAX = 2 ** 24


def is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def to_numpy(x: ArrayLike, dtype: Any = None) -> np.ndarray:
    """numpy view/copy of an array or tensor (tensors are detached and moved to the CPU)."""
    if is_tensor(x):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x if dtype is None else x.astype(dtype, copy=False)


def c_array(x: Any) -> np.ndarray:
    """C-contiguous, writeable numpy array (``torch.from_numpy`` needs both; 0-d stays 0-d)."""
    a = np.asarray(x)
    if not (a.flags.c_contiguous and a.flags.writeable):
        a = a.copy(order="C")
    return a


def to_tensor(x: ArrayLike, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
    """torch tensor of an array or tensor (no copy where possible)."""
    t = x if is_tensor(x) else torch.from_numpy(c_array(x))
    if device is not None:
        t = t.to(device)
    return t if dtype is None else t.to(dtype)


def like(x: ArrayLike, ref: ArrayLike) -> ArrayLike:
    """``x`` as the same kind of object as ``ref`` (numpy array, or tensor on ``ref``'s device)."""
    if is_tensor(ref):
        t = x if is_tensor(x) else torch.from_numpy(c_array(x))
        return t.to(ref.device)
    return x.detach().cpu().numpy() if is_tensor(x) else x


def shape_of(x: ArrayLike) -> tuple[int, ...]:
    return tuple(x.shape) if is_tensor(x) else np.shape(x)


def squeeze_to_2d(x: ArrayLike, name: str) -> ArrayLike:
    """``[..., H, W]`` with only singleton leading dims -> ``[H, W]``.

    >>> squeeze_to_2d(np.zeros((1, 1, 2, 3)), "depth").shape
    (2, 3)
    """
    check_shape(x, "* H W", name)
    if any(s != 1 for s in x.shape[:-2]):
        raise ValueError(f"{name}: expected an [H, W] map (optionally with leading singleton dims), "
                         f"got shape {tuple(x.shape)}")
    return x.reshape(x.shape[-2:])


def quantile(values: torch.Tensor, q: torch.Tensor | float) -> torch.Tensor:
    """``torch.quantile(values.flatten(), q)`` (linear interpolation), also for inputs larger than torch allows.

    >>> float(quantile(torch.tensor([0.0, 1.0, 2.0, 3.0]), 0.5))
    1.5
    """
    values = values.flatten()
    q = torch.as_tensor(q, dtype=values.dtype, device=values.device)
    if values.numel() <= TORCH_QUANTILE_MAX:
        return torch.quantile(values, q)
    srt = values.sort().values
    pos = q * (values.numel() - 1)
    lo = pos.floor().long()
    hi = torch.clamp(lo + 1, max=values.numel() - 1)
    return torch.lerp(srt[lo], srt[hi], pos - lo)

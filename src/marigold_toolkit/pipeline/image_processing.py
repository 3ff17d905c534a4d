"""Tensor image geometry for inference: resizing to the processing resolution, padding to the latent stride.

All functions take and return float tensors ``[N, C, H, W]``. Conventions match diffusers' Marigold pipelines:
the long edge is scaled to the processing resolution and the short edge floored; down-sizing of the input uses
antialiasing (bilinear/bicubic), the resize of predictions back to the input size does not; padding is replicate
padding at the right and bottom.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

RESAMPLE_METHODS = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")


def _check_image(image: torch.Tensor) -> None:
    if not torch.is_tensor(image) or not torch.is_floating_point(image) or image.dim() != 4:
        raise ValueError(f"expected a float tensor [N,C,H,W], got {getattr(image, 'shape', type(image))}")


def resize(image: torch.Tensor, size: tuple[int, int], mode: str = "bilinear", antialias: bool = False) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` to ``size = (h, w)``; antialias applies to bilinear/bicubic only."""
    _check_image(image)
    if mode not in RESAMPLE_METHODS:
        raise ValueError(f"unknown resampling {mode!r}; use one of {RESAMPLE_METHODS}")
    return F.interpolate(image, tuple(size), mode=mode, antialias=antialias and mode in ("bilinear", "bicubic"))


def processing_size(height: int, width: int, processing_resolution: int) -> tuple[int, int]:
    """Size at which an ``height x width`` image is processed: long edge = ``processing_resolution`` (0: native).

    >>> processing_size(40, 150, 72)
    (19, 72)
    >>> processing_size(480, 640, 0)
    (480, 640)
    """
    if processing_resolution < 0:
        raise ValueError("processing_resolution must be >= 0 (0 = native resolution)")
    if processing_resolution == 0:
        return height, width
    long = max(height, width)
    h, w = height * processing_resolution // long, width * processing_resolution // long
    if h == 0 or w == 0:
        raise ValueError(f"extreme aspect ratio {width}x{height}: cannot process at {processing_resolution}")
    return h, w


def resize_to_max_edge(image: torch.Tensor, max_edge: int, mode: str = "bilinear") -> torch.Tensor:
    """Scale so that the long edge equals ``max_edge`` (antialiased for bilinear/bicubic)."""
    _check_image(image)
    return resize(image, processing_size(image.shape[-2], image.shape[-1], max_edge), mode, antialias=True)


def pad_to_multiple(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad right/bottom to a multiple of ``multiple``; returns the image and ``(pad_h, pad_w)``.

    >>> x, p = pad_to_multiple(torch.zeros(1, 3, 5, 9), 8)
    >>> tuple(x.shape), p
    ((1, 3, 8, 16), (3, 7))
    """
    _check_image(image)
    h, w = image.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return F.pad(image, (0, pw, 0, ph), mode="replicate"), (ph, pw)


def unpad(image: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`pad_to_multiple`."""
    ph, pw = padding
    return image[..., : image.shape[-2] - ph, : image.shape[-1] - pw]


def to_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """An RGB or grey image as ``[1, 3, H, W]`` float32 in [0, 1].

    Accepts ``HxW``, ``HxWx1``, ``HxWx3`` arrays (uint8 / uint16 scaled by their maximum, floats taken as [0, 1])
    or a ``[3, H, W]`` / ``[1, 3, H, W]`` float tensor in [0, 1].
    """
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3):
            raise ValueError(f"expected an HxW, HxWx1 or HxWx3 image, got shape {image.shape}")
        if np.issubdtype(arr.dtype, np.unsignedinteger):
            scale = float(np.iinfo(arr.dtype).max)
            arr = arr.astype(np.float32)
        elif np.issubdtype(arr.dtype, np.floating):
            scale = None
            arr = arr.astype(np.float32, copy=False)
        else:
            raise ValueError(f"unsupported image dtype {arr.dtype}")
        # [1, C, H, W] view of [1, H, W, C] memory (channels-last), exactly like diffusers' MarigoldImageProcessor:
        # convolution results depend at float precision on the memory format, so this keeps parity exact.
        t = torch.from_numpy(arr[None].transpose(0, 3, 1, 2))
        if scale is not None:
            t = t / scale
    elif torch.is_tensor(image):
        t = image
        if t.dim() == 3:
            t = t[None]
        if t.dim() != 4 or t.shape[0] != 1:
            raise ValueError(f"expected a [3,H,W] or [1,3,H,W] tensor, got {tuple(image.shape)}")
        if t.dtype == torch.uint8:
            t = t.float() / 255
        t = t.float()
    else:
        raise TypeError(f"unsupported image type {type(image).__name__}")
    if t.shape[1] == 1:
        t = t.repeat(1, 3, 1, 1)
    if t.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {t.shape[1]}")
    lo, hi = float(t.min()), float(t.max())
    if lo < 0.0 or hi > 1.0 or not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError(f"image values must lie in [0, 1], got [{lo:g}, {hi:g}]")
    return t

"""Image geometry: resizing to the processing resolution, padding to the latent stride, array <-> tensor
layouts, and the raster helpers of the training datasets.

The inference functions take and return float tensors ``[N, C, H, W]``. Conventions match diffusers' Marigold
pipelines: the long edge is scaled to the processing resolution and the short edge floored; down-sizing of the
input uses antialiasing (bilinear/bicubic), the resize of predictions back to the input size does not; padding is
replicate padding at the right and bottom.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_shape, shape_matches

RESAMPLE_METHODS = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")


def _check_image(image: torch.Tensor) -> None:
    if not torch.is_tensor(image) or not torch.is_floating_point(image):
        raise ValueError(f"image: expected a float tensor [N, C, H, W], got {type(image).__name__}"
                         f"{'' if not torch.is_tensor(image) else ' of ' + str(image.dtype)}")
    check_shape(image, "N C H W", "image")


def resize(image: torch.Tensor, size: tuple[int, int], mode: str = "bilinear", antialias: bool = False) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` to ``size = (h, w)``; antialias applies to bilinear/bicubic only. Half-precision
    input is resized in float32 and cast back (PyTorch's CPU kernels have no half-precision antialiasing)."""
    _check_image(image)
    if mode not in RESAMPLE_METHODS:
        raise ValueError(f"unknown resampling {mode!r}; use one of {RESAMPLE_METHODS}")
    x = image.float() if image.dtype in (torch.float16, torch.bfloat16) else image
    out = F.interpolate(x, tuple(size), mode=mode, antialias=antialias and mode in ("bilinear", "bicubic"))
    return out.to(image.dtype)


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
        if not shape_matches(arr, "H W 1|3"):
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
        if not shape_matches(t, "1 C H W"):
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


def resize_prediction(pred: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an ``[H, W]`` or ``[H, W, C]`` float array to ``size`` (bilinear, antialiased), as the authors'
    evaluation resizes a prediction to its ground truth; the same size returns the input.

    >>> resize_prediction(np.ones((4, 6, 3), np.float32), (2, 3)).shape
    (2, 3, 3)
    """
    pred = np.asarray(pred, dtype=np.float32)
    if pred.shape[:2] == tuple(size):
        return pred
    t = torch.from_numpy(np.ascontiguousarray(pred))
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    t = F.interpolate(t, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    out = t[0, 0] if pred.ndim == 2 else t[0].permute(1, 2, 0)
    return out.contiguous().numpy()


# ----------------------------------------------------------------------------------------------------------
# raster helpers of the training datasets ([C, H, W] tensors)

#: interpolation modes accepted by :func:`resize_raster`
RESIZE_MODES = ("nearest-exact", "bilinear")


def to_chw(arr: np.ndarray) -> torch.Tensor:
    """``[H, W]`` or ``[H, W, C]`` array -> ``float32 [C, H, W]`` tensor (a copy).

    >>> tuple(to_chw(np.zeros((4, 5, 3))).shape)
    (3, 4, 5)
    """
    a = np.asarray(arr)
    a = a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def rgb_uint8_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` uint8 -> ``float32 [3, H, W]`` in [-1, 1] (``x / 255 * 2 - 1``)."""
    return to_chw(rgb) / 255.0 * 2.0 - 1.0


def resize_raster(t: torch.Tensor, size: tuple[int, int] | None, mode: str) -> torch.Tensor:
    """Resize a ``[C, H, W]`` tensor to ``size = (H, W)``.

    ``"bilinear"`` is antialiased with ``align_corners=False`` (torchvision's ``Resize`` on tensors, as the
    authors use it); ``"nearest-exact"`` is torchvision's ``NEAREST_EXACT``. Bool tensors are always resized
    with nearest-exact and stay bool. ``size=None`` or the current size returns the input.
    """
    if size is None or tuple(t.shape[-2:]) == tuple(size):
        return t
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; use one of {RESIZE_MODES}")
    if t.dtype == torch.bool:
        out = F.interpolate(t[None].float(), size=tuple(size), mode="nearest-exact")[0]
        return out > 0.5
    x = t[None].float()
    if mode == "bilinear":
        out = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    else:
        out = F.interpolate(x, size=tuple(size), mode="nearest-exact")
    return out[0].to(t.dtype)


def hflip(sample: dict[str, Any], negate_x: tuple[str, ...] = ()) -> dict[str, Any]:
    """Flip every tensor of ``sample`` along the width; the entries named in ``negate_x`` hold vectors whose
    channel 0 is an x coordinate, which the flip negates (surface normals)."""
    out = {k: (v.flip(-1) if torch.is_tensor(v) else v) for k, v in sample.items()}
    for key in negate_x:
        if key in out:
            n = out[key].clone()
            n[0] = -n[0]
            out[key] = n
    return out

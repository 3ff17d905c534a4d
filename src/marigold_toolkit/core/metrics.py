"""Task-agnostic metric plumbing: the empty-mask error, image layouts, PSNR, SSIM, LPIPS, a least-squares
scale, and averaging over images.

Pure functions on one image at a time; inputs may be numpy arrays or torch tensors (kept on their device), and
scalar metrics come back as python floats. Reproduces torchmetrics' PSNR/SSIM/LPIPS semantics and the Marigold
authors' masking conventions; the per-task metrics (depth, normals, intrinsics) live with their task in
:mod:`marigold_toolkit.tasks`.

Image layouts: ``[C, H, W]`` or ``[H, W, C]`` (optionally with a leading batch dimension of 1; ``C`` is 3, or 1
for the grey-level metrics). The layout is inferred from which end has 3 (or 1) channels; pass
``channels_last=True/False`` when both ends do (e.g. a ``3 x W x 3`` image). Results come back in the layout and
kind (numpy/tensor) they came in.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .arrays import ArrayLike, is_tensor, like, to_tensor

logger = logging.getLogger(__name__)

__all__ = [
    "EmptyMaskError",
    "align_scale_tensor",
    "MetricUnavailable",
    "align_scale",
    "image_pair",
    "lpips",
    "lpips_available",
    "lpips_enabled",
    "mean_over_images",
    "psnr",
    "ssim",
]


class EmptyMaskError(ValueError):
    """The mask selects no pixel, so a fit or a metric is undefined.

    The evaluation runner counts such images and leaves them out of the averages (the authors' code would produce
    NaN or crash instead).
    """


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed in this environment (e.g. LPIPS without its package or local weights)."""


# ================================================================================================================
# image layouts
# ================================================================================================================


@dataclass(frozen=True)
class _Layout:
    shape: tuple[int, ...]  # the original shape
    channels_last: bool
    gray2d: bool  # the input was a plain [H, W] map


def image_to_chw(x: ArrayLike, name: str, channels_last: bool | None, device: Any,
               channels: tuple[int, ...] = (1, 3)) -> tuple[torch.Tensor, _Layout]:
    """float32 ``[C, H, W]`` tensor of an image in any accepted layout, and how to undo it."""
    t = to_tensor(x, None, device)
    if not t.is_floating_point():
        t = t.float()
    t = t.to(torch.float32)
    shape = tuple(t.shape)
    if t.dim() == 2 and 1 in channels:
        return t.unsqueeze(0), _Layout(shape, False, True)
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"{name}: expected [C, H, W] or [H, W, C] (optionally [1, ...]), got shape {shape}")
    first, last = t.shape[0] in channels, t.shape[-1] in channels
    if channels_last is None:
        if first == last:
            why = "ambiguous: pass channels_last=" if first else "no dimension has a valid channel count"
            raise ValueError(f"{name}: cannot tell the channel dimension of shape {shape} ({why}; "
                             f"channels must be one of {channels})")
        channels_last = last
    if channels_last:
        if not last:
            raise ValueError(f"{name}: shape {shape} has no valid channel count {channels} in the last dimension")
        t = t.permute(2, 0, 1)
    elif not first:
        raise ValueError(f"{name}: shape {shape} has no valid channel count {channels} in the first dimension")
    return t, _Layout(shape, bool(channels_last), False)


def image_restore(t: torch.Tensor, layout: _Layout, ref: ArrayLike) -> ArrayLike:
    """Inverse of :func:`image_to_chw`: back to the original layout, shape and kind."""
    if layout.channels_last and not layout.gray2d:
        t = t.permute(1, 2, 0)
    return like(t.contiguous().reshape(layout.shape), ref)


def image_mask(mask: ArrayLike | None, layout: _Layout, chw: tuple[int, int, int], device: Any) -> torch.Tensor:
    """bool ``[C, H, W]`` mask from ``[H, W]``, ``[1, H, W]``, ``[H, W, 1]`` or the image's own layout."""
    c, h, w = chw
    if mask is None:
        return torch.ones((c, h, w), dtype=torch.bool, device=device)
    m = to_tensor(mask, torch.bool, device)
    shape = tuple(m.shape)
    if m.dim() == 4 and m.shape[0] == 1:
        m = m[0]
    if m.dim() == 2 and tuple(m.shape) == (h, w):
        return m.expand(c, h, w)
    if m.dim() == 3:
        if layout.channels_last and tuple(m.shape) == (h, w, c):
            return m.permute(2, 0, 1)
        if not layout.channels_last and tuple(m.shape) == (c, h, w):
            return m
        if tuple(m.shape) == (1, h, w):
            return m.expand(c, h, w)
        if tuple(m.shape) == (h, w, 1):
            return m.permute(2, 0, 1).expand(c, h, w)
    raise ValueError(f"mask of shape {shape} does not match an image of {c} channel(s) and size {h}x{w}")


def image_pair(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None, channels_last: bool | None,
                channels: tuple[int, ...] = (1, 3)):
    device = pred.device if is_tensor(pred) else (gt.device if is_tensor(gt) else None)
    p, lp = image_to_chw(pred, "pred", channels_last, device, channels)
    g, lg = image_to_chw(gt, "gt", channels_last if channels_last is not None else lp.channels_last, device, channels)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch: pred {lp.shape} vs gt {lg.shape}")
    m = image_mask(mask, lp, tuple(p.shape), device) if mask is not None else None
    return p, g, m, lp, lg


# ================================================================================================================
# PSNR, SSIM
# ================================================================================================================


def _psnr_chw(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None, data_range: float) -> float:
    if m is not None:
        p, g = p[m], g[m]
    if g.numel() == 0:
        raise EmptyMaskError("the mask selects no pixel")
    sse = torch.sum(torch.pow(p - g, 2))
    n = torch.tensor(g.numel(), device=g.device)
    dr = torch.tensor(float(data_range), device=g.device)
    val = (2 * torch.log(dr) - torch.log(sse / n)) * (10 / torch.log(torch.tensor(10.0, device=g.device)))
    return float(val)


def psnr(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    data_range: float = 1.0,
    *,
    channels_last: bool | None = None,
) -> float:
    r"""Peak signal-to-noise ratio :math:`10 \log_{10}(R^2 / \mathrm{MSE})` in dB, torchmetrics'
    ``PeakSignalNoiseRatio(data_range=R)`` semantics (float32, MSE over all channels and pixels, no clamping).

    With a mask only the masked values enter the MSE (the authors index ``pred[mask]``, ``gt[mask]``).
    Identical images give ``inf``.

    Args:
        pred, gt: images of the same shape.
        mask: bool ``[H, W]`` (all channels) or per channel in the image's layout; ``None`` for all pixels.
        data_range: ``R``.
        channels_last: layout (``None``: inferred).

    Raises:
        EmptyMaskError: the mask selects no pixel.

    Shape:
        - pred, gt: :math:`(C, H, W)`, :math:`(H, W, C)` (C = 1 or 3), :math:`(H, W)`, optionally with a leading 1.

    Example:
        >>> round(psnr(np.array([[0.5, 0.5]]), np.array([[0.5, 0.6]])), 4)  # MSE = 0.01 / 2: 10 log10(200)
        23.0103
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    p, g, m, _, _ = image_pair(pred, gt, mask, channels_last)
    return _psnr_chw(p, g, m, data_range)


def _gaussian_1d(size: int, sigma: float, dtype: torch.dtype, device: Any) -> torch.Tensor:
    dist = torch.arange(start=(1 - size) / 2, end=(1 + size) / 2, step=1, dtype=dtype, device=device)
    gauss = torch.exp(-torch.pow(dist / sigma, 2) / 2)
    return (gauss / gauss.sum()).unsqueeze(dim=0)  # [1, size]


_SSIM_SIGMA = 1.5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


def _ssim_chw(p: torch.Tensor, g: torch.Tensor, data_range: float, crop_border: bool) -> float:
    p, g = p.unsqueeze(0), g.unsqueeze(0)  # [1, C, H, W]
    c = p.shape[1]
    size = int(3.5 * _SSIM_SIGMA + 0.5) * 2 + 1  # 11, torchmetrics' Gaussian kernel size for sigma 1.5
    pad = (size - 1) // 2
    if p.shape[-1] <= pad or p.shape[-2] <= pad:
        raise ValueError(f"SSIM needs images larger than {pad} pixels per side (reflect padding), "
                         f"got {tuple(p.shape[-2:])}")
    c1 = pow(_SSIM_K1 * data_range, 2)
    c2 = pow(_SSIM_K2 * data_range, 2)
    p = F.pad(p, (pad, pad, pad, pad), mode="reflect")
    g = F.pad(g, (pad, pad, pad, pad), mode="reflect")
    k1d = _gaussian_1d(size, _SSIM_SIGMA, p.dtype, p.device)
    kernel = torch.matmul(k1d.t(), k1d).expand(c, 1, size, size)
    out = F.conv2d(torch.cat((p, g, p * p, g * g, p * g)), kernel, groups=c)
    mu_p, mu_g, e_pp, e_gg, e_pg = out.split(1)
    mu_p_sq, mu_g_sq, mu_pg = mu_p.pow(2), mu_g.pow(2), mu_p * mu_g
    sigma_p_sq = torch.clamp(e_pp - mu_p_sq, min=0.0)
    sigma_g_sq = torch.clamp(e_gg - mu_g_sq, min=0.0)
    sigma_pg = e_pg - mu_pg
    upper = 2 * sigma_pg + c2
    lower = sigma_p_sq + sigma_g_sq + c2
    ssim_map = ((2 * mu_pg + c1) * upper) / ((mu_p_sq + mu_g_sq + c1) * lower)
    if crop_border:
        ssim_map = ssim_map[..., pad:-pad, pad:-pad]
    return float(ssim_map.reshape(1, -1).mean(-1))


def ssim(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    data_range: float = 1.0,
    *,
    crop_border: bool = False,
    channels_last: bool | None = None,
) -> float:
    """Structural similarity, a re-implementation of torchmetrics' ``StructuralSimilarityIndexMeasure`` defaults.

    Gaussian window 11x11 with sigma 1.5, ``k1 = 0.01``, ``k2 = 0.03``, ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``,
    reflect padding by 5, per-channel (grouped) convolution, variances clamped at 0, mean over the SSIM map of all
    channels; float32. With a mask, the invalid pixels of *both* images are set to 0 first (the authors' choice);
    an empty mask raises :class:`EmptyMaskError`.

    Versions: torchmetrics <= 1.4.1 also cropped the 5-pixel border off the SSIM map before the mean; 1.4.2 and
    later (this project's pinned oracle) average the whole map. The authors do not pin torchmetrics;
    ``crop_border=True`` reproduces the older behaviour.

    Args:
        pred, gt: images of the same shape, values nominally in ``[0, data_range]``.
        mask: bool ``[H, W]`` or per channel in the image's layout; ``None``: no masking.
        data_range: ``R``.
        crop_border: drop the 5-pixel border of the SSIM map (torchmetrics <= 1.4.1).
        channels_last: layout (``None``: inferred).

    Raises:
        EmptyMaskError: the mask selects no pixel.
        ValueError: an image side is 5 pixels or less (reflect padding needs more).

    Shape:
        - pred, gt: :math:`(C, H, W)`, :math:`(H, W, C)` (C = 1 or 3), :math:`(H, W)`, optionally with a leading 1.

    Example:
        >>> img = np.linspace(0, 1, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
        >>> round(ssim(img, img), 6)
        1.0
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    p, g, m, _, _ = image_pair(pred, gt, mask, channels_last)
    if m is not None:
        if not bool(m.any()):
            raise EmptyMaskError("the mask selects no pixel")
        p, g = p.masked_fill(~m, 0), g.masked_fill(~m, 0)
    return _ssim_chw(p, g, data_range, crop_border)


# ---------------------------------------------------------------------------------------------------------------- LPIPS

_ALEXNET_CHECKPOINT = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet_Weights.IMAGENET1K_V1 file name


def lpips_unavailable_reason() -> str | None:
    """Why LPIPS cannot run here without a download, or ``None`` when it can."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "the 'lpips' package is not installed"
    try:
        tv_spec = importlib.util.find_spec("torchvision")
    except (ImportError, ValueError):
        tv_spec = None
    if tv_spec is None:
        return "torchvision (needed by the 'lpips' package) is not installed"
    locations = list(spec.submodule_search_locations or [])
    pkg_dir = Path(locations[0]) if locations else Path(str(spec.origin)).parent
    linear = pkg_dir / "weights" / "v0.1" / "alex.pth"
    if not linear.is_file():
        return f"the LPIPS linear-layer weights are missing ({linear})"
    backbone = Path(torch.hub.get_dir()) / "checkpoints" / _ALEXNET_CHECKPOINT
    if not backbone.is_file():
        return (f"the AlexNet backbone weights are not in the local torch hub cache ({backbone}); "
                "they are never downloaded by this toolkit")
    return None


def lpips_available() -> bool:
    """Whether :func:`lpips` can run: the ``lpips`` package (and torchvision) installed and both weight files
    (LPIPS linear layers, torchvision AlexNet) present locally. Nothing is downloaded.

    Example:
        >>> isinstance(lpips_available(), bool)
        True
    """
    return lpips_unavailable_reason() is None


_LPIPS_NOTICE: list[bool] = []


def lpips_enabled() -> bool:
    """Whether evaluations report LPIPS: when :func:`lpips_available`; otherwise one clear log line, once."""
    if lpips_available():
        return True
    if not _LPIPS_NOTICE:
        logger.warning("LPIPS skipped: %s (install `lpips` and its weights locally to report it)",
                       lpips_unavailable_reason())
        _LPIPS_NOTICE.append(True)
    return False


@functools.lru_cache(maxsize=4)
def _load_lpips_model(device: str) -> Any:
    import lpips as lpips_pkg

    model = lpips_pkg.LPIPS(net="alex", verbose=False).eval().to(device)
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def lpips(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    channels_last: bool | None = None,
) -> float:
    """LPIPS (AlexNet) distance like torchmetrics' ``LearnedPerceptualImagePatchSimilarity(normalize=True)``.

    Inputs are RGB in [0, 1] (mapped to [-1, 1] by ``normalize``); with a mask the invalid pixels of both images
    are set to 0 first, as the authors do for SSIM and LPIPS.

    Raises:
        MetricUnavailable: the ``lpips`` package or its weights are not available locally (see
            :func:`lpips_available`); nothing is ever downloaded.
        ValueError: values outside [0, 1].
        EmptyMaskError: the mask selects no pixel.
    """
    reason = lpips_unavailable_reason()
    if reason is not None:
        raise MetricUnavailable(f"LPIPS is unavailable: {reason}. Install 'lpips' and place the weights locally "
                                "to enable it.")
    p, g, m, _, _ = image_pair(pred, gt, mask, channels_last, channels=(3,))
    if m is not None:
        if not bool(m.any()):
            raise EmptyMaskError("the mask selects no pixel")
        p, g = p.masked_fill(~m, 0), g.masked_fill(~m, 0)
    for name, t in (("pred", p), ("gt", g)):
        if not (bool(t.min() >= 0) and bool(t.max() <= 1)):
            raise ValueError(f"LPIPS with normalize=True expects {name} values in [0, 1]")
    model = _load_lpips_model(str(p.device))
    with torch.no_grad():
        return float(model(p.unsqueeze(0), g.unsqueeze(0), normalize=True).reshape(()))


# ================================================================================================================
# least-squares scale
# ================================================================================================================


def align_scale(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> tuple[ArrayLike, float]:
    r"""Least-squares scale (no shift) of ``pred`` to ``gt``: :math:`\min_s \sum_{i \in \text{mask}} (s p_i - g_i)^2`.

    Computed like the authors' ``compute_alignment_scale`` (IID shading and residual): ``torch.linalg.lstsq`` in
    float32 of the masked values, in row-major order, as one column. Also useful for scale-invariant (metric up to
    scale) depth models.

    Args:
        pred: prediction, any shape.
        gt: target, same shape as ``pred``.
        mask: bool, ``pred``'s shape or broadcastable to it (e.g. ``[H, W]`` for a ``[3, H, W]`` image), or
            ``None`` for all elements.

    Returns:
        ``(aligned, scale)``: float32 ``pred * scale`` with ``pred``'s shape and kind, and the scale as a float.

    Raises:
        EmptyMaskError: the mask selects no element.
        ValueError: shapes differ or the mask does not broadcast.

    Example:
        >>> pred = np.array([1.0, 2.0, 5.0], dtype=np.float32)
        >>> gt = np.array([2.0, 5.0, -1.0], dtype=np.float32)
        >>> aligned, s = align_scale(pred, gt, np.array([True, True, False]))  # s = (1*2 + 2*5) / (1 + 4)
        >>> round(s, 5)
        2.4
        >>> aligned.astype(float).round(4).tolist()
        [2.4, 4.8, 12.0]
    """
    device = pred.device if is_tensor(pred) else None
    p = to_tensor(pred, torch.float32, device)
    g = to_tensor(gt, torch.float32, device)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch: pred {tuple(p.shape)} vs gt {tuple(g.shape)}")
    aligned, scale = align_scale_tensor(p, g, None if mask is None else to_tensor(mask, torch.bool, device))
    return like(aligned, pred), scale


def align_scale_tensor(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None) -> tuple[torch.Tensor, float]:
    if m is not None:
        try:
            m = torch.broadcast_to(m, p.shape)
        except RuntimeError as e:
            raise ValueError(f"mask of shape {tuple(m.shape)} does not broadcast to {tuple(p.shape)}") from e
        pm, gm = p[m], g[m]
    else:
        pm, gm = p.reshape(-1), g.reshape(-1)
    if pm.numel() == 0:
        raise EmptyMaskError("the scale-alignment mask selects no element")
    x = torch.linalg.lstsq(pm.reshape(-1, 1), gm.reshape(-1, 1)).solution  # [1, 1]
    scale = x.reshape(())
    return scale * p, float(scale)


# ================================================================================================================
# averaging over images
# ================================================================================================================


def _is_number(v: Any) -> bool:
    if isinstance(v, bool) or v is None:
        return False
    if isinstance(v, (int, float, np.number)):
        return True
    return (is_tensor(v) and v.numel() == 1) or (isinstance(v, np.ndarray) and v.size == 1)


def mean_over_images(per_image: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Dataset value of each metric: the arithmetic mean of its per-image values (the authors' ``MetricTracker``
    with ``n=1``: every image weighs the same, pixels are not pooled).

    A key is averaged over the images that have a numeric value for it (non-numeric entries such as a file
    name are skipped); keys keep their order of first appearance. Non-finite values propagate (e.g. an infinite
    PSNR of an exact prediction makes the mean infinite, as it would for the authors).

    Raises:
        ValueError: no image.

    Example:
        >>> mean_over_images([{"stem": "a", "abs_rel": 0.1, "delta1": 1.0}, {"stem": "b", "abs_rel": 0.3}])
        {'abs_rel': 0.2, 'delta1': 1.0}
    """
    rows = list(per_image)
    if not rows:
        raise ValueError("mean_over_images needs at least one image")
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in rows:
        for k, v in row.items():
            if not _is_number(v):
                continue
            totals[k] = totals.get(k, 0.0) + float(v)
            counts[k] = counts.get(k, 0) + 1
    return {k: totals[k] / counts[k] for k in totals}



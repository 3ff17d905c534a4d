"""Image augmentations of the training datasets, driven only by a ``numpy.random.Generator`` (no global random
state): the horizontal-flip draw, Gaussian and motion blur, and torchvision-``ColorJitter``-style colour
adjustments, implemented with torch and numpy (torchvision is not a dependency). Which task uses which, with what
settings, is the task's business (e.g. :mod:`marigold_toolkit.tasks.normals.training`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
#: the authors' horizontal-flip probability (every task)
LR_FLIP_P = 0.5


def draw_flip(rng: np.random.Generator, p: float = LR_FLIP_P) -> bool:
    """One uniform draw: flip when it is below ``p``."""
    return bool(rng.random() < p)


# ----------------------------------------------------------------------------------------------------------
# blur


def _pad_mode(img: torch.Tensor, pad: int) -> str:
    return "reflect" if pad < min(img.shape[-2:]) else "replicate"


def gaussian_blur(img: torch.Tensor, sigma: float, kernel_size: int = 33) -> torch.Tensor:
    """Separable Gaussian blur of a ``[C, H, W]`` float image (reflect padding; replicate for tiny images).

    The kernel samples ``exp(-x^2 / (2 sigma^2))`` at the integer offsets ``-(k-1)/2 .. (k-1)/2``, normalised.
    ``sigma`` is floored at 1e-3 (sigma -> 0 is the identity).
    """
    sigma = max(float(sigma), 1e-3)
    half = (kernel_size - 1) / 2
    x = torch.linspace(-half, half, kernel_size, dtype=torch.float32)
    k1 = torch.exp(-0.5 * (x / sigma) ** 2)
    k1 = k1 / k1.sum()
    c = img.shape[0]
    pad = kernel_size // 2
    out = img[None].float()
    out = F.pad(out, (pad, pad, pad, pad), mode=_pad_mode(img, pad))
    out = F.conv2d(out, k1.view(1, 1, 1, -1).expand(c, 1, 1, kernel_size).contiguous(), groups=c)
    out = F.conv2d(out, k1.view(1, 1, -1, 1).expand(c, 1, kernel_size, 1).contiguous(), groups=c)
    return out[0]


def motion_blur_kernel(size: int, angle_deg: float) -> torch.Tensor:
    """A ``[size, size]`` line kernel: the middle row set to 1, rotated by ``angle_deg`` about the centre with
    nearest sampling (outside = 0), then normalised to sum 1."""
    c = (size - 1) / 2.0
    theta = math.radians(angle_deg)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    # inverse-rotate every output pixel into the unrotated kernel
    dx, dy = xs - c, ys - c
    sx = math.cos(theta) * dx + math.sin(theta) * dy + c
    sy = -math.sin(theta) * dx + math.cos(theta) * dy + c
    sx, sy = torch.round(sx), torch.round(sy)
    inside = (sx >= 0) & (sx <= size - 1) & (sy >= 0) & (sy <= size - 1)
    kernel = (inside & (sy == size // 2)).float()
    return kernel / kernel.sum()


def motion_blur(img: torch.Tensor, size: int, angle_deg: float) -> torch.Tensor:
    """Depth-wise convolution of a ``[C, H, W]`` float image with :func:`motion_blur_kernel` (zero padding,
    as the authors)."""
    k = motion_blur_kernel(size, angle_deg)
    h, w = img.shape[-2:]
    pad = size // 2
    padded = F.pad(img.float(), (pad, pad, pad, pad))
    # the kernel has at most `size` taps: a sum of shifted copies is the same cross-correlation as
    # conv2d(padding=size // 2), and far faster than a dense depth-wise convolution on the CPU
    out = torch.zeros(img.shape, dtype=torch.float32)
    for i, j in torch.nonzero(k).tolist():
        out += k[i, j] * padded[..., i: i + h, j: j + w]
    return out


# ----------------------------------------------------------------------------------------------------------
# colour jitter (torchvision ColorJitter semantics on float images in [0, 1])


def _gray(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img[0], img[1], img[2]
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b)[None]


def _blend(img: torch.Tensor, other: torch.Tensor, ratio: float) -> torch.Tensor:
    return (ratio * img + (1.0 - ratio) * other).clamp(0.0, 1.0)


def adjust_brightness(img: torch.Tensor, factor: float) -> torch.Tensor:
    return _blend(img, torch.zeros_like(img), factor)


def adjust_contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    return _blend(img, _gray(img).mean(), factor)


def adjust_saturation(img: torch.Tensor, factor: float) -> torch.Tensor:
    return _blend(img, _gray(img), factor)


def rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
    """``[3, H, W]`` RGB in [0, 1] -> HSV with H in [0, 1)."""
    r, g, b = img[0], img[1], img[2]
    maxc, _ = img.max(dim=0)
    minc, _ = img.min(dim=0)
    delta = maxc - minc
    gray = delta == 0
    safe_delta = torch.where(gray, torch.ones_like(delta), delta)
    s = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    # hue sector by the largest channel (ties resolved in the order r, g, b)
    h_r = ((g - b) / safe_delta) % 6.0
    h_g = (b - r) / safe_delta + 2.0
    h_b = (r - g) / safe_delta + 4.0
    h = torch.where(maxc == r, h_r, torch.where(maxc == g, h_g, h_b))
    h = torch.where(gray, torch.zeros_like(h), h) / 6.0
    h = torch.remainder(h, 1.0)
    return torch.stack([h, s, maxc])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    h, s, v = hsv[0], hsv[1], hsv[2]
    h6 = torch.remainder(h, 1.0) * 6.0
    sector = torch.floor(h6)
    f = h6 - sector
    sector = sector.long() % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    table = (
        (v, t, p),
        (q, v, p),
        (p, v, t),
        (p, q, v),
        (t, p, v),
        (v, p, q),
    )
    out = torch.zeros((3,) + h.shape, dtype=hsv.dtype)
    for i, (rr, gg, bb) in enumerate(table):
        m = sector == i
        out[0][m], out[1][m], out[2][m] = rr[m], gg[m], bb[m]
    return out


def adjust_hue(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Rotate the hue by ``factor`` (in [-0.5, 0.5]) turns."""
    hsv = rgb_to_hsv(img)
    hsv[0] = torch.remainder(hsv[0] + factor, 1.0)
    return hsv_to_rgb(hsv)


def color_jitter(img: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float,
                 order: list[int]) -> torch.Tensor:
    """Apply the four adjustments to a ``[3, H, W]`` image in [0, 1] in ``order`` (0 brightness, 1 contrast,
    2 saturation, 3 hue)."""
    out = img.float()
    for op in order:
        if op == 0:
            out = adjust_brightness(out, brightness)
        elif op == 1:
            out = adjust_contrast(out, contrast)
        elif op == 2:
            out = adjust_saturation(out, saturation)
        elif op == 3:
            out = adjust_hue(out, hue)
    return out

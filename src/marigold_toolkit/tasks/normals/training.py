"""The normals training pipeline of one sample, as the authors' ``BaseNormalsDataset._training_preprocess``:
flip (X negated), then on the RGB only and in this order Gaussian blur p = 0.3 (kernel 33, sigma ~ U(0, 4)),
motion blur p = 0.3 (odd kernel size drawn from 3..11, a horizontal line rotated by an angle ~ U(0, 360) with
nearest sampling, normalised), colour jitter p = 0.3 (torchvision ``ColorJitter`` with brightness 0.5, contrast
0.5, saturation 0.5, hue 0.2: the four factors drawn uniformly and applied in a random order); then a bilinear
(antialiased) resize of image and normals. The authors blur only Hypersim frames (the 768-pixel-high ones),
before resizing.

The authors run the augmentations on the 8-bit image held as an integer tensor, so values are re-quantised after
each step (rounded after the Gaussian blur, truncated after the motion blur and the jitter); this is reproduced.
Every call of :func:`draw_normals_params` consumes the same number of random draws whatever the outcome, so the
stream position never depends on the image.

After the resize the normals are rescaled to unit length (the authors do not; bilinear averaging shortens vectors
at creases). ``valid_mask`` holds the pixels whose stored vector is finite and longer than 0.1 (the authors'
Sintel threshold), resized with nearest-exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...core.augment import color_jitter, gaussian_blur, motion_blur
from ...core.image import hflip, resize_raster, to_chw


@dataclass(frozen=True)
class NormalsAugmentation:
    """The normals augmentation settings (defaults: the authors' ``train_marigold_normals.yaml``)."""

    lr_flip_p: float = 0.5
    color_jitter_p: float = 0.3
    gaussian_blur_p: float = 0.3
    motion_blur_p: float = 0.3
    gaussian_blur_sigma: float = 4.0
    gaussian_blur_kernel: int = 33
    motion_blur_kernel_size: int = 11
    motion_blur_angle_range: float = 360.0
    jitter_brightness: float = 0.5
    jitter_contrast: float = 0.5
    jitter_saturation: float = 0.5
    jitter_hue: float = 0.2


def draw_normals_params(rng: np.random.Generator, cfg: NormalsAugmentation, blur: bool) -> dict[str, Any]:
    """Draw every random choice of one normals sample (a fixed number of draws)."""
    u = rng.random(4)  # flip, gaussian, motion, jitter
    sigma = float(rng.uniform(0.0, cfg.gaussian_blur_sigma))
    sizes = [k for k in range(3, cfg.motion_blur_kernel_size + 1) if k % 2 == 1] or [3]
    ksize = int(sizes[int(rng.integers(len(sizes)))])
    angle = float(rng.uniform(0.0, cfg.motion_blur_angle_range))
    b, c, s = (float(rng.uniform(max(0.0, 1 - f), 1 + f)) for f in
               (cfg.jitter_brightness, cfg.jitter_contrast, cfg.jitter_saturation))
    h = float(rng.uniform(-cfg.jitter_hue, cfg.jitter_hue))
    order = [int(i) for i in rng.permutation(4)]
    return {
        "flip": bool(u[0] < cfg.lr_flip_p),
        "gaussian_blur": bool(blur and u[1] < cfg.gaussian_blur_p),
        "sigma": sigma,
        "motion_blur": bool(blur and u[2] < cfg.motion_blur_p),
        "motion_kernel": ksize,
        "motion_angle": angle,
        "color_jitter": bool(u[3] < cfg.color_jitter_p),
        "jitter": {"brightness": b, "contrast": c, "saturation": s, "hue": h, "order": order},
    }




def augment_normals_rgb(rgb255: torch.Tensor, params: dict[str, Any], cfg: NormalsAugmentation) -> torch.Tensor:
    """Blur and jitter a ``[3, H, W]`` float image holding 8-bit values (0..255) per ``params`` (from
    :func:`draw_normals_params`); returns 8-bit values as float, re-quantised like the authors' pipeline."""
    x = rgb255.float()
    if params["gaussian_blur"]:
        x = torch.round(gaussian_blur(x, params["sigma"], cfg.gaussian_blur_kernel)).clamp(0, 255)
    if params["motion_blur"]:
        x = torch.trunc(motion_blur(x, params["motion_kernel"], params["motion_angle"])).clamp(0, 255)
    if params["color_jitter"]:
        j = params["jitter"]
        x01 = color_jitter(x / 255.0, j["brightness"], j["contrast"], j["saturation"], j["hue"], j["order"])
        x = torch.trunc(x01 * 255.0).clamp(0, 255)
    return x


def unit_normals(n: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Rescale ``[3, H, W]`` vectors to unit length where their length exceeds ``eps`` (others unchanged)."""
    norm = torch.linalg.vector_norm(n, dim=0, keepdim=True)
    return torch.where(norm > eps, n / norm.clamp_min(eps), n)


#: stored vectors shorter than this are invalid (the authors' Sintel sky test)
MIN_NORMAL_LENGTH = 0.1


def normals_augmentation(augmentation: NormalsAugmentation | Mapping[str, Any] | None) -> NormalsAugmentation:
    """The settings object from ``None`` (the authors' defaults), a mapping of overrides (e.g. from a YAML
    config) or an instance."""
    if augmentation is None:
        return NormalsAugmentation()
    if isinstance(augmentation, NormalsAugmentation):
        return augmentation
    if isinstance(augmentation, Mapping):
        try:
            return NormalsAugmentation(**dict(augmentation))
        except TypeError as err:
            raise ValueError(f"bad normals augmentation settings {dict(augmentation)!r}: {err}") from None
    raise TypeError(f"augmentation must be a NormalsAugmentation or a mapping, got {type(augmentation).__name__}")


def prepare_normals(n: torch.Tensor, axis_signs=(1.0, 1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """``[3, H, W]`` stored vectors -> (normals in Marigold's frame, unit length where valid and 0 elsewhere;
    ``bool [1, H, W]`` valid mask = finite and length > 0.1)."""
    if tuple(axis_signs) != (1.0, 1.0, 1.0):
        n = n * torch.tensor(axis_signs, dtype=n.dtype).view(3, 1, 1)
    finite = torch.isfinite(n).all(dim=0, keepdim=True)
    n = torch.where(finite, n, torch.zeros_like(n))
    norm = torch.linalg.vector_norm(n, dim=0, keepdim=True)
    valid = finite & (norm > MIN_NORMAL_LENGTH)
    n = torch.where(valid, n / norm.clamp_min(1e-12), torch.zeros_like(n))
    return n, valid


def augment_and_resize_normals(
    rgb_u8: np.ndarray,
    normals: torch.Tensor,
    valid: torch.Tensor,
    rng: np.random.Generator,
    augment: bool,
    blur: bool,
    cfg: NormalsAugmentation,
    resize: tuple[int, int] | None,
) -> dict[str, Any]:
    """The authors' normals training pipeline on one decoded sample: flip, RGB blur/jitter, bilinear resize."""
    rgb255 = to_chw(rgb_u8)
    sample = {"rgb": rgb255, "normals": normals, "valid_mask": valid}
    if augment:
        params = draw_normals_params(rng, cfg, blur)
        if params["flip"]:
            sample = hflip(sample, negate_x=("normals",))
        sample["rgb"] = augment_normals_rgb(sample["rgb"], params, cfg)
    sample["rgb"] = sample["rgb"] / 255.0 * 2.0 - 1.0
    if resize is not None:
        sample["rgb"] = resize_raster(sample["rgb"], resize, "bilinear")
        sample["normals"] = unit_normals(resize_raster(sample["normals"], resize, "bilinear"))
        sample["valid_mask"] = resize_raster(sample["valid_mask"], resize, "nearest-exact")
    return sample

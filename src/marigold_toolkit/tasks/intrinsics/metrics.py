"""Intrinsic-decomposition metrics of the Marigold protocol (the authors' ``script/iid/eval.py``): the
preparation of up-to-scale targets, the authors' gamma conversions, and PSNR/SSIM per target.
"""

from __future__ import annotations

import numpy as np  # noqa: F401 - the doctests use it
import torch

from ...core.arrays import ArrayLike, is_tensor, like, quantile, to_tensor
from ...core.metrics import EmptyMaskError, align_scale_tensor, image_pair, image_restore, psnr, ssim

__all__ = ["GAMMA", "UP_TO_SCALE_TARGETS", "intrinsics_metrics", "linear_to_srgb", "prepare_iid_pair", "quantile_map",
           "srgb_to_linear"]

#: Target names that are only defined up to scale (the authors' IID lighting model).
UP_TO_SCALE_TARGETS = ("shading", "residual")


def _quantile_map_chw(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None, percentile: float,
                      target: float) -> tuple[torch.Tensor, torch.Tensor]:
    brightness = 0.3 * g[0, :, :] + 0.59 * g[1, :, :] + 0.11 * g[2, :, :]
    brightness = brightness[m[0]] if m is not None else brightness.flatten()
    if brightness.numel() == 0:
        raise EmptyMaskError("the mask selects no pixel")
    current = quantile(brightness, percentile / 100.0)
    eps = 0.0001
    scale = 0 if current < eps else float(target / current)
    return torch.clamp(scale * p, 0, 1), torch.clamp(scale * g, 0, 1)


def quantile_map(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    percentile: float = 90.0,
    target: float = 0.8,
    channels_last: bool | None = None,
) -> tuple[ArrayLike, ArrayLike]:
    """Map both images to [0, 1] with one scale: the GT's ``percentile`` brightness becomes ``target``.

    Brightness is ``0.3 R + 0.59 G + 0.11 B`` of the GT over the valid pixels (channel 0 of a per-channel mask,
    as the authors index it); its percentile is ``torch.quantile`` (linear interpolation). Both images are
    multiplied by ``target / percentile`` (by 0 when the percentile is below 1e-4) and clamped to [0, 1]. Used by
    the authors for the up-to-scale IID targets (shading, residual), after scale alignment.

    Args:
        pred, gt: RGB images of the same shape.
        mask: bool ``[H, W]`` or per channel; ``None``: all pixels.
        percentile, target: 90 and 0.8 in the authors' code.
        channels_last: layout (``None``: inferred).

    Returns:
        ``(pred_mapped, gt_mapped)``, float32, each in its input's layout and kind.

    Raises:
        EmptyMaskError: the mask selects no pixel.

    Shape:
        - pred, gt: :math:`(3, H, W)` or :math:`(H, W, 3)`, optionally with a leading 1.

    Example:
        >>> gt = np.full((1, 2, 3), 0.4, dtype=np.float32)  # grey, brightness 0.4 -> scale 2
        >>> p, g = quantile_map(np.full((1, 2, 3), 0.3, dtype=np.float32), gt)
        >>> p[0, 0].astype(float).round(4).tolist(), g[0, 0].astype(float).round(4).tolist()
        ([0.6, 0.6, 0.6], [0.8, 0.8, 0.8])
    """
    p, g, m, lp, lg = image_pair(pred, gt, mask, channels_last, channels=(3,))
    pm, gm = _quantile_map_chw(p, g, m, percentile, target)
    return image_restore(pm, lp, pred), image_restore(gm, lg, gt)


def prepare_iid_pair(
    pred: ArrayLike,
    gt: ArrayLike,
    target_name: str,
    mask: ArrayLike | None = None,
    up_to_scale: bool | None = None,
    *,
    channels_last: bool | None = None,
) -> tuple[ArrayLike, ArrayLike]:
    """The authors' preparation of one IID target before PSNR/SSIM/LPIPS (``compute_iid_metric``).

    For up-to-scale targets (default: ``target_name`` in ``("shading", "residual")``): least-squares scale of
    ``pred`` to ``gt`` over the masked values (float32 ``torch.linalg.lstsq``, no shift), then
    :func:`quantile_map` (GT's 90th-percentile brightness -> 0.8, same scale for both, clamp to [0, 1]).
    Other targets are returned unchanged (as float32). Colour-space conversions (:func:`linear_to_srgb`,
    :func:`srgb_to_linear`) are the caller's business, before this step, as in the authors' script.

    Args:
        pred, gt: RGB images of the same shape.
        target_name: e.g. ``"albedo"``, ``"shading"``, ``"residual"``, ``"material"``.
        mask: bool ``[H, W]`` or per channel; ``None``: all pixels.
        up_to_scale: override the name-based choice.
        channels_last: layout (``None``: inferred).

    Returns:
        ``(pred, gt)`` ready for :func:`intrinsics_metrics`, in their input layouts and kinds.

    Raises:
        EmptyMaskError: an up-to-scale target with an empty mask.

    Example:
        >>> gt = np.full((1, 2, 3), 0.4, dtype=np.float32)
        >>> p, g = prepare_iid_pair(0.25 * gt, gt, "shading")  # scale 4, then quantile-mapped by 2
        >>> p.astype(float).round(4).tolist() == g.astype(float).round(4).tolist() == [[[0.8] * 3] * 2]
        True
    """
    if up_to_scale is None:
        up_to_scale = target_name in UP_TO_SCALE_TARGETS
    p, g, m, lp, lg = image_pair(pred, gt, mask, channels_last, channels=(3,) if up_to_scale else (1, 3))
    if up_to_scale:
        p, _ = align_scale_tensor(p, g, m)
        p, g = _quantile_map_chw(p, g, m, 90.0, 0.8)
    return image_restore(p, lp, pred), image_restore(g, lg, gt)


#: the authors' gamma between linear and sRGB values (a pure power, not the piecewise sRGB curve)
GAMMA = 2.2


def _pow(x: ArrayLike, exponent: float) -> ArrayLike:
    t = to_tensor(x, None, x.device if is_tensor(x) else None)
    if not t.is_floating_point():
        t = t.float()
    return like(t ** exponent, x)


def srgb_to_linear(x: ArrayLike) -> ArrayLike:
    """sRGB -> linear as the authors do it: a pure gamma, ``x ** 2.2`` (not the piecewise sRGB curve).

    Example:
        >>> round(float(srgb_to_linear(np.float32(0.5))), 6)
        0.217638
    """
    return _pow(x, GAMMA)


def linear_to_srgb(x: ArrayLike) -> ArrayLike:
    """Linear -> sRGB as the authors do it: ``x ** (1 / 2.2)``. Negative values give NaN.

    Example:
        >>> round(float(linear_to_srgb(srgb_to_linear(np.float32(0.5)))), 6)
        0.5
    """
    return _pow(x, 1.0 / GAMMA)


def intrinsics_metrics(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    data_range: float = 1.0,
    channels_last: bool | None = None,
) -> dict[str, float]:
    """``{"psnr": ..., "ssim": ...}`` of one prepared IID target (see :func:`prepare_iid_pair`).

    PSNR over the masked values, SSIM with invalid pixels zeroed, as the authors compute them. LPIPS needs
    pretrained weights and is separate (:func:`lpips`).

    Example:
        >>> img = np.linspace(0, 1, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
        >>> m = intrinsics_metrics(img, img)
        >>> m["psnr"], round(m["ssim"], 6)
        (inf, 1.0)
    """
    return {
        "psnr": psnr(pred, gt, mask, data_range, channels_last=channels_last),
        "ssim": ssim(pred, gt, mask, data_range, channels_last=channels_last),
    }



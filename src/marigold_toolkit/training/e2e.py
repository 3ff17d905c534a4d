"""Task losses in pixel space for one-step end-to-end fine-tuning (E2E-FT style).

``decoded`` is the codec-decoded prediction ``[B, T, C, H, W]``: depth in [0, 1] (C = 1), normals unit vectors,
intrinsics in [0, 1].
"""

from __future__ import annotations

from typing import Any

import torch


def affine_invariant_l1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 after a per-image least-squares scale and shift of ``pred`` to ``gt`` over ``mask`` (``[B, H, W]``).

    The fit is solved in closed form without gradient, as in E2E-FT's scale-and-shift-invariant loss.
    """
    losses = []
    for p, g, m in zip(pred, gt, mask):
        pv, gv = p[m], g[m]
        if pv.numel() < 2:
            continue
        with torch.no_grad():
            a = torch.stack([pv, torch.ones_like(pv)], dim=1).double()
            sol = torch.linalg.lstsq(a, gv.double()[:, None]).solution[:, 0].to(pv)
        losses.append((pv * sol[0] + sol[1] - gv).abs().mean())
    return torch.stack(losses).mean() if losses else pred.sum() * 0


def angular_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean angle (radians) between ``[B, 3, H, W]`` normals over valid pixels (zero GT vectors excluded)."""
    valid = gt.norm(dim=1) > 0
    if mask is not None:
        valid &= mask
    cos = torch.nn.functional.cosine_similarity(pred, gt, dim=1).clamp(-1 + 1e-6, 1 - 1e-6)
    ang = torch.acos(cos)
    return ang[valid].mean() if valid.any() else pred.sum() * 0


def task_loss(task: str, decoded: torch.Tensor, batch: dict[str, Any], targets, device) -> torch.Tensor:
    mask = batch.get("valid_mask")
    mask = mask.to(device)[:, 0] if torch.is_tensor(mask) else None
    if task == "depth":
        gt = batch["depth"].to(device)[:, 0]
        m = (gt > 0) if mask is None else (mask & (gt > 0))
        return affine_invariant_l1(decoded[:, 0, 0], gt, m)
    if task == "normals":
        return angular_loss(decoded[:, 0], batch["normals"].to(device), mask)
    losses = []
    for i, name in enumerate(targets):
        err = (decoded[:, i] - batch[name].to(device)).abs().mean(dim=1)
        losses.append(err[mask].mean() if mask is not None and mask.any() else err.mean())
    return torch.stack(losses).mean()

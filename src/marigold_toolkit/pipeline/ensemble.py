"""Test-time ensembling of several predictions of the same image, with uncertainty.

Pure tensor functions. Shapes: ``E`` ensemble members, ``H x W`` pixels. The algorithms follow the Marigold
authors' reference (the same maths and evaluation order, so results agree with diffusers' pipelines to float
precision):

* depth: per-member scale (and shift) found by BFGS on the sum of pairwise RMSEs plus a regulariser that pulls the
  merged map to [0, 1]; merge by median (or mean); min-max normalise; uncertainty = MAD (or std) / range.
* normals: mean direction, then per pixel the member closest to it (or the mean itself); uncertainty = mean angle
  to the mean direction / pi.
* intrinsics: per-pixel, per-channel median (or mean); uncertainty = MAD (or std).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from .image_processing import resize_to_max_edge


def _check(x: torch.Tensor, ndim: int, channels: int | None, name: str) -> None:
    if x.dim() != ndim or (channels is not None and x.shape[1] != channels):
        want = f"{ndim}-D" + (f" with {channels} channel(s) in dim 1" if channels is not None else "")
        raise ValueError(f"{name}: expected a {want} tensor, got shape {tuple(x.shape)}")


def _reduce(stack: torch.Tensor, reduction: str, with_uncertainty: bool):
    """Median/mean over dim 0 keeping it, with MAD/std uncertainty."""
    if reduction == "median":
        merged = torch.median(stack, dim=0, keepdim=True).values
        unc = torch.median(torch.abs(stack - merged), dim=0, keepdim=True).values if with_uncertainty else None
    elif reduction == "mean":
        merged = torch.mean(stack, dim=0, keepdim=True)
        unc = torch.std(stack, dim=0, keepdim=True) if with_uncertainty else None
    else:
        raise ValueError(f"unknown reduction {reduction!r}; use 'median' or 'mean'")
    return merged, unc


def ensemble_depth(
    depth: torch.Tensor,
    scale_invariant: bool = True,
    shift_invariant: bool = True,
    output_uncertainty: bool = False,
    reduction: str = "median",
    regularizer_strength: float = 0.02,
    max_iter: int = 2,
    tol: float = 1e-3,
    max_res: int | None = 1024,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Align and merge affine-invariant depth maps.

    Args:
        depth: ``[E, 1, H, W]`` member predictions in [0, 1].
        scale_invariant, shift_invariant: degrees of freedom removed per member before merging
            (both: affine; scale only; neither: plain merge).
        output_uncertainty: also return MAD (median) or std (mean) divided by the final range.
        reduction: ``"median"`` or ``"mean"``.
        regularizer_strength: weight of ``|min| + |1 - max|`` of the merged map in the alignment cost.
        max_iter, tol: SciPy BFGS settings (diffusers' defaults 2 and 1e-3; the authors' repo uses 50 and 1e-6).
        max_res: the alignment is solved on a nearest-exact copy whose long edge is at most this.

    Returns:
        ``([1, 1, H, W]`` depth normalised to [0, 1] (kept in its units when neither invariance is set),
        ``[1, 1, H, W]`` uncertainty or ``None)``.

    Example:
        >>> d = torch.rand(1, 1, 4, 5)
        >>> members = torch.cat([d, 2 * d + 0.5, 0.5 * d - 1])  # one map under three affine transforms
        >>> merged, unc = ensemble_depth(members, output_uncertainty=True, max_iter=50, tol=1e-9)
        >>> bool(torch.allclose(merged, (d - d.min()) / (d.max() - d.min()), atol=1e-3))
        True
    """
    _check(depth, 4, 1, "depth")
    if reduction not in ("mean", "median"):
        raise ValueError(f"unknown reduction {reduction!r}; use 'median' or 'mean'")
    if shift_invariant and not scale_invariant:
        raise ValueError("pure shift-invariant ensembling is not supported")
    n = depth.shape[0]
    affine = scale_invariant and shift_invariant

    def apply(d: torch.Tensor, param: np.ndarray) -> torch.Tensor:
        if affine:
            s, t = np.split(param, 2)
            return d * torch.from_numpy(s).to(d).view(n, 1, 1, 1) + torch.from_numpy(t).to(d).view(n, 1, 1, 1)
        return d * torch.from_numpy(param).to(d).view(n, 1, 1, 1)

    def cost(param: np.ndarray, d: torch.Tensor) -> float:
        aligned = apply(d, param)
        total = 0.0
        for i, j in torch.combinations(torch.arange(n)):
            total += ((aligned[i] - aligned[j]) ** 2).mean().sqrt().item()
        if regularizer_strength > 0:
            merged, _ = _reduce(aligned, reduction, False)
            total += (merged.min().abs().item() + (1.0 - merged.max()).abs().item()) * regularizer_strength
        return total

    if scale_invariant:
        import scipy.optimize

        small = depth.to(torch.float32)
        if max_res is not None and max(small.shape[2:]) > max_res:
            small = resize_to_max_edge(small, max_res, "nearest-exact")
        flat = small.reshape(n, -1)
        lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
        if affine:
            s0 = 1.0 / (hi - lo).clamp(min=1e-6)
            init = torch.cat((s0, -s0 * lo))
        else:
            init = 1.0 / hi.clamp(min=1e-6)
        init = init.cpu().numpy().astype(np.float64)
        res = scipy.optimize.minimize(
            partial(cost, d=small), init, method="BFGS", tol=tol, options={"maxiter": max_iter, "disp": False}
        )
        depth = apply(depth, res.x)

    merged, unc = _reduce(depth, reduction, output_uncertainty)
    if not scale_invariant:  # absolute (metric) depth: merge only, keep units
        return merged, unc
    hi = merged.max()
    lo = merged.min() if affine else 0
    rng = (hi - lo).clamp(min=1e-6)
    merged = (merged - lo) / rng
    if unc is not None:
        unc = unc / rng
    return merged, unc


def normalize_normals(normals: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale ``[B, 3, H, W]`` vectors to unit length (norm clamped at ``eps``); returns a new tensor."""
    _check(normals, 4, 3, "normals")
    return normals / torch.norm(normals, dim=1, keepdim=True).clamp(min=eps)


def ensemble_normals(
    normals: torch.Tensor, output_uncertainty: bool = False, reduction: str = "closest"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Merge ``[E, 3, H, W]`` unit normals.

    Returns ``([1, 3, H, W]`` normals, ``[1, 1, H, W]`` uncertainty in [0, 1] or ``None)``; ``"closest"`` picks
    per pixel the member with the highest cosine to the mean direction, ``"mean"`` returns the mean direction.

    Example:
        >>> n = normalize_normals(torch.randn(3, 3, 2, 2))
        >>> out, unc = ensemble_normals(n.repeat(1, 1, 1, 1)[:1].repeat(4, 1, 1, 1), True)
        >>> bool(torch.allclose(out, n[:1], atol=1e-6)), float(unc.max()) < 1e-3
        (True, True)
    """
    _check(normals, 4, 3, "normals")
    if reduction not in ("closest", "mean"):
        raise ValueError(f"unknown reduction {reduction!r}; use 'closest' or 'mean'")
    mean = normalize_normals(normals.mean(dim=0, keepdim=True))
    cos = (mean * normals).sum(dim=1, keepdim=True).clamp(-1, 1)  # [E,1,H,W]
    unc = cos.arccos().mean(dim=0, keepdim=True) / np.pi if output_uncertainty else None
    if reduction == "mean":
        return mean, unc
    idx = cos.argmax(dim=0, keepdim=True).repeat(1, 3, 1, 1)
    return torch.gather(normals, 0, idx), unc


def ensemble_intrinsics(
    targets: torch.Tensor, output_uncertainty: bool = False, reduction: str = "median"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Merge ``[E, T, 3, H, W]`` intrinsic predictions into ``[T, 3, H, W]`` (+ uncertainty of the same shape).

    Example:
        >>> x = torch.tensor([0.1, 0.5, 0.2]).view(3, 1, 1, 1, 1).expand(3, 1, 3, 1, 1)
        >>> m, u = ensemble_intrinsics(x, True)
        >>> m.flatten().tolist(), [round(v, 3) for v in u.flatten().tolist()]
        ([0.20000000298023224, 0.20000000298023224, 0.20000000298023224], [0.1, 0.1, 0.1])
    """
    _check(targets, 5, None, "targets")
    merged, unc = _reduce(targets, reduction, output_uncertainty)
    return merged.squeeze(0), (unc.squeeze(0) if unc is not None else None)


__all__ = ["ensemble_depth", "ensemble_normals", "ensemble_intrinsics", "normalize_normals"]

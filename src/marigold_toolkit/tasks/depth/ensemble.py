"""Test-time ensembling of depth maps, with uncertainty.

``method="bfgs"`` (default) is the Marigold authors' algorithm, with the same maths and evaluation order, so
results agree with diffusers' pipelines to float precision: per-member scale (and shift) found by BFGS on the sum
of pairwise RMSEs plus a regulariser that pulls the merged map to [0, 1]; merge by median (or mean); min-max
normalise; uncertainty = MAD (or std) / range. Its result is not continuous in the members: with finite-difference
gradients, a non-smooth cost (median, min, max) and a 2-iteration budget, a float-level change of the members
(another batch size, dtype or kernel) can move the merged map by several percent.

``method="least-squares"`` is continuous and closed-form: start from each member min-max normalised, then
``max_iter`` times fit every member to the current merge by least squares (scale and shift, or scale only) and
merge again; the same merge, normalisation and uncertainty follow. Float-level input changes give float-level
output changes, so it is the method to compare numerics (dtypes, backends, decoders) at ensemble sizes > 1.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from ...core.checks import check_shape
from ...core.image import resize_to_max_edge
from ..base import reduce_members


#: the alignments :func:`ensemble_depth` offers
ENSEMBLE_METHODS = ("bfgs", "least-squares")


def _least_squares_alignment(flat: torch.Tensor, init: np.ndarray, affine: bool, reduction: str,
                             refits: int) -> np.ndarray:
    """Per-member ``[scales, shifts]`` (affine) or ``scales``: from ``init``, ``refits`` rounds of fitting each member
    ``flat [E, N]`` to the merge of the aligned members by least squares (in float64)."""
    x = flat.double()
    n = x.shape[0]
    if affine:
        s, t = torch.from_numpy(init[:n]).double(), torch.from_numpy(init[n:]).double()
    else:
        s, t = torch.from_numpy(init).double(), torch.zeros(n, dtype=torch.float64)
    for _ in range(max(0, int(refits))):
        aligned = x * s[:, None] + t[:, None]
        ref = aligned.median(dim=0).values if reduction == "median" else aligned.mean(dim=0)
        if affine:
            xm, rm = x.mean(dim=1, keepdim=True), ref.mean()
            var = ((x - xm) ** 2).mean(dim=1)
            cov = ((x - xm) * (ref - rm)).mean(dim=1)
            s = torch.where(var > 1e-12, cov / var.clamp(min=1e-12), s)
            t = rm - s * xm[:, 0]
        else:
            sq = (x * x).mean(dim=1)
            s = torch.where(sq > 1e-12, (x * ref).mean(dim=1) / sq.clamp(min=1e-12), s)
    return torch.cat([s, t]).numpy() if affine else s.numpy()


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
    method: str = "bfgs",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Align and merge affine-invariant depth maps.

    Args:
        depth: ``[E, 1, H, W]`` member predictions in [0, 1].
        scale_invariant, shift_invariant: degrees of freedom removed per member before merging
            (both: affine; scale only; neither: plain merge).
        output_uncertainty: also return MAD (median) or std (mean) divided by the final range.
        reduction: ``"median"`` or ``"mean"``.
        regularizer_strength: weight of ``|min| + |1 - max|`` of the merged map in the alignment cost.
        max_iter, tol: SciPy BFGS settings (diffusers' defaults 2 and 1e-3; the authors' repo uses 50 and 1e-6);
            for ``method="least-squares"`` ``max_iter`` is the number of refits (``tol`` is not used).
        max_res: the alignment is solved on a nearest-exact copy whose long edge is at most this.
        method: ``"bfgs"`` (the authors' and diffusers') or ``"least-squares"`` (continuous; see the module
            docstring).

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
    check_shape(depth, "E 1 H W", "depth")
    if reduction not in ("mean", "median"):
        raise ValueError(f"unknown reduction {reduction!r}; use 'median' or 'mean'")
    if shift_invariant and not scale_invariant:
        raise ValueError("pure shift-invariant ensembling is not supported")
    if method not in ENSEMBLE_METHODS:
        raise ValueError(f"unknown ensembling method {method!r}; use one of {', '.join(ENSEMBLE_METHODS)}")
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
            merged, _ = reduce_members(aligned, reduction, False)
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
        if method == "least-squares":
            param = _least_squares_alignment(flat, init, affine, reduction, max_iter)
        else:
            param = scipy.optimize.minimize(
                partial(cost, d=small), init, method="BFGS", tol=tol, options={"maxiter": max_iter, "disp": False}
            ).x
        depth = apply(depth, param)

    merged, unc = reduce_members(depth, reduction, output_uncertainty)
    if not scale_invariant:  # absolute (metric) depth: merge only, keep units
        return merged, unc
    hi = merged.max()
    lo = merged.min() if affine else 0
    rng = (hi - lo).clamp(min=1e-6)
    merged = (merged - lo) / rng
    if unc is not None:
        unc = unc / rng
    return merged, unc

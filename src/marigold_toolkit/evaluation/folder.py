"""Scoring a folder of predictions (as ``marigold predict`` writes them) against a folder of ground truth.

Layout (a fixed contract):

* predictions: ``<stem>_depth.npy`` | ``<stem>_normals.npy`` | ``<stem>_<target>.npy``;
* ground truth: ``<stem>.npy`` — depth float32 ``HxW`` in metres with 0 or NaN invalid; normals float32 ``HxWx3``
  unit vectors with zero vectors invalid; intrinsics ``HxWx3`` per target in a sub-folder named after the target
  (``GT/albedo/<stem>.npy``).

A prediction at another resolution than its ground truth is resized (bilinear, antialiased) as the authors'
pipeline does. Stems without ground truth or without prediction are listed by name; images with no valid pixel
are counted and excluded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .metrics import EmptyMaskError
from .report import mean_over_images, nest_targets
from .scoring import DEPTH_KEYS, NORMALS_KEYS, lpips_enabled, score_depth, score_intrinsics, score_normals

logger = logging.getLogger(__name__)

REPORT_DEPTH_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3")
REPORT_NORMALS_KEYS = ("mean_angular_error", "median_angular_error", "within_5", "within_7.5", "within_11.25",
                       "within_22.5", "within_30")


class FolderError(ValueError):
    """The folders cannot be scored at all (missing folder, nothing to compare)."""


def _load(path: Path) -> np.ndarray:
    arr = np.load(path, allow_pickle=False)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"dtype {arr.dtype} is not numeric")
    return arr.astype(np.float32, copy=False)


def _stems(folder: Path, suffix: str) -> set[str]:
    return {p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}") if p.is_file() and not p.name.startswith(".")}


def _depth_mask(gt: np.ndarray, min_depth: float | None, max_depth: float | None) -> np.ndarray:
    mask = np.isfinite(gt) & (gt > (min_depth if min_depth is not None else 0.0))
    if max_depth is not None:
        mask &= gt < max_depth
    return mask


def evaluate_folder(
    task: str,
    predictions: str | Path,
    ground_truth: str | Path,
    alignment: str = "least_squares",
    min_depth: float | None = None,
    max_depth: float | None = None,
    up_to_scale: tuple[str, ...] = ("shading", "residual"),
    show_progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score every stem present in both folders.

    Returns:
        ``(report, rows)``: the report dict (dataset means under the contract's keys, ``num_images``, lists of
        unmatched stems, excluded and failed images, the settings) and one dict of metrics per scored image.
    """
    pred_dir, gt_dir = Path(predictions), Path(ground_truth)
    for flag, d in (("--predictions", pred_dir), ("--ground-truth", gt_dir)):
        if not d.is_dir():
            raise FolderError(f"{flag} {d}: not a folder")
    if task not in ("depth", "normals", "intrinsics"):
        raise FolderError(f"unknown task {task!r}")
    if task == "depth" and min_depth is not None and max_depth is not None and max_depth <= min_depth:
        raise FolderError(f"--max-depth {max_depth} must be larger than --min-depth {min_depth}")

    if task == "intrinsics":
        targets = sorted(p.name for p in gt_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not targets:
            raise FolderError(f"--ground-truth {gt_dir}: intrinsics needs one sub-folder per target (e.g. albedo/)")
        gt_stems = set.intersection(*[_stems(gt_dir / t, ".npy") for t in targets])
        pred_stems = set.intersection(*[_stems(pred_dir, f"_{t}.npy") for t in targets])
    else:
        targets = [task]
        gt_stems = _stems(gt_dir, ".npy")
        pred_stems = _stems(pred_dir, f"_{task}.npy")
    both = sorted(gt_stems & pred_stems)
    missing_pred = sorted(gt_stems - pred_stems)
    missing_gt = sorted(pred_stems - gt_stems)
    for s in missing_pred:
        logger.warning("%s: ground truth without prediction", s)
    for s in missing_gt:
        logger.warning("%s: prediction without ground truth", s)

    rows: list[dict[str, Any]] = []
    excluded: list[str] = []
    failed: dict[str, str] = {}
    for stem in tqdm(both, desc="scoring", disable=not show_progress):
        try:
            if task == "depth":
                gt = _load(gt_dir / f"{stem}.npy")
                pred = _load(pred_dir / f"{stem}_depth.npy")
                if gt.ndim != 2:
                    raise ValueError(f"ground truth must be HxW, got {gt.shape}")
                mask = _depth_mask(gt, min_depth, max_depth)
                lo = min_depth if min_depth is not None else 1e-6
                hi = max_depth if max_depth is not None else float("inf")
                metrics, _ = score_depth(pred, np.nan_to_num(gt, nan=0.0), mask, alignment, lo, hi)
                metrics = {k: metrics[k] for k in DEPTH_KEYS if k in metrics}
            elif task == "normals":
                gt = _load(gt_dir / f"{stem}.npy")
                pred = _load(pred_dir / f"{stem}_normals.npy")
                if gt.ndim != 3 or gt.shape[2] != 3 or pred.ndim != 3 or pred.shape[2] != 3:
                    raise ValueError(f"normals must be HxWx3, got GT {gt.shape} and prediction {pred.shape}")
                gt = np.nan_to_num(gt, nan=0.0)
                metrics = score_normals(pred, gt)
                metrics = {k: metrics[k] for k in NORMALS_KEYS if k in metrics}
            else:
                gts = {t: _load(gt_dir / t / f"{stem}.npy") for t in targets}
                preds = {t: _load(pred_dir / f"{stem}_{t}.npy") for t in targets}
                for t in targets:
                    if gts[t].ndim != 3 or gts[t].shape[2] != 3:
                        raise ValueError(f"{t}: ground truth must be HxWx3, got {gts[t].shape}")
                metrics = score_intrinsics(preds, gts, None, up_to_scale=up_to_scale, with_lpips=lpips_enabled())
        except EmptyMaskError:
            excluded.append(stem)
            continue
        except (OSError, ValueError) as exc:
            failed[stem] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.error("%s: %s", stem, failed[stem])
            continue
        rows.append({"stem": stem, **metrics})

    keys = {"depth": list(REPORT_DEPTH_KEYS), "normals": list(REPORT_NORMALS_KEYS)}.get(task)
    means = mean_over_images(rows, keys)
    report: dict[str, Any] = {**nest_targets(means)}
    report.update(
        num_images=len(rows),
        num_excluded_no_valid_pixels=len(excluded),
        excluded_no_valid_pixels=excluded,
        missing_predictions=missing_pred,
        missing_ground_truth=missing_gt,
        failed=failed,
        settings={
            "task": task, "predictions": str(pred_dir), "ground_truth": str(gt_dir),
            **({"alignment": alignment, "min_depth": min_depth, "max_depth": max_depth} if task == "depth" else {}),
            **({"targets": targets, "up_to_scale": list(up_to_scale)} if task == "intrinsics" else {}),
        },
    )
    return report, rows

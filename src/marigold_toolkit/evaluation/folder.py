"""Scoring a folder of predictions (as ``marigold predict`` writes them) against a folder of ground truth.

Layout (a fixed contract):

* predictions: ``<stem>_<target>.npy`` (``<stem>_depth.npy`` | ``<stem>_normals.npy`` | ``<stem>_albedo.npy`` ...);
* ground truth: the task's layout (:meth:`~marigold_toolkit.tasks.base.Task.ground_truth_file`): ``<stem>.npy``
  — depth float32 ``HxW`` in metres with 0 or NaN invalid; normals float32 ``HxWx3`` unit vectors with zero
  vectors invalid; intrinsics ``HxWx3`` per target in a sub-folder named after the target
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

from ..core.metrics import EmptyMaskError
from ..tasks import TaskError, get_task
from .report import mean_over_images, nest_targets

logger = logging.getLogger(__name__)


class FolderError(ValueError):
    """The folders cannot be scored at all (missing folder, nothing to compare)."""


def _load(path: Path) -> np.ndarray:
    arr = np.load(path, allow_pickle=False)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"dtype {arr.dtype} is not numeric")
    return arr.astype(np.float32, copy=False)


def _stems(folder: Path, suffix: str) -> set[str]:
    return {p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}") if p.is_file() and not p.name.startswith(".")}


def evaluate_folder(
    task: str,
    predictions: str | Path,
    ground_truth: str | Path,
    alignment: str | None = None,
    min_depth: float | None = None,
    max_depth: float | None = None,
    up_to_scale: tuple[str, ...] = ("shading", "residual"),
    show_progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score every stem present in both folders with the task registered as ``task``.

    ``alignment``, ``min_depth``, ``max_depth`` and ``up_to_scale`` are the command line's evaluation options;
    each task takes those that apply to it (:meth:`~marigold_toolkit.tasks.base.Task.folder_protocol`; depth:
    ``alignment=None`` is least squares in the predictions' own space, depth or disparity).

    Returns:
        ``(report, rows)``: the report dict (dataset means under the task's report keys, ``num_images``, lists of
        unmatched stems, excluded and failed images, the settings) and one dict of metrics per scored image.
    """
    pred_dir, gt_dir = Path(predictions), Path(ground_truth)
    for flag, d in (("--predictions", pred_dir), ("--ground-truth", gt_dir)):
        if not d.is_dir():
            raise FolderError(f"{flag} {d}: not a folder")
    options = {"alignment": alignment, "min_depth": min_depth, "max_depth": max_depth, "up_to_scale": up_to_scale}
    try:
        scorer = get_task(task).for_folders(gt_dir, pred_dir)
        targets = scorer.target_names
        protocol = scorer.folder_protocol(targets, options)
    except (TaskError, ValueError) as exc:
        raise FolderError(str(exc)) from None

    def gt_file(target: str, stem: str) -> Path:
        return scorer.ground_truth_file(gt_dir, target, stem)

    suffix = gt_file("x", "").name  # the ground-truth file name of an empty stem, e.g. ".npy"
    gt_stems = set.intersection(*[_stems(gt_file(t, "").parent, suffix) for t in targets])
    pred_stems = set.intersection(*[_stems(pred_dir, scorer.array_file("", t)) for t in targets])
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
            gts = {t: _load(gt_file(t, stem)) for t in targets}
            preds = {t: _load(pred_dir / scorer.array_file(stem, t)) for t in targets}
            for t in targets:
                scorer.check_folder_pair(t, gts[t], preds[t])
            metrics, _ = scorer.score(preds, gts, None, **protocol)
        except EmptyMaskError:
            excluded.append(stem)
            continue
        except (OSError, ValueError) as exc:
            failed[stem] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.error("%s: %s", stem, failed[stem])
            continue
        rows.append({"stem": stem, **metrics})

    keys = list(scorer.report_keys) if scorer.report_keys is not None else None
    means = mean_over_images(rows, keys)
    report: dict[str, Any] = {**nest_targets(means)}
    report.update(
        num_images=len(rows),
        num_excluded_no_valid_pixels=len(excluded),
        excluded_no_valid_pixels=excluded,
        missing_predictions=missing_pred,
        missing_ground_truth=missing_gt,
        failed=failed,
        settings={"task": task, "predictions": str(pred_dir), "ground_truth": str(gt_dir),
                  **scorer.folder_settings(targets, protocol)},
    )
    return report, rows

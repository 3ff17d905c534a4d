"""Plots a user wants next to a report: per-image error maps and a histogram of per-image errors (PNG)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path


def _error_map(task: str, sample, preds: dict[str, np.ndarray], aligned) -> tuple[np.ndarray, str, np.ndarray]:
    from .metrics import angular_error
    from .scoring import resize_prediction

    if task == "depth":
        gt = sample.gt
        err = np.where(sample.valid_mask, np.abs(aligned - gt) / np.maximum(gt, 1e-6), np.nan)
        return err, "absolute relative error", aligned
    if task == "normals":
        pred = resize_prediction(preds["normals"], sample.gt.shape[:2])
        err = np.asarray(angular_error(pred, sample.gt), dtype=np.float32)
        err = np.where(sample.valid_mask & (np.linalg.norm(sample.gt, axis=-1) > 0), err, np.nan)
        return err, "angular error (deg)", (np.clip(pred, -1, 1) + 1) / 2
    name = next(iter(sample.gt))
    pred = resize_prediction(preds[name], sample.gt[name].shape[:2])
    err = np.abs(pred - sample.gt[name]).mean(axis=-1)
    return err, f"{name} absolute error", np.clip(pred, 0, 1)


def write_plots(output_dir: Path, task: str, rows: list[dict[str, Any]], samples: list[tuple]) -> list[Path]:
    """Error maps for ``samples`` (``(sample, preds, aligned)``) and a histogram of the main per-image metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir = Path(output_dir) / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for sample, preds, aligned in samples:
        err, label, shown = _error_map(task, sample, preds, aligned)
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        axes[0].imshow(sample.rgb)
        axes[0].set_title(sample.stem, fontsize=8)
        axes[1].imshow(shown, cmap="Spectral" if shown.ndim == 2 else None)
        axes[1].set_title("prediction (aligned)" if task == "depth" else "prediction", fontsize=8)
        vmax = float(np.nanpercentile(err, 95)) if np.isfinite(err).any() else 1.0
        im = axes[2].imshow(err, cmap="inferno", vmin=0, vmax=max(vmax, 1e-6))
        axes[2].set_title(label, fontsize=8)
        fig.colorbar(im, ax=axes[2], fraction=0.046)
        for a in axes:
            a.axis("off")
        written.append(_save(fig, plots_dir / f"error_{sample.stem}.png"))
        plt.close(fig)
    metric = {"depth": "abs_rel", "normals": "mean_angular_error"}.get(task)
    if metric is None and rows:
        metric = next((k for k in rows[0] if k.endswith("/psnr")), None)
    values = [r[metric] for r in rows if metric in r]
    if values:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.hist(values, bins=min(50, max(5, len(values) // 2)), color="#3b6ea8")
        ax.axvline(float(np.mean(values)), color="k", linestyle="--", label=f"mean {np.mean(values):.4g}")
        ax.set_xlabel(f"per-image {metric}")
        ax.set_ylabel("images")
        ax.legend()
        name = metric.replace("/", "_")
        written.append(_save(fig, Path(output_dir) / f"histogram_{name}.png"))
        plt.close(fig)
    return written

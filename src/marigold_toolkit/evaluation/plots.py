"""Plots a user wants next to a report: per-image error maps and a histogram of per-image errors (PNG)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..core.atomic import atomic_write_bytes
from ..tasks import Task


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_plots(output_dir: Path, task: Task, rows: list[dict[str, Any]], samples: list[tuple]) -> list[Path]:
    """Error maps for ``samples`` (``(sample, preds, aux)``, aux from the task's scoring; see
    :meth:`~marigold_toolkit.tasks.base.Task.error_map`) and a histogram of the task's main per-image metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir = Path(output_dir) / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for sample, preds, aux in samples:
        emap = task.error_map(sample.gt, sample.valid_mask, preds, aux)
        err, label, shown = emap.error, emap.label, emap.shown
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        axes[0].imshow(sample.rgb)
        axes[0].set_title(sample.stem, fontsize=8)
        axes[1].imshow(shown, cmap="Spectral" if shown.ndim == 2 else None)
        axes[1].set_title(emap.title, fontsize=8)
        vmax = float(np.nanpercentile(err, 95)) if np.isfinite(err).any() else 1.0
        im = axes[2].imshow(err, cmap="inferno", vmin=0, vmax=max(vmax, 1e-6))
        axes[2].set_title(label, fontsize=8)
        fig.colorbar(im, ax=axes[2], fraction=0.046)
        for a in axes:
            a.axis("off")
        written.append(_save(fig, plots_dir / f"error_{sample.stem}.png"))
        plt.close(fig)
    metric = task.main_metric_key()
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

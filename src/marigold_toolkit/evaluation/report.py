"""Aggregation and report files: JSON (dataset means), per-image CSV, Markdown table with published numbers."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ..core import metrics
from ..core.atomic import atomic_write_bytes
from .published import published_rows


def mean_over_images(rows: list[dict[str, Any]], keys: list[str] | None = None) -> dict[str, float]:
    """Dataset means (every image weighs the same), restricted to ``keys`` when given; ``{}`` for no rows."""
    if not rows:
        return {}
    means = metrics.mean_over_images(rows)
    return {k: means[k] for k in keys if k in means} if keys is not None else means


def _json_safe(obj: Any) -> Any:
    """Non-finite floats (e.g. the infinite PSNR of an exact prediction) become ``None``: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def nest_targets(means: dict[str, float]) -> dict[str, Any]:
    """``{"albedo/psnr": x}`` -> ``{"albedo": {"psnr": x}}``; plain keys stay."""
    out: dict[str, Any] = {}
    for k, v in means.items():
        if "/" in k:
            target, metric = k.split("/", 1)
            out.setdefault(target, {})[metric] = v
        else:
            out[k] = v
    return out


def write_json(path: Path, report: dict[str, Any]) -> None:
    data = json.dumps(_json_safe(report), indent=2, sort_keys=False, default=str, allow_nan=False).encode()
    atomic_write_bytes(path, data + b"\n")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_bytes(path, buf.getvalue().encode())


def _fmt(metric: str, v: float | None) -> str:
    if v is None:
        return "-"
    if metric.startswith(("abs_rel", "sq_rel", "delta", "within")) or metric.endswith(("abs_rel", "delta1")):
        return f"{100 * v:.1f}"  # papers print percent
    return f"{v:.2f}"


def markdown_table(benchmark: str, ours: dict[str, float], settings: dict[str, Any], label: str = "ours",
                   metrics: list[str] | tuple[str, ...] | None = None, setting: str | None = None) -> str:
    """Our means next to the published rows of ``benchmark`` (percent for fractions, as the papers print).

    Columns: the published rows' metrics, else ``metrics``, else our first six; ``setting`` describes our row
    (default ``"<steps> steps x <ensemble>"`` from ``settings``)."""
    rows = published_rows(benchmark)
    names: list[str] = []
    for _, _, vals, _ in rows:
        names += [m for m in vals if m not in names]
    if not names:
        names = ([m for m in metrics if m in ours] if metrics else []) or list(ours)[:6]
    metrics = names
    head = "| method | settings | " + " | ".join(metrics) + " | source |"
    sep = "|" + "---|" * (len(metrics) + 3)
    if setting is None:
        setting = f"{settings.get('num_inference_steps', '?')} steps x {settings.get('ensemble_size', '?')}"
    lines = [head, sep, f"| **{label}** | {setting} | " + " | ".join(_fmt(m, ours.get(m)) for m in metrics) +
             " | this run |"]
    for method, s, vals, src in rows:
        lines.append(f"| {method} | {s} | " + " | ".join(_fmt(m, vals.get(m)) for m in metrics) + f" | {src} |")
    note = ("Fractions are shown in percent (AbsRel x100, delta1 %, within-11.25 %); errors in degrees / dB. "
            "Published rows are the papers' numbers, not re-runs.")
    if "tae" in metrics:
        note += " TAE is in percent as computed (Video Depth Anything's definition)."
    return f"## {benchmark}\n\n" + "\n".join(lines) + f"\n\n{note}\n"


def write_markdown(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())

"""Writing predictions to files with the CLI's fixed names (see README "Output files")."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..visualize import colorize_depth, depth_to_uint16, intrinsic_to_rgb, normals_to_rgb, uncertainty_heatmap
from .atomic import atomic_write


def output_names(task: str, target_names: list[str], stem: str, with_uncertainty: bool) -> list[str]:
    """File names written for one input. Depth: ``<stem>_depth.npy/.png/_colored.png``; normals:
    ``<stem>_normals.npy/.png``; intrinsics: ``<stem>_<target>.npy/.png``; plus ``_uncertainty.npy/.png``."""
    names: list[str] = []
    for t in target_names:
        names += [f"{stem}_{t}.npy", f"{stem}_{t}.png"]
        if task == "depth":
            names.append(f"{stem}_{t}_colored.png")
        if with_uncertainty:
            names += [f"{stem}_{t}_uncertainty.npy", f"{stem}_{t}_uncertainty.png"]
    return names


def save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, np.asarray(array, dtype=np.float32), allow_pickle=False))


def save_png(path: Path, array: np.ndarray) -> None:
    """uint8 ``HxW``/``HxWx3`` or uint16 ``HxW`` (16-bit grey) -> PNG, atomically."""
    img = Image.fromarray(array)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def preview_image(task: str, name: str, array: np.ndarray, target_properties: dict[str, Any] | None = None):
    """The uint8 RGB visualisation of one target."""
    if task == "depth":
        return colorize_depth(array)
    if task == "normals":
        return normals_to_rgb(array)
    return intrinsic_to_rgb(array, (target_properties or {}).get(name))


def write_prediction(out_dir: Path, stem: str, output, target_properties: dict[str, Any] | None = None) -> list[Path]:
    """Write every file of :func:`output_names` for ``output`` (a :class:`MarigoldOutput`); returns the paths."""
    out_dir = Path(out_dir)
    written = []
    for name, arr in output.targets.items():
        base = out_dir / f"{stem}_{name}"
        save_npy(base.with_name(base.name + ".npy"), arr)
        if output.task == "depth":
            save_png(base.with_name(base.name + ".png"), depth_to_uint16(arr))
            save_png(base.with_name(base.name + "_colored.png"), colorize_depth(arr))
            written += [base.with_name(base.name + s) for s in (".npy", ".png", "_colored.png")]
        else:
            save_png(base.with_name(base.name + ".png"), preview_image(output.task, name, arr, target_properties))
            written += [base.with_name(base.name + s) for s in (".npy", ".png")]
        if output.uncertainty is not None:
            unc = output.uncertainty[name]
            save_npy(base.with_name(base.name + "_uncertainty.npy"), unc)
            save_png(base.with_name(base.name + "_uncertainty.png"), uncertainty_heatmap(unc))
            written += [base.with_name(base.name + s) for s in ("_uncertainty.npy", "_uncertainty.png")]
    return written


def write_preview(out_dir: Path, stem: str, image: np.ndarray, output,
                  target_properties: dict[str, Any] | None = None) -> Path:
    """``<stem>_preview.png``: the input next to the visualisation of every target (same height).

    ``output`` may be a list of outputs of several models for the same image (``target_properties`` then a
    list of the same length): their panels follow each other in order."""
    from ..visualize import side_by_side

    outputs = list(output) if isinstance(output, (list, tuple)) else [output]
    props = list(target_properties) if isinstance(target_properties, (list, tuple)) else [target_properties]
    props = props if len(props) == len(outputs) else [props[0]] * len(outputs)
    panels = []
    for out, prop in zip(outputs, props):
        for name, arr in out.targets.items():
            panels.append(preview_image(out.task, name, arr, prop))
    h, w = panels[0].shape[:2]
    rgb = np.asarray(image)
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb.astype(np.float32) / (65535.0 if rgb.dtype == np.uint16 else 1.0), 0, 1) * 255)
        rgb = rgb.astype(np.uint8)
    rgb = np.asarray(Image.fromarray(rgb[..., :3]).resize((w, h), Image.BILINEAR))
    path = Path(out_dir) / f"{stem}_preview.png"
    save_png(path, side_by_side(rgb, *panels))
    return path

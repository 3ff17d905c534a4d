"""What ``POST /v1/predict`` answers: JSON with base64 16-bit PNGs, an ``.npz`` of float32 arrays, or one PNG."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from ..io.files import png16_bytes
from ..tasks import Task

#: the values of the ``output`` form field
OUTPUT_KINDS = ("json", "npz", "png16")


def encoded_map(array: np.ndarray, value_range: tuple[float, float]) -> dict[str, Any]:
    """One map as JSON: the base64 of its 16-bit PNG, the value range 0..65535 encodes, and its shape.

    Decode with ``lo + png / 65535 * (hi - lo)`` (:func:`marigold_toolkit.io.files.read_png16` does it).
    """
    return {"png16": base64.b64encode(png16_bytes(array, value_range)).decode("ascii"),
            "range": [float(value_range[0]), float(value_range[1])], "shape": list(array.shape)}


def json_answer(output: Any, task: Task, meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON body for ``output`` (a :class:`~marigold_toolkit.pipeline.outputs.MarigoldOutput`); ``meta``
    holds ``model``, ``settings`` and ``timing_ms``."""
    h, w = output.input_size
    body = {"model": meta["model"], "task": task.name, "width": int(w), "height": int(h),
            "settings": meta["settings"],
            "targets": {name: encoded_map(a, task.value_range) for name, a in output.targets.items()}}
    if output.uncertainty is not None:
        body["uncertainty"] = {name: encoded_map(u, task.uncertainty_range) for name, u in output.uncertainty.items()}
    body["timing_ms"] = meta["timing_ms"]
    return body


def npz_answer(output: Any) -> bytes:
    """float32 arrays: one per target (``depth``, ``normals``, ``albedo``, ...) and ``<target>_uncertainty``."""
    arrays = {name: np.asarray(a, dtype=np.float32) for name, a in output.targets.items()}
    for name, u in (output.uncertainty or {}).items():
        arrays[f"{name}_uncertainty"] = np.asarray(u, dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def png16_answer(output: Any, task: Task, target: str) -> bytes:
    """The 16-bit PNG of one target (grey for one channel, RGB for three), in the task's value range."""
    return png16_bytes(output.targets[target], task.value_range)

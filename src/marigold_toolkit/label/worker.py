"""One model in one process: image bytes -> decoded images -> predictions -> encoded rows.

:func:`decode_image` runs where the bytes are read (a Ray Data task, or the local engine's reader thread);
:class:`Labeller` holds one :class:`~marigold_toolkit.pipeline.predictor.Predictor` (one per Ray actor, one per
local process) and turns a batch of decoded images into :class:`~.records.LabelRow` s or
:class:`~.records.Failure` s. Each image is predicted with its own seed (:func:`~.records.image_seed`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.images import ImageReadError, load_image
from ..pipeline.predictor import Predictor
from .records import (
    Failure,
    InferenceSettings,
    LabelRow,
    content_sha256,
    image_seed,
    output_columns,
    prepare_output,
)

logger = logging.getLogger(__name__)


@dataclass
class Decoded:
    """An input after reading and decoding: its key, the SHA-256 of its bytes, the image (``H x W x 3`` uint8,
    uint16 or float32, as :func:`~marigold_toolkit.io.images.load_image` gives it) or a one-line ``error``; and
    its output ``stem`` (files layout)."""

    key: str
    sha256: str = ""
    image: np.ndarray | None = None
    error: str | None = None
    stem: str = ""


def decode_image(key: str, data: bytes | None, read_error: str | None, max_pixels: int, stem: str = "") -> Decoded:
    """Hash and decode one input's bytes (``read_error``: why there are none)."""
    if data is None:
        return Decoded(key, error=read_error or "cannot be read", stem=stem)
    sha = content_sha256(data)
    try:
        return Decoded(key, sha, load_image(data, max_pixels=max_pixels), stem=stem)
    except ImageReadError as exc:
        return Decoded(key, sha, error=str(exc), stem=stem)


@dataclass
class WorkerConfig:
    """What a worker needs to build its :class:`Labeller` (small and picklable: it travels to Ray actors).

    ``fmt``: ``"parquet"`` (rows carry encoded outputs) or ``"files"`` (the worker writes ``marigold predict``'s
    files into ``out_dir`` and rows name them); ``threads``: torch CPU threads (``None``: leave as is)."""

    model: str
    settings: InferenceSettings
    fmt: str = "parquet"
    out_dir: str | None = None
    threads: int | None = None


class Labeller:
    """One loaded model: :meth:`label` turns decoded images into rows (or failures)."""

    def __init__(self, config: WorkerConfig, predictor: Predictor | None = None):
        if config.threads:
            torch.set_num_threads(int(config.threads))
        self.config = config
        self.settings = config.settings
        self.predictor = predictor or Predictor.from_pretrained(config.model, **config.settings.predictor_kwargs())
        self.columns = output_columns(self.predictor.task, self.settings.with_uncertainty)

    def label(self, batch: list[Decoded], finish: bool = True) -> list[LabelRow | Failure]:
        """Results for ``batch``, in order: decode failures pass through; the rest are predicted together
        (``settings.batch_size`` rows per model call), each with its own seed. Rows carry their encoded outputs,
        or with ``finish=False`` the prepared values (:meth:`LabelRow.finish` encodes them later, elsewhere)."""
        results: list[LabelRow | Failure | None] = [None] * len(batch)
        todo = []
        for i, d in enumerate(batch):
            if d.error is not None or d.image is None:
                results[i] = Failure(d.key, d.error or "cannot be decoded")
            else:
                todo.append(i)
        if todo:
            seeds = [image_seed(self.settings.seed, batch[i].sha256) for i in todo]
            try:
                outs = self.predictor.predict([batch[i].image for i in todo], seed=seeds,
                                              **self.settings.predict_kwargs())
            except (ValueError, RuntimeError, MemoryError) as exc:
                reason = f"prediction failed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                for i in todo:
                    results[i] = Failure(batch[i].key, reason)
            else:
                for i, seed, out in zip(todo, seeds, outs):
                    results[i] = self._row(batch[i], seed, out, finish)
        return results  # type: ignore[return-value]

    def _row(self, d: Decoded, seed: int, out: Any, finish: bool) -> LabelRow | Failure:
        h, w = d.image.shape[:2]
        row = LabelRow(d.key, d.sha256, int(w), int(h), seed)
        if self.config.fmt == "files":
            try:
                paths = self.predictor.task.write_outputs(Path(self.config.out_dir), d.stem, out)
            except OSError as exc:
                return Failure(d.key, f"cannot write outputs ({exc.strerror or exc})")
            row.files = [p.name for p in paths]
        else:
            row.prepared = prepare_output(self.columns, out)
            if finish:
                row.finish(self.columns)
        return row

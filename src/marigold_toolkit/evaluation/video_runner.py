"""Video benchmark runner: the video pipeline per sequence (cached), whole-sequence scoring, reports.

Each sequence runs through :func:`~marigold_toolkit.video.job.run_video` (latent-init, rolling or independent mode)
into ``<output_dir>/predictions/<key>/`` — ``key`` hashes the checkpoint identity, the video settings and the
benchmark — as ``<stem>_<target>.npy`` (float32 ``[T, H, W]`` in [0, 1], the one scale and shift of the clip in
``<stem>_<target>.json``), the files ``marigold video`` writes. A finished sequence is not predicted again and a
killed run continues inside its unfinished sequence (the video job's work folder). Scoring is the task's
:meth:`~marigold_toolkit.tasks.base.Task.score_video` under the benchmark's protocol: one alignment for the whole
sequence in the prediction's own space, metrics per frame averaged over the frames, TAE where the sequence has
cameras; the dataset value of each metric is the mean over the sequences.

Reports (``output_dir``): ``report.json`` (dataset means, settings, counts), ``per_sequence.csv`` (one row per
sequence: stem, frames, metrics; the CSV conventions of :func:`~.report.write_csv`) and ``report.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..core.metrics import EmptyMaskError
from ..io.video import ArrayFrameSource
from ..video.job import VideoSettings, output_names, run_video, settings_key_record
from .datasets.video import VideoBenchmark
from .report import markdown_table, mean_over_images, nest_targets, write_csv, write_json, write_markdown
from .runner import _fingerprint

logger = logging.getLogger(__name__)


def video_cache_key(predictor: Any, settings: VideoSettings, benchmark: VideoBenchmark) -> str:
    payload = json.dumps({"model": _fingerprint(predictor), "video": settings_key_record(settings),
                          "benchmark": benchmark.name}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def settings_label(settings: VideoSettings, preset: str | None = None) -> str:
    """Our row's settings in ``report.md``: the mode, the preset and the steps."""
    steps = settings.rolling.steps if settings.mode == "rolling" else settings.steps
    if steps is None and settings.mode == "latent-init":
        steps = 1  # the mode's default (independent frames: the checkpoint's)
    label = settings.mode + (f" ({preset})" if preset else "")
    return label + (f", {steps} step{'s' * (steps != 1)}" if steps is not None else "")


def evaluate_video_benchmark(
    benchmark: VideoBenchmark,
    predictor: Any,
    output_dir: str | Path,
    settings: VideoSettings,
    alignment: str | None = None,
    max_samples: int | None = None,
    preset: str | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Predict every sequence of ``benchmark`` with the video pipeline (``settings``; cached), score it and write
    ``report.json``, ``per_sequence.csv`` and ``report.md`` to ``output_dir`` (module docstring). ``alignment``
    overrides the protocol's (least squares in the prediction's own space); ``preset`` is recorded only."""
    task = predictor.task
    if not getattr(task, "supports_video", False) or task.name != benchmark.task:
        raise ValueError(f"video benchmark '{benchmark.name}' evaluates {benchmark.task} models that "
                         f"`marigold video` runs; the model predicts {task.name}")
    alignment = alignment or task.evaluation_alignment(benchmark.alignment)
    settings = replace(settings, write_png=False, write_mp4=False)  # the cache holds the arrays and sidecars
    target = task.target_names[0]
    output_dir = Path(output_dir)
    cache = output_dir / "predictions" / video_cache_key(predictor, settings, benchmark)
    cache.mkdir(parents=True, exist_ok=True)
    record = {"model": predictor.spec.source, "benchmark": benchmark.name, "preset": preset,
              **settings_key_record(settings)}
    write_json(cache / "settings.json", record)

    n = len(benchmark) if max_samples is None else min(max_samples, len(benchmark))
    rows, excluded = [], []
    computed, t_infer = 0, 0.0
    for i in tqdm(range(n), desc=f"{benchmark.name}: sequences", unit="seq", disable=not show_progress):
        sample = benchmark[i]
        names = output_names(sample.stem, target)
        if not all((cache / names[k]).is_file() for k in ("npy", "json")):
            t0 = time.perf_counter()
            source = ArrayFrameSource(sample.frames, sample.stem, fps=benchmark.fps,
                                      path=benchmark.describe(sample.meta["sequence"]))
            run_video(predictor, source, cache, settings, show_progress=show_progress)
            t_infer += time.perf_counter() - t0
            computed += 1
        pred = np.load(cache / names["npy"])
        if pred.shape[0] != sample.num_frames:
            raise ValueError(f"{cache / names['npy']}: {pred.shape[0]} predicted frames but the sequence has "
                             f"{sample.num_frames}; delete the file to predict it again")
        try:
            metrics, _ = task.score_video({target: pred}, sample.gt, **benchmark.scoring_options(sample, alignment))
        except EmptyMaskError:
            excluded.append(sample.stem)
            continue
        rows.append({"stem": sample.stem, "frames": sample.num_frames, **metrics})
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in ("stem", "frames") and k not in keys]
    means = mean_over_images(rows, keys)
    report = {
        "benchmark": benchmark.name,
        "task": benchmark.task,
        **nest_targets(means),
        "num_sequences": len(rows),
        "num_frames": int(sum(r["frames"] for r in rows)),
        "num_sequences_with_tae": sum("tae" in r for r in rows),
        "num_excluded_no_valid_pixels": len(excluded),
        "excluded_no_valid_pixels": excluded,
        "settings": {"model": predictor.spec.source, "alignment": alignment, "min_depth": benchmark.min_depth,
                     "max_depth": benchmark.max_depth, "dtype": str(predictor.dtype).replace("torch.", ""),
                     "preset": preset, **settings_key_record(settings)},
        "prediction_cache": str(cache),
        "num_predicted_this_run": computed,
        "inference_seconds_this_run": round(t_infer, 3),
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "report.json", report)
    write_csv(output_dir / "per_sequence.csv", rows)
    write_markdown(output_dir / "report.md", markdown_table(benchmark.name, means, report["settings"],
                                                           metrics=task.video_report_keys,
                                                           setting=settings_label(settings, preset)))
    return report

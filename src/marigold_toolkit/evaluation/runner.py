"""Benchmark runner: inference with an on-disk prediction cache, protocol scoring, reports.

Predictions are cached under ``<output_dir>/predictions/<key>/`` where ``key`` hashes the checkpoint identity and
every inference setting, in the same file format ``marigold predict`` writes (so the cache is also a valid
``--predictions`` folder). Re-scoring is free, and an interrupted run resumes with the missing images only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..core.metrics import EmptyMaskError
from ..io.files import save_npy
from ..tasks import ensembling_kwargs, get_task
from .datasets.base import Benchmark, EvalSample
from .plots import write_plots
from .report import markdown_table, mean_over_images, nest_targets, write_csv, write_json, write_markdown

logger = logging.getLogger(__name__)


@dataclass
class InferenceSettings:
    num_inference_steps: int | None
    ensemble_size: int
    processing_resolution: int
    seed: int
    batch_size: int = 1
    resample_method: str = "bilinear"
    noise: str | None = None  # None: the checkpoint's initial noise
    reduction: str | None = None  # None: the task's default
    ensembling_method: str | None = None  # None: the task's default

    #: fields left out of :meth:`as_dict` while unset, so cache keys of runs without them stay as they were
    OPTIONAL = ("noise", "reduction", "ensembling_method")

    def as_dict(self) -> dict[str, Any]:
        """The settings (the ``OPTIONAL`` ones only when set)."""
        return {k: v for k, v in self.__dict__.items() if not (k in self.OPTIONAL and v is None)}

    @property
    def ensembling_kwargs(self) -> dict[str, str] | None:
        """:meth:`Predictor.predict`'s ``ensembling_kwargs`` of ``reduction`` and ``ensembling_method``."""
        return ensembling_kwargs(self.reduction, self.ensembling_method)


def resolve_settings(benchmark: Benchmark, steps=None, ensemble=None, processing_resolution=None, seed=None,
                     batch_size=1, resample=None, noise=None, zero_noise: bool = False, reduction=None,
                     ensembling_method=None) -> InferenceSettings:
    """The benchmark's protocol settings, each overridable. ``zero_noise``: the model runs from a zero latent (an
    end-to-end fine-tuned model), so its protocol is one step and no ensemble unless ``steps``/``ensemble`` say."""
    d = benchmark.inference
    protocol_steps, protocol_ensemble = (1, 1) if zero_noise else (d.num_inference_steps, d.ensemble_size)
    return InferenceSettings(
        num_inference_steps=steps if steps is not None else protocol_steps,
        ensemble_size=ensemble if ensemble is not None else protocol_ensemble,
        processing_resolution=processing_resolution if processing_resolution is not None else d.processing_resolution,
        seed=seed if seed is not None else d.seed,
        batch_size=batch_size,
        resample_method=resample or d.resample_method,
        noise=noise,
        reduction=reduction,
        ensembling_method=ensembling_method,
    )


def _fingerprint(predictor) -> dict[str, Any]:
    """Checkpoint identity: source, model_index and the weight files' names, sizes and mtimes."""
    spec = predictor.spec
    files = sorted(
        (str(p.relative_to(spec.path)), p.stat().st_size, int(p.stat().st_mtime))
        for p in spec.path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".json")
    )
    return {"source": spec.source, "model_index": spec.model_index, "files": files,
            "dtype": str(predictor.dtype), "scheduler": predictor.scheduler.config.get("_class_name")}


def cache_key(predictor, settings: InferenceSettings, benchmark: Benchmark) -> str:
    payload = json.dumps({"model": _fingerprint(predictor), "settings": settings.as_dict(),
                          "benchmark": benchmark.name}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _pred_files(task, cache: Path, stem: str) -> dict[str, Path]:
    return {name: cache / task.array_file(stem, name) for name in task.target_names}


def run_inference(benchmark: Benchmark, predictor, settings: InferenceSettings, cache: Path, task,
                  max_samples: int | None = None, show_progress: bool = True) -> int:
    """Predict every sample whose cached prediction (``task``'s files) is missing; returns how many were
    computed."""
    cache.mkdir(parents=True, exist_ok=True)
    n = len(benchmark) if max_samples is None else min(max_samples, len(benchmark))
    computed = 0
    for i in tqdm(range(n), desc=f"{benchmark.name}: inference", disable=not show_progress):
        sample = benchmark[i]
        files = _pred_files(task, cache, sample.stem)
        if all(p.is_file() for p in files.values()):
            continue
        for name, arr in benchmark.predict(predictor, sample, settings).items():
            save_npy(files[name], arr)
        computed += 1
    return computed


def score_sample(benchmark: Benchmark, sample: EvalSample, preds: dict[str, np.ndarray], task,
                 alignment: str | None = None):
    """Protocol scoring of one sample by ``task``; returns ``(metrics, aux)`` (aux: the aligned depth, or
    ``None``)."""
    return task.score(preds, sample.gt, **benchmark.scoring_options(sample, alignment))


def evaluate_benchmark(
    benchmark: Benchmark,
    predictor,
    output_dir: str | Path,
    settings: InferenceSettings,
    alignment: str | None = None,
    max_samples: int | None = None,
    plots: bool = False,
    plot_images: int = 4,
    plot_stems: list[str] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run inference (cached), score every sample and write ``report.json``, ``per_image.csv``, ``report.md``.

    With ``plots``: error maps for ``plot_stems`` (or the first ``plot_images`` samples) and a histogram."""
    needed = benchmark.model_task or benchmark.task
    if predictor.task.name != needed:
        raise ValueError(f"benchmark '{benchmark.name}' evaluates {needed} models but the model predicts "
                         f"{predictor.task.name}")
    task = predictor.task if needed == benchmark.task else get_task(benchmark.task)()
    # the benchmark's protocol as it applies to this model (a disparity model fits in disparity space)
    alignment = alignment or task.evaluation_alignment(benchmark.alignment)
    output_dir = Path(output_dir)
    key = cache_key(predictor, settings, benchmark)
    cache = output_dir / "predictions" / key
    cache.mkdir(parents=True, exist_ok=True)
    write_json(cache / "settings.json", {"model": predictor.spec.source, "benchmark": benchmark.name,
                                         **settings.as_dict()})
    t0 = time.perf_counter()
    computed = run_inference(benchmark, predictor, settings, cache, task, max_samples, show_progress)
    t_infer = time.perf_counter() - t0

    n = len(benchmark) if max_samples is None else min(max_samples, len(benchmark))
    rows, excluded, plot_data = [], [], []
    for i in tqdm(range(n), desc=f"{benchmark.name}: scoring", disable=not show_progress):
        sample = benchmark[i]
        preds = {name: np.load(p) for name, p in _pred_files(task, cache, sample.stem).items()}
        try:
            metrics, aligned = score_sample(benchmark, sample, preds, task, alignment)
        except EmptyMaskError:
            excluded.append(sample.stem)
            continue
        rows.append({"stem": sample.stem, **metrics})
        if plots and ((sample.stem in plot_stems) if plot_stems else len(plot_data) < plot_images):
            plot_data.append((sample, preds, aligned))
    means = mean_over_images(rows)
    report = {
        "benchmark": benchmark.name,
        "task": benchmark.task,
        **nest_targets(means),
        "num_images": len(rows),
        "num_excluded_no_valid_pixels": len(excluded),
        "excluded_no_valid_pixels": excluded,
        "settings": {"model": predictor.spec.source, "alignment": alignment or benchmark.alignment,
                     "min_depth": benchmark.min_depth, "max_depth": benchmark.max_depth,
                     "dtype": str(predictor.dtype).replace("torch.", ""), **settings.as_dict()},
        "prediction_cache": str(cache),
        "num_predicted_this_run": computed,
        "inference_seconds_this_run": round(t_infer, 3),
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "report.json", report)
    write_csv(output_dir / "per_image.csv", rows)
    write_markdown(output_dir / "report.md", markdown_table(benchmark.name, means, report["settings"]))
    if plots:
        report["plots"] = [str(p) for p in write_plots(output_dir, task, rows, plot_data)]
        write_json(output_dir / "report.json", report)
    return report

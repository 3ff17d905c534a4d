"""A labelling job from start to end: :func:`run_label_job` (what ``marigold label`` runs).

1. Read the checkpoint's configs (no weights) for its task, targets and defaults; fix the settings hash.
2. Expand the inputs (:mod:`.sources`), find the finished shards in the output folder (:mod:`.shards`) and
   refuse shards made with other settings; remove a killed run's temporaries.
3. Plan the remaining shards, run them on the engine (:mod:`.engines`); each shard is written when complete.
4. Rebuild ``OUT/manifest.json`` from all shards.

Under ``accelerate launch`` (``WORLD_SIZE`` > 1; local engine) every process plans the same shards from the same
inputs and folder state (after a barrier), takes every ``world_size``-th of them from its rank on, and process 0
writes the manifest after all are done; a rerun resumes as a single process does.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..checkpoints.loading import load_spec
from ..checkpoints.resolve import CheckpointError
from ..core.atomic import clean_stale_temporaries
from ..tasks import TaskError
from .engines import ENGINES, EngineError, RayOptions, run_local, run_ray
from .records import (
    FORMAT_VERSION,
    Failure,
    InferenceSettings,
    output_columns,
    result_settings,
    settings_hash,
)
from .shards import (
    BASE_COLUMNS,
    FORMATS,
    MANIFEST,
    ShardCollector,
    ShardError,
    ShardWriter,
    build_manifest,
    plan_shards,
    scan_finished,
    write_manifest,
)
from .sources import SourceError, expand_inputs
from .worker import WorkerConfig

logger = logging.getLogger(__name__)

#: the rule of :func:`~.records.image_seed`, as the manifest states it
SEED_RULE = ("first 8 bytes of sha256('marigold-label:{seed}:{sha256}') as a big-endian integer, top bit cleared; "
             "equals `marigold predict IMAGE --seed <that>`")


class LabelError(Exception):
    """A labelling job cannot start or run (bad option, model that cannot be found, shards of other settings in
    the output folder, missing optional package, too small a cluster). The message is meant for end users."""


@dataclass
class LabelJob:
    """What to label, with which model and settings, where, and on which engine.

    Attributes:
        inputs: files, folders, glob patterns, ``.txt`` lists, ``.parquet`` tables, fsspec URLs
            (:mod:`.sources`).
        output: the output folder (shards and ``manifest.json``).
        model: hub id, registry alias or local folder (one model).
        settings: the inference settings (:class:`~.records.InferenceSettings`).
        engine: ``"local"`` (this process; under ``accelerate launch`` one share per process) or ``"ray"``.
        format: ``"parquet"`` (``part-XXXXX.parquet`` shards) or ``"files"`` (``marigold predict``'s file
            layout, plus a ``part-XXXXX.json`` record per shard).
        shard_size: images per shard.
        ray: where and how wide the Ray pipeline runs.
        stems: the files layout's stem per input path (``marigold predict``'s rule,
            :func:`marigold_toolkit.cli.predict.assign_stems`); required for ``format="files"``.
    """

    inputs: Sequence[str]
    output: Path
    model: str
    settings: InferenceSettings = field(default_factory=InferenceSettings)
    engine: str = "local"
    format: str = "parquet"
    shard_size: int = 256
    ray: RayOptions = field(default_factory=RayOptions)
    stems: Callable[[list[Path]], list[str]] | None = None


@dataclass
class LabelSummary:
    """The outcome of a run: the manifest written (``manifest``: its content; written by process 0), what this
    run (this process) did: shards written, shards found finished, images labelled or failed now, seconds, the
    failures of this run, results dropped as repeats of a retried batch, and the process's rank."""

    manifest_path: Path | None
    manifest: dict[str, Any]
    shards_written: int
    shards_skipped: int
    images_done: int
    new_failures: list[Failure]
    seconds: float
    duplicates: int = 0
    rank: int = 0
    #: seconds of the engine's run (model loading, reading, prediction, writing), the rate's denominator
    engine_seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, str]]:
        """Every failed input of the job so far (``{"key", "reason"}``), from the manifest."""
        return list(self.manifest.get("failed", []))

    @property
    def images_per_second(self) -> float:
        return self.images_done / self.engine_seconds if self.engine_seconds > 0 else 0.0


def _distributed() -> tuple[int, int, Callable[[], None], str | None]:
    """``(rank, world size, barrier, device)`` of this process among those ``accelerate launch`` (or
    ``torchrun``) started (``WORLD_SIZE`` > 1: accelerate's process group, gloo on CPUs), else ``(0, 1, ...)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, lambda: None, None
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes != world:
        raise LabelError(f"WORLD_SIZE is {world} but accelerate set up {state.num_processes} process(es) "
                         f"({state.distributed_type}); each would label everything")
    return state.process_index, state.num_processes, state.wait_for_everyone, str(state.device)


def _check(job: LabelJob) -> None:
    s = job.settings
    problems = [
        (job.engine not in ENGINES, f"engine must be one of {', '.join(ENGINES)}, got {job.engine!r}"),
        (job.format not in FORMATS, f"format must be one of {', '.join(FORMATS)}, got {job.format!r}"),
        (job.shard_size < 1, f"--shard-size must be >= 1, got {job.shard_size}"),
        (job.ray.workers < 1, f"--workers must be >= 1, got {job.ray.workers}"),
        (job.ray.cpus_per_worker <= 0, f"--cpus-per-worker must be > 0, got {job.ray.cpus_per_worker:g}"),
        (job.ray.gpus_per_worker < 0, f"--gpus-per-worker must be >= 0, got {job.ray.gpus_per_worker:g}"),
        (job.engine == "local" and job.ray.workers != 1,
         "--workers applies to --engine ray; the local engine runs one model per process (for several processes "
         "on one machine use `accelerate launch -m marigold_toolkit.cli.main label ... --engine local`)"),
        (job.engine == "local" and job.ray.address is not None, "--address applies to --engine ray"),
        (job.format == "files" and job.stems is None, "the files layout needs a stem rule (LabelJob.stems)"),
        (s.ensemble_size < 1, f"--ensemble must be >= 1, got {s.ensemble_size}"),
        (s.batch_size < 1, f"--batch-size must be >= 1, got {s.batch_size}"),
    ]
    for bad, message in problems:
        if bad:
            raise LabelError(message)


def run_label_job(job: LabelJob, show_progress: bool | None = None) -> LabelSummary:
    """Run (or resume) ``job``; see the module docstring. ``show_progress``: tqdm bar over images (``None``: on
    a terminal). Raises :class:`LabelError` for problems that stop the job before or while it runs; failed
    inputs do not raise, they are in the summary and the manifest."""
    t0 = time.perf_counter()
    _check(job)
    if job.format == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401 - checked before any work: the shard writer needs it
        except ImportError as exc:
            raise LabelError('Parquet output needs pyarrow: pip install "marigold-toolkit[ray]" (or pyarrow), '
                             "or use --format files") from exc
    rank, world, barrier, device = _distributed()
    if world > 1 and job.engine != "local":
        raise LabelError("accelerate launch splits the work of --engine local; --engine ray brings its own workers")
    settings = job.settings
    if device is not None and settings.device is None:
        settings = replace(settings, device=device)
    try:
        spec = load_spec(job.model, variant=settings.variant, task=settings.task)
    except (CheckpointError, TaskError, OSError, ValueError) as exc:
        raise LabelError(str(exc)) from exc
    if settings.task and settings.task != spec.task.name:
        raise LabelError(f"--task {settings.task} but model '{job.model}' predicts {spec.task.name}")
    if settings.reduction:
        try:
            spec.task.check_reduction(settings.reduction)
        except ValueError as exc:
            raise LabelError(f"--reduction: {exc}") from exc
    if settings.ensembling_method:
        try:
            spec.task.check_ensembling_method(settings.ensembling_method)
        except ValueError as exc:
            raise LabelError(f"--ensembling-method: {exc}") from exc
    elif settings.fast:  # as Predictor(fast=True) would
        method = spec.task.resolve_ensembling(None, settings.ensemble_size, fast=True).get("method")
        settings = replace(settings, ensembling_method=method)
    result = result_settings(spec, settings)
    digest = settings_hash(result)
    columns = output_columns(spec.task, settings.with_uncertainty) if job.format == "parquet" else []
    clash = sorted({c.name for c in columns} & set(BASE_COLUMNS))
    if clash:
        raise LabelError(f"the model's outputs {clash} would overwrite columns of the same name")

    out = Path(job.output)
    if rank == 0:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LabelError(f"--output {out}: {exc.strerror or exc}") from exc
        removed = clean_stale_temporaries(out)
        if removed:
            logger.info("%s: removed %d temporary file(s) of an interrupted run", out, removed)
    barrier()  # nobody writes before every process has seen the same folder
    try:
        inputs = expand_inputs(job.inputs, exclude=out)
        finished = scan_finished(out, job.format)
    except (SourceError, ShardError) as exc:
        raise LabelError(str(exc)) from exc
    other = sorted({f.settings_hash for f in finished} - {digest})
    if other:
        raise LabelError(f"--output {out} holds shards made with other settings (settings {other[0][:12]}..., "
                         f"this job {digest[:12]}...); rerun with the same model and flags, or use another --output")
    stems = None
    if job.format == "files":
        keys = [item.key for item in inputs.items]
        stems = dict(zip(keys, job.stems([Path(k) for k in keys])))
    plan = plan_shards(inputs.items, job.shard_size, finished, stems)
    barrier()  # every process planned before any writes
    mine = plan[rank::world]
    logger.info("%d input(s), %d shard(s) finished, %d to do%s", len(inputs.items), len(finished), len(plan),
                f" ({len(mine)} on process {rank} of {world})" if world > 1 else "")

    writer = ShardWriter(out, job.format, str(spec.source), digest, columns)
    bar = tqdm(total=sum(len(s.items) for s in mine), desc="labelling", unit="img", disable=None
               if show_progress is None else not show_progress)
    collector = ShardCollector(mine, writer, on_result=bar.update)
    config = WorkerConfig(job.model, settings, job.format, str(out))
    t_engine = time.perf_counter()
    try:
        if job.engine == "ray":
            threads = max(1, round(job.ray.cpus_per_worker))
            run_ray(mine, replace(config, threads=threads), collector, job.ray, columns)
        else:
            run_local(mine, config, collector)
    except EngineError as exc:
        raise LabelError(str(exc)) from exc
    except (CheckpointError, TaskError) as exc:  # the local engine loads the weights here
        raise LabelError(str(exc)) from exc
    finally:
        bar.close()
    engine_seconds = time.perf_counter() - t_engine
    if not collector.complete:  # pragma: no cover - every engine delivers every planned key or raises
        raise LabelError("the engine finished without results for every input; rerun to resume")

    barrier()  # every shard of every process is on disk
    path = None
    finished_now = scan_finished(out, job.format)
    header = {
        "version": FORMAT_VERSION, "format": job.format, "model": str(spec.source), "task": spec.task.name,
        "targets": list(spec.task.target_names), "settings": result, "settings_hash": digest,
        "seed_rule": SEED_RULE, "shard_size": job.shard_size,
        "columns": {c.name: c.describe() for c in columns},
    }
    expansion_failed = [Failure(str(k), r) for k, r in inputs.failed]
    manifest = build_manifest(header, finished_now, expansion_failed, len(inputs.items) + len(inputs.failed))
    if rank == 0:
        path = write_manifest(out, manifest)
    seconds = time.perf_counter() - t0
    new_failures = (expansion_failed if rank == 0 else []) + collector.new_failures
    return LabelSummary(path, manifest, len(collector.written), len(finished), len(collector.seen), new_failures,
                        seconds, collector.duplicates, rank, engine_seconds)


__all__ = ["MANIFEST", "LabelError", "LabelJob", "LabelSummary", "run_label_job"]

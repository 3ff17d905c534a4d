"""The engines that run a shard plan: in this process (``local``), or as a Ray Data pipeline (``ray``).

Both feed every result to one :class:`~.shards.ShardCollector`, which writes each shard once, when it is complete.

The model's process or thread only predicts and quantises (:meth:`~.records.OutputColumn.prepare`); reading,
decoding and the PNG compression of the outputs (:meth:`~.records.OutputColumn.finish`: seconds of CPU for a
12 MP depth map, against tens of milliseconds of GPU time for the prediction at 768 px) run beside it. (The files
layout is the exception: its files are written by the model's process, as ``marigold predict`` writes them.)

**local**: the shards one after another; a reader thread reads and decodes the next ``batch_size`` images while
the model predicts the current ones, and a pool of one thread per core compresses the outputs.

**ray**: a Ray Data pipeline over the planned images (one input block per shard)::

    from_arrow(plan) -> map_batches(read) -> map_batches(decode) -> map_batches(LabelActor) -> map_batches(encode)
                        bytes, read error    sha256, pixels (npy)   actor pool: one model      PNG compression
                        (tasks)              (tasks, fused)         per actor, batched         (tasks)
                     -> driver: the collector, the single writer of shards

Read, decode and encode run as Ray tasks (one CPU each); prediction in a fixed pool of ``workers`` actors, each
loading one model (``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs reserved per actor). Results stream back
to the driver, which writes the shards. Killed workers are Ray Data's to recover, with its defaults: a dead actor is
restarted (``max_restarts=-1``) and its unfinished batches are resubmitted (``max_task_retries=-1``), failed read,
decode and encode tasks are retried (``max_retries=-1``) -- passing these as ``map_batches`` arguments is deprecated in
Ray 2.60, where they are the defaults. A result that arrives twice (a batch re-run after its first output was
already delivered) is dropped by the collector, so a key is written once.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from ..io.files import npy_bytes
from .records import Failure, LabelRow, OutputColumn
from .shards import Shard, ShardCollector
from .sources import Item, read_items
from .worker import Decoded, Labeller, WorkerConfig, decode_image

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: CPUs each Ray read/decode/encode task reserves
DECODE_CPUS = 1.0
#: inputs per call of the Ray read stage (Parquet rows of one row group are read together), at most a shard
READ_BATCH = 16


class EngineError(Exception):
    """The engine could not run the job (no Ray, too few cluster resources, workers that cannot load the model).
    Finished shards are kept; the message is meant for end users."""


# --- local ---------------------------------------------------------------------------------------------------------

def _read_decode(items: Sequence[Item], stems: Sequence[str], max_pixels: int) -> list[Decoded]:
    return [decode_image(item.key, data, err, max_pixels, stem)
            for item, stem, (data, err) in zip(items, stems, read_items(items))]


def run_local(shards: Sequence[Shard], config: WorkerConfig, collector: ShardCollector,
              labeller: Labeller | None = None) -> None:
    """Run ``shards`` in this process with one model (``labeller``, or one built from ``config``)."""
    if not shards:
        return
    labeller = labeller or Labeller(config)
    bs = max(1, config.settings.batch_size)
    chunks = [(s.items[i : i + bs], (s.stems or [""] * len(s.items))[i : i + bs])
              for s in shards for i in range(0, len(s.items), bs)]
    max_pixels = config.settings.max_pixels
    threads = max(1, os.cpu_count() or 1)
    encoding: deque = deque()  # rows being compressed, oldest first; bounded to keep memory flat
    with (ThreadPoolExecutor(max_workers=1, thread_name_prefix="label-read") as reader,
          ThreadPoolExecutor(max_workers=threads, thread_name_prefix="label-encode") as encoders):
        pending = reader.submit(_read_decode, *chunks[0], max_pixels)
        for k in range(len(chunks)):
            decoded = pending.result()
            if k + 1 < len(chunks):
                pending = reader.submit(_read_decode, *chunks[k + 1], max_pixels)
            for result in labeller.label(decoded, finish=False):
                if isinstance(result, LabelRow) and result.prepared:
                    encoding.append(encoders.submit(result.finish, labeller.columns))
                else:
                    collector.add(result)
            while len(encoding) > 2 * threads + bs:
                collector.add(encoding.popleft().result())
        while encoding:
            collector.add(encoding.popleft().result())


# --- ray -----------------------------------------------------------------------------------------------------------

@dataclass
class RayOptions:
    """Where and how wide the Ray pipeline runs: ``address`` of an existing cluster (``None``: start a local one
    on this machine), ``workers`` model actors with ``cpus_per_worker`` / ``gpus_per_worker`` each."""

    address: str | None = None
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


def _read_batch(table):
    """Ray task: the plan's rows -> ``key, stem, data`` (the file's bytes) and ``read_error``."""
    import pyarrow as pa

    items = [Item(k, s, r, c) for k, s, r, c in zip(*(table.column(n).to_pylist()
                                                      for n in ("key", "source", "row", "column")))]
    read = read_items(items)
    return pa.table({"key": table.column("key"), "stem": table.column("stem"),
                     "data": pa.array([d for d, _ in read], pa.binary()),
                     "read_error": pa.array([e for _, e in read], pa.string())})


def _decode_batch(table, max_pixels: int):
    """Ray task: ``data`` -> ``sha256``, ``pixels`` (the decoded image as ``.npy`` bytes, its own dtype) or
    ``error``."""
    import pyarrow as pa

    decoded = [decode_image(k, d, e, max_pixels, s) for k, d, e, s in zip(
        *(table.column(n).to_pylist() for n in ("key", "data", "read_error", "stem")))]
    return pa.table({"key": [d.key for d in decoded], "stem": [d.stem for d in decoded],
                     "sha256": [d.sha256 for d in decoded],
                     "pixels": pa.array([npy_bytes(d.image, d.image.dtype) if d.image is not None else None
                                         for d in decoded], pa.binary()),
                     "error": pa.array([d.error for d in decoded], pa.string())})


def results_table(results: Sequence[LabelRow | Failure], columns: Sequence[OutputColumn]):
    """Results as an Arrow table: ``key``, ``error`` (null when labelled), ``sha256``, ``width``, ``height``,
    ``seed``, ``files`` and one binary column per output: the encoded cell, or for a row with ``prepared`` values
    (what a :class:`LabelActor` returns) their ``.npy`` bytes, which :func:`_encode_batch` finishes."""
    import pyarrow as pa

    rows = [r if isinstance(r, LabelRow) else None for r in results]
    data = {
        "key": pa.array([r.key for r in results], pa.string()),
        "error": pa.array([r.reason if isinstance(r, Failure) else None for r in results], pa.string()),
        "sha256": pa.array([r.sha256 if r else None for r in rows], pa.string()),
        "width": pa.array([r.width if r else None for r in rows], pa.int32()),
        "height": pa.array([r.height if r else None for r in rows], pa.int32()),
        "seed": pa.array([r.seed if r else None for r in rows], pa.int64()),
        "files": pa.array([r.files if r else None for r in rows], pa.list_(pa.string())),
    }
    def cell(r: LabelRow | None, name: str) -> bytes | None:
        if r is None:
            return None
        if r.prepared:
            return npy_bytes(r.prepared[name], r.prepared[name].dtype)
        return r.outputs.get(name)

    for col in columns:
        data[col.name] = pa.array([cell(r, col.name) for r in rows], pa.binary())
    return pa.table(data)


def _encode_batch(table, columns: Sequence[OutputColumn]):
    """Ray task: the prepared values (``.npy`` cells) of each output column -> the encoded cells."""
    import pyarrow as pa

    for col in columns:
        cells = [col.finish(np.load(io.BytesIO(c), allow_pickle=False)) if c is not None else None
                 for c in table.column(col.name).to_pylist()]
        table = table.set_column(table.schema.get_field_index(col.name), col.name, pa.array(cells, pa.binary()))
    return table


def table_results(table, columns: Sequence[OutputColumn]) -> list[LabelRow | Failure]:
    """Inverse of :func:`results_table`."""
    cols = {n: table.column(n).to_pylist() for n in table.column_names}
    out: list[LabelRow | Failure] = []
    for i, key in enumerate(cols["key"]):
        if cols["error"][i] is not None:
            out.append(Failure(key, cols["error"][i]))
        else:
            out.append(LabelRow(key, cols["sha256"][i], cols["width"][i], cols["height"][i], cols["seed"][i],
                                outputs={c.name: cols[c.name][i] for c in columns if cols[c.name][i] is not None},
                                files=list(cols["files"][i] or [])))
    return out


class LabelActor:
    """A Ray Data actor: one model (:class:`Labeller`) for its lifetime; decoded batches -> result tables."""

    def __init__(self, config: WorkerConfig):
        self.labeller = Labeller(config)

    def __call__(self, table):
        decoded = [Decoded(k, sha, np.load(io.BytesIO(px), allow_pickle=False) if px is not None else None, err, s)
                   for k, sha, px, err, s in zip(*(table.column(n).to_pylist()
                                                   for n in ("key", "sha256", "pixels", "error", "stem")))]
        return results_table(self.labeller.label(decoded, finish=False), self.labeller.columns)


def _plan_table(shard: Shard):
    import pyarrow as pa

    return pa.table({
        "key": pa.array([i.key for i in shard.items], pa.string()),
        "source": pa.array([i.source for i in shard.items], pa.string()),
        "row": pa.array([i.row for i in shard.items], pa.int64()),
        "column": pa.array([i.column for i in shard.items], pa.string()),
        "stem": pa.array(shard.stems or [""] * len(shard.items), pa.string()),
    })


def _local_cluster_cpus(options: RayOptions) -> int:
    """Logical CPUs of a local cluster: the machine's, or enough for the actors and one decode task."""
    return max(os.cpu_count() or 1, math.ceil(options.workers * options.cpus_per_worker + DECODE_CPUS))


def _check_resources(ray, options: RayOptions, strict: bool) -> None:
    """Refuse (``strict``; else warn: a joined cluster may autoscale) a cluster whose CPUs or GPUs cannot hold the
    actors plus one read/decode task: Ray Data would wait for them forever."""
    try:
        _check_sizes(ray.cluster_resources(), options)
    except EngineError as exc:
        if strict:
            raise
        logger.warning("%s; waiting for the cluster to grow", exc)


def _check_sizes(have: dict, options: RayOptions) -> None:
    cpus, gpus = float(have.get("CPU", 0)), float(have.get("GPU", 0))
    need_cpus = options.workers * options.cpus_per_worker + DECODE_CPUS
    if cpus < need_cpus:
        raise EngineError(f"the Ray cluster has {cpus:g} CPUs; {options.workers} worker(s) x --cpus-per-worker "
                          f"{options.cpus_per_worker:g} plus {DECODE_CPUS:g} for reading and decoding need "
                          f"{need_cpus:g} (lower --workers or --cpus-per-worker)")
    need_gpus = options.workers * options.gpus_per_worker
    if gpus < need_gpus:
        raise EngineError(f"the Ray cluster has {gpus:g} GPUs; {options.workers} worker(s) x --gpus-per-worker "
                          f"{options.gpus_per_worker:g} need {need_gpus:g}")


def run_ray(shards: Sequence[Shard], config: WorkerConfig, collector: ShardCollector, options: RayOptions,
            columns: Sequence[OutputColumn]) -> None:
    """Run ``shards`` as a Ray Data pipeline (see the module docstring); ``columns``: the model's output columns.
    Uses the Ray runtime this process is already connected to; else joins ``options.address``, or starts a local
    cluster (stopped at the end)."""
    if not shards:
        return
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise EngineError('--engine ray needs Ray Data: pip install "marigold-toolkit[ray]"') from exc
    from ray.exceptions import RayError

    started = False
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, logging_level=logging.WARNING,
                      log_to_driver=logger.isEnabledFor(logging.INFO))
        try:
            if options.address:
                ray.init(address=options.address, **kwargs)
            else:
                ray.init(num_cpus=_local_cluster_cpus(options), **kwargs)
        except (ConnectionError, RayError, ValueError) as exc:
            raise EngineError(f"cannot start or join the Ray cluster ({str(exc).splitlines()[0]})") from exc
        started = True
    try:
        _check_resources(ray, options, strict=not options.address)
        if options.gpus_per_worker == 0 and config.settings.device is None:
            # an actor that reserved no GPU must not use one; Ray hides reserved GPUs only
            config = replace(config, settings=replace(config.settings, device="cpu"))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the collector's tqdm bar counts images
        ds = ray.data.from_arrow([_plan_table(s) for s in shards])
        # batches no larger than a shard: Ray Data would bundle several shards' blocks into one task otherwise,
        # and the model actors parallelise over these blocks
        largest = max(len(s.items) for s in shards)
        ds = ds.map_batches(_read_batch, batch_format="pyarrow", num_cpus=DECODE_CPUS,
                            batch_size=min(max(READ_BATCH, config.settings.batch_size), largest))
        ds = ds.map_batches(_decode_batch, batch_format="pyarrow", batch_size=config.settings.batch_size,
                            num_cpus=DECODE_CPUS, fn_kwargs={"max_pixels": config.settings.max_pixels})
        ds = ds.map_batches(LabelActor, batch_format="pyarrow", batch_size=config.settings.batch_size,
                            compute=ray.data.ActorPoolStrategy(size=options.workers),
                            num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker or None,
                            fn_constructor_kwargs={"config": config})
        if columns:
            ds = ds.map_batches(_encode_batch, batch_format="pyarrow", batch_size=config.settings.batch_size,
                                num_cpus=DECODE_CPUS, fn_kwargs={"columns": list(columns)})
        try:
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for result in table_results(table, columns):
                    collector.add(result)
        except RayError as exc:
            cause = str(exc).strip().splitlines()
            raise EngineError(f"the Ray pipeline failed: {cause[-1] if cause else type(exc).__name__}") from exc
    finally:
        if started:
            ray.shutdown()

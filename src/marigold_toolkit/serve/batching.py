"""Dynamic request batching: one inference thread per model gathers concurrent requests with the same settings.

A request waits at most ``max_wait_ms`` for companions; a batch holds at most ``max_batch`` requests, taken in
arrival order among those with the same :class:`BatchKey`. Each request keeps its own seed, so the noise it gets
does not depend on its batch neighbours; its result equals the same request served alone up to the float rounding
of batched kernels (bitwise with ``max_batch=1``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchKey:
    """The settings requests must share to run in one model call."""

    steps: int
    ensemble: int
    processing_resolution: int


@dataclass
class Job:
    """One request's work: an ``H x W x 3`` image, its seed and the future its answer arrives in."""

    image: np.ndarray
    key: BatchKey
    seed: int
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)
    #: filled in by the worker: seconds queued, seconds in the model call, requests in the call
    queued_s: float = 0.0
    inference_s: float = 0.0
    batch_size: int = 0


class QueueFull(Exception):
    """The server holds ``queue_size`` requests already (HTTP 429)."""


class Admission:
    """Counts the requests a server holds (queued or running, all models together) against ``queue_size``."""

    def __init__(self, queue_size: int):
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def enter(self) -> None:
        with self._lock:
            if self._held >= self.queue_size:
                raise QueueFull(f"the server holds {self._held} requests, its queue size; retry later")
            self._held += 1

    def leave(self) -> None:
        with self._lock:
            self._held -= 1


#: ``run(images, seeds, key) -> outputs``: the model call of one batch
RunBatch = Callable[[list[np.ndarray], list[int], BatchKey], list[Any]]


class ModelWorker:
    """The inference thread of one model.

    Args:
        name: the model's name (thread name, logs).
        run: the model call of one batch.
        max_batch: requests per call.
        max_wait_ms: how long the first request of a batch waits for companions.
        on_batch: called with the batch size after every call (metrics).
    """

    def __init__(self, name: str, run: RunBatch, max_batch: int = 4, max_wait_ms: float = 10.0,
                 on_batch: Callable[[int], None] | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.name, self.run, self.max_batch, self.max_wait = name, run, max_batch, max_wait_ms / 1000.0
        self.on_batch = on_batch
        self._pending: list[Job] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=f"marigold-{name}", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, job: Job) -> Future:
        with self._cond:
            if self._stop:
                raise RuntimeError(f"model {self.name} is shutting down")
            self._pending.append(job)
            self._cond.notify()
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Finish the queued jobs, then stop the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)

    def _take(self) -> list[Job] | None:
        """The next batch (blocks), or ``None`` once closed and empty."""
        with self._cond:
            while not self._pending:
                if self._stop:
                    return None
                self._cond.wait()
            key = self._pending[0].key
            deadline = self._pending[0].enqueued + self.max_wait
            while not self._stop:
                same = sum(1 for j in self._pending if j.key == key)
                left = deadline - time.perf_counter()
                if same >= self.max_batch or left <= 0:
                    break
                self._cond.wait(left)
            batch = [j for j in self._pending if j.key == key][: self.max_batch]
            taken = {id(j) for j in batch}
            self._pending = [j for j in self._pending if id(j) not in taken]
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            start = time.perf_counter()
            for job in batch:
                job.queued_s = start - job.enqueued
                job.batch_size = len(batch)
            try:
                outputs = self.run([j.image for j in batch], [j.seed for j in batch], batch[0].key)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
                logger.exception("model %s: a batch of %d failed", self.name, len(batch))
                for job in batch:
                    job.future.set_exception(exc)
                continue
            elapsed = time.perf_counter() - start
            if self.on_batch is not None:
                self.on_batch(len(batch))
            for job, out in zip(batch, outputs):
                job.inference_s = elapsed
                job.future.set_result(out)

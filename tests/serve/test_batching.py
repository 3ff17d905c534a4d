"""The batching worker and the admission counter, with a recording stand-in for the model call."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from marigold_toolkit.serve.batching import Admission, BatchKey, Job, ModelWorker, QueueFull

KEY_A, KEY_B = BatchKey(1, 1, 64), BatchKey(2, 1, 64)


class Recorder:
    """A model call that records each batch (the images' first pixel values, seeds and key) and answers
    ``seed * 10`` per image; ``gate`` holds the first call until it is set."""

    def __init__(self, gate: threading.Event | None = None, fail: bool = False):
        self.batches, self.gate, self.fail = [], gate, fail

    def __call__(self, images, seeds, key):
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(([int(im[0, 0, 0]) for im in images], list(seeds), key))
        if self.fail:
            raise RuntimeError("out of memory (simulated)")
        return [s * 10 for s in seeds]


def _job(i: int, key: BatchKey = KEY_A) -> Job:
    return Job(image=np.full((2, 2, 3), i, dtype=np.uint8), key=key, seed=i)


def test_concurrent_requests_batch_in_arrival_order_up_to_max_batch():
    gate = threading.Event()
    rec = Recorder(gate)
    worker = ModelWorker("m", rec, max_batch=3, max_wait_ms=50)
    first = worker.submit(_job(0))  # taken alone once its wait is over, then held at the gate
    time.sleep(0.2)
    futures = [worker.submit(_job(i)) for i in range(1, 8)]
    gate.set()
    assert [f.result(10) for f in [first, *futures]] == [i * 10 for i in range(8)]
    assert [b[0] for b in rec.batches] == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert all(b[1] == b[0] for b in rec.batches)  # each request keeps its own seed
    worker.close()


def test_different_settings_never_share_a_batch():
    gate = threading.Event()
    rec = Recorder(gate)
    worker = ModelWorker("m", rec, max_batch=4, max_wait_ms=20)
    worker.submit(_job(0))
    time.sleep(0.1)
    jobs = [_job(1), _job(2, KEY_B), _job(3), _job(4, KEY_B), _job(5)]
    futures = [worker.submit(j) for j in jobs]
    gate.set()
    for f in futures:
        f.result(10)
    assert [(b[0], b[2]) for b in rec.batches] == [([0], KEY_A), ([1, 3, 5], KEY_A), ([2, 4], KEY_B)]
    assert [j.batch_size for j in jobs] == [3, 2, 3, 2, 3]
    worker.close()


def test_a_lone_request_waits_max_wait_then_runs():
    rec = Recorder()
    worker = ModelWorker("m", rec, max_batch=8, max_wait_ms=150)
    t0 = time.perf_counter()
    assert worker.submit(_job(3)).result(10) == 30
    elapsed = time.perf_counter() - t0
    assert 0.14 <= elapsed < 2.0
    job = _job(4)
    worker.submit(job).result(10)
    assert job.queued_s >= 0.14 and job.batch_size == 1
    worker.close()


def test_a_full_batch_does_not_wait():
    rec = Recorder()
    worker = ModelWorker("m", rec, max_batch=1, max_wait_ms=5000)
    t0 = time.perf_counter()
    worker.submit(_job(1)).result(10)
    assert time.perf_counter() - t0 < 1.0
    worker.close()


def test_a_failed_call_fails_each_of_its_requests_and_the_worker_goes_on():
    gate = threading.Event()
    rec = Recorder(gate, fail=True)
    worker = ModelWorker("m", rec, max_batch=2, max_wait_ms=100)
    futures = [worker.submit(_job(i)) for i in range(2)]
    gate.set()
    for f in futures:
        with pytest.raises(RuntimeError, match="out of memory"):
            f.result(10)
    rec.fail = False
    assert worker.submit(_job(5)).result(10) == 50
    worker.close()


def test_close_finishes_what_is_queued_then_refuses():
    gate = threading.Event()
    rec = Recorder(gate)
    worker = ModelWorker("m", rec, max_batch=2, max_wait_ms=1)
    futures = [worker.submit(_job(i)) for i in range(5)]
    threading.Timer(0.2, gate.set).start()
    worker.close(timeout=10)
    assert [f.result(0) for f in futures] == [0, 10, 20, 30, 40]
    with pytest.raises(RuntimeError, match="shutting down"):
        worker.submit(_job(9))


def test_admission_counts_against_the_queue_size():
    adm = Admission(2)
    adm.enter()
    adm.enter()
    with pytest.raises(QueueFull, match="2 requests"):
        adm.enter()
    adm.leave()
    adm.enter()
    assert adm.held == 2
    with pytest.raises(ValueError):
        Admission(0)


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_wait_ms": -1}])
def test_bad_worker_settings(kwargs):
    with pytest.raises(ValueError):
        ModelWorker("m", Recorder(), **kwargs)

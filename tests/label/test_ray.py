"""``marigold label --engine ray`` on a local Ray cluster (2 CPUs, shared by the module): the same rows as
``--engine local`` and as ``marigold predict`` on each image alone, and a model worker killed with SIGKILL
mid-run."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit.io.files import read_png16
from marigold_toolkit.label.engines import RayOptions
from marigold_toolkit.label.job import LabelJob, run_label_job
from marigold_toolkit.label.records import InferenceSettings

from ..cli._helpers import predict_args, run_cli
from ._helpers import label_args, make_images, manifest, rows_by_key, torch_threads

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

#: two model actors of half a CPU each leave one CPU of the 2-CPU cluster to the read/decode tasks; an actor of
#: half a CPU runs torch with 1 thread, so the references run with 1 thread too (results change at float-rounding
#: level with the thread count)
RAY_FLAGS = ("--engine", "ray", "--workers", "2", "--cpus-per-worker", "0.5")


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    return make_images(tmp_path_factory.mktemp("ray-images"), 6, seed=50)


def test_ray_equals_local_and_predict(ray_cluster, images, depth_ckpt, tmp_path, capsys):
    inputs = [str(p) for p in images]
    rc, _, err = run_cli(capsys, *label_args(inputs, depth_ckpt, tmp_path / "ray", shard_size=2, extra=RAY_FLAGS))
    assert rc == 0, err
    with torch_threads(1):
        assert run_cli(capsys, *label_args(inputs, depth_ckpt, tmp_path / "local", shard_size=2))[0] == 0
        on_ray, local = rows_by_key(tmp_path / "ray"), rows_by_key(tmp_path / "local")
        assert set(on_ray) == set(inputs)
        assert on_ray == local  # every column, the PNG bytes included
        for path in images:
            ref = tmp_path / f"predict-{path.stem}"
            assert run_cli(capsys, *predict_args([str(path)], depth_ckpt, ref, seed=on_ray[str(path)]["seed"]))[0] == 0
            np.testing.assert_array_equal(read_png16(on_ray[str(path)]["depth"]),
                                          np.asarray(Image.open(ref / f"{path.stem}_depth.png")))
    m_ray, m_local = manifest(tmp_path / "ray"), manifest(tmp_path / "local")
    assert m_ray == m_local  # same settings hash, shards, counts
    assert m_ray["counts"] == {"inputs": 6, "labelled": 6, "failed": 0, "shards": 3}


def test_a_cluster_too_small_is_a_usage_error_not_a_hang(ray_cluster, images, depth_ckpt, tmp_path, capsys):
    args = label_args([str(images[0])], depth_ckpt, tmp_path / "o",
                      extra=("--engine", "ray", "--workers", "2", "--cpus-per-worker", "1"))
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2 and err.startswith("error: the Ray cluster has 2 CPUs; 2 worker(s) x --cpus-per-worker 1 plus 1")
    assert not list((tmp_path / "o").glob("part-*"))


def _children(pid: int) -> set[int]:
    """Every process descending from ``pid`` (from /proc)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def _label_actors() -> list[int]:
    """PIDs of this test's model actors (Ray names an actor process after its class)."""
    found = []
    for p in sorted(_children(os.getpid())):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("ray::") and "LabelActor" in cmd:
            found.append(p)
    return found


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_every_key_written_once(ray_cluster, depth_ckpt, tmp_path):
    paths = [str(p) for p in make_images(tmp_path / "in", 24, seed=200)]
    out = tmp_path / "labels"
    killed: dict = {}

    def kill_one_actor_when_a_shard_is_done():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            actors = _label_actors()
            if len(actors) == 2 and list(out.glob("part-*.parquet")):
                killed["shards_before"] = len(list(out.glob("part-*.parquet")))
                os.kill(actors[0], signal.SIGKILL)
                killed["pid"] = actors[0]
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_one_actor_when_a_shard_is_done, daemon=True)
    settings = InferenceSettings(num_inference_steps=1, processing_resolution=64, device="cpu")
    job = LabelJob(paths, out, str(depth_ckpt), settings, engine="ray", shard_size=2,
                   ray=RayOptions(workers=2, cpus_per_worker=0.5))
    watcher.start()
    summary = run_label_job(job, show_progress=False)
    watcher.join(timeout=5)
    assert "pid" in killed, "no model actor was found to kill"
    assert killed["shards_before"] < 12, "killed after the last shard: nothing to retry"
    assert summary.manifest["counts"] == {"inputs": 24, "labelled": 24, "failed": 0, "shards": 12}
    rows = rows_by_key(out)  # each key once
    assert set(rows) == set(paths)
    with torch_threads(1):
        ref = run_label_job(LabelJob(paths, tmp_path / "ref", str(depth_ckpt), settings, shard_size=2),
                            show_progress=False)
    assert ref.manifest["counts"]["labelled"] == 24
    assert rows == rows_by_key(tmp_path / "ref")

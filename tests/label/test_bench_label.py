"""The labelling benchmark's cost model and machine description (its measured part runs as a script)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_label.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPT.parent))  # it imports bench_inference as the scripts do
    try:
        spec = importlib.util.spec_from_file_location("bench_label", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_job_cost_is_flops_over_the_device_rate(bench):
    c = bench.job_cost(7.69, 1_000_000, 8, 200.0)
    assert c["s_per_photo"] == pytest.approx(7.69 / 200.0)
    assert c["device_hours"] == pytest.approx(1_000_000 * 7.69 / 200.0 / 3600)
    assert c["wall_hours"] == pytest.approx(c["device_hours"] / 8)
    assert c["photos_per_s"] == pytest.approx(8 * 200.0 / 7.69)


def test_the_machine_is_named_from_cpuinfo(bench):
    text = bench.cpu_description()
    assert text.split(",")[0] != "unknown CPU" or not Path("/proc/cpuinfo").exists()
    assert " cores, flags " in text

"""bench_inference.py: its variant syntax and order policy (in process), and two end-to-end runs on tiny
checkpoints (correctness of the table only: no timing asserts).

Every measurement of the script is a fresh subprocess that imports torch and diffusers (seconds each on one core),
so the end-to-end runs are few and each covers several things: one ``--quick`` run with every kind of variant
(eager, onnx, fast, a tiny decoder, a decoder that does not exist) and one ``--model`` run with two repeats.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_inference.py"
NUMERIC = {"ours s/img": r"\d+\.\d{3}", "diffusers s/img": r"\d+\.\d{3}", "speed-up": r"\d+\.\d\dx",
           "speed-up range": r"\d+\.\d\d-\d+\.\d\dx", "ours img/s": r"\d+\.\d\d", "ours peak MB": r"\d+",
           "diffusers peak MB": r"\d+", "ours warm-up s": r"\d+\.\d\d", "TFLOP/img": r"[\d.e+-]+",
           "ours GFLOP/s": r"\d+\.\d", "max abs diff": r"\d\.\de[+-]\d\d", "deviation": r"\d+\.\d\d%"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_inference_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One checkpoint cache for the module (the tiny random checkpoint is built once)."""
    return tmp_path_factory.mktemp("bench-cache")


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def _table(stdout: str, bench) -> list[dict]:
    """The table's rows as dicts; every line has exactly the table's columns."""
    lines = stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("| task |"))
    names = [c.strip() for c in lines[head].strip("|").split("|")]
    assert tuple(names) == bench.COLUMNS
    rows = []
    for ln in lines[head + 2:]:
        if ln.startswith("| "):
            cells = [c.strip() for c in ln.strip().strip("|").split("|")]
            assert len(cells) == len(names), ln
            rows.append(dict(zip(names, cells)))
    return rows


def _assert_numbers(row: dict) -> None:
    for column, pattern in NUMERIC.items():
        assert re.fullmatch(pattern, row[column]), (column, row[column])
    lo, hi = map(float, row["speed-up range"].rstrip("x").split("-"))
    assert lo <= float(row["speed-up"].rstrip("x")) <= hi


# -- in process -----------------------------------------------------------------------------------------------
def test_doctests(bench):
    result = doctest.testmod(bench, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_order_alternates_across_repeats(bench):
    assert [bench.run_order(3, r) for r in range(4)] == [[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 2, 3], [3, 2, 1, 0]]
    assert bench.run_order(0, 1) == [0]  # the reference alone


def test_variant_syntax(bench):
    import argparse

    def variants(ours=None, ours_backend="eager", ours_dtype=None, dtype="float32"):
        return bench._variants(argparse.Namespace(ours=ours, ours_backend=ours_backend, ours_dtype=ours_dtype,
                                                  dtype=dtype))

    V = bench.Variant
    assert variants() == [V("eager", False, "float32")]
    assert variants(ours_dtype="bfloat16") == [V("eager", False, "bfloat16")]  # --ours-dtype names the single one
    assert variants("eager,eager+cl:bfloat16,fast,fast@tiny,compile+cl@/a/b@c", ours_dtype="float16") == [
        V("eager", False, "float16"), V("eager", True, "bfloat16"), V("fast", False, None),
        V("fast", False, None, "tiny"), V("compile", True, "float16", "/a/b@c")]
    assert V("eager", True, "bfloat16", "tiny").label() == "eager+cl bfloat16 @tiny"
    assert V("fast", decoder="tiny", dtype=None).label({"dtype": "bfloat16", "channels_last": True,
                                                        "backend": "eager"}) == "fast (bfloat16+cl eager) @tiny"
    assert V("fast").label({"dtype": "float32", "autocast": "bfloat16", "channels_last": True,
                            "backend": "eager"}) == "fast (autocast-bfloat16+cl eager)"
    assert variants("eager+cl:autocast-bfloat16") == [V("eager", True, "autocast-bfloat16")]
    with pytest.raises(ValueError, match="dtype must be one of float32, float16, bfloat16, autocast-bfloat16"):
        variants("eager:int8")
    assert V("compile").label({"dtype": "float32", "backend": "eager"}) == "compile float32 (ran eager)"
    assert V("onnx").header_label("") == "float32 (onnx)"
    for bad, message in [("onnx:bfloat16", "float32 only"), ("onnx+cl", "backend must be"),
                         ("eager:float8", "dtype must be"), ("fast:bfloat16", "fast takes no"), ("eager@", "needs a"),
                         ("tensorrt", "backend must be"), (",", "names no variant")]:
        with pytest.raises(ValueError, match=message):
            variants(bad)


def test_failed_row_keeps_every_column(bench):
    line = bench.format_row(dict(task="depth", model="random tiny", cfg=dict(resolution=64, steps=1, ensemble=1,
                                                                          batch_size=1),
                                 variant="onnx float32", error="ModuleNotFoundError: No module named 'onnx'\n| x"))
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    assert len(cells) == len(bench.COLUMNS)
    assert cells[:7] == ["depth", "random tiny", "64", "1", "1", "1", "onnx float32"]
    assert cells[7] == "failed: ModuleNotFoundError: No module named 'onnx' / x"  # one line, no cell break
    assert set(cells[8:]) == {"failed"}


def test_medians_ranges_and_a_failing_reference_with_fake_workers(bench, monkeypatch, capsys, tmp_path):
    """The driver in process, with the worker subprocesses faked: speed-up = median of the repeats' paired
    ratios with their min-max, a reference that fails (in repeat 1) skips its configuration in one row, the
    other configuration still runs, exit status 1; --output holds what was printed."""
    import numpy as np

    import marigold_toolkit.pipeline.cost as cost

    started = []

    def fake_worker(cmd, result, what):
        opt = {k: v for k, v in zip(cmd, cmd[1:]) if k.startswith("--")}
        impl, repeat, res = opt["--impl"], int(opt["--repeat-index"]), int(opt["--resolution"])
        started.append((repeat, opt["--label"], res))
        if impl == "diffusers" and res == 32 and repeat == 1:
            return {"error": "RuntimeError: out of memory"}
        ran = {"dtype": "bfloat16", "channels_last": True, "backend": "eager"} if "--fast" in cmd else None
        seconds = 2.0 + repeat if impl == "diffusers" else 1.0
        info = {"time": seconds, "warmup": 0.5, "peak_mb": 100.0 + repeat, "ran": ran}
        return dict(info, pred=np.ones((1, 4, 4, 1), np.float32)) if "--save-prediction" in cmd else info

    target = bench.Target("depth", "fake", tmp_path, name="fake", default_resolution=64, describe="fake (depth)")
    monkeypatch.setattr(bench, "_run_worker_safe", fake_worker)
    monkeypatch.setattr(bench, "_targets", lambda args, size: [target])
    monkeypatch.setattr(cost, "inference_cost", lambda *a, **k: (_ for _ in ()).throw(OSError("no configs")))
    out = tmp_path / "table.md"
    rc = bench.main(["--model", "fake", "--ours", "eager,fast", "--resolutions", "32,64", "--steps", "1",
                     "--ensembles", "1", "--repeats", "2", "--device", "cpu", "--output", str(out)])
    printed = capsys.readouterr().out
    assert rc == 1 and out.read_text() == printed
    assert started == [(0, "diffusers", 32), (0, "eager float32", 32), (0, "fast", 32), (1, "fast", 32),
                       (1, "eager float32", 32), (1, "diffusers", 32),  # failed: the configuration stops
                       (0, "diffusers", 64), (0, "eager float32", 64), (0, "fast", 64), (1, "fast", 64),
                       (1, "eager float32", 64), (1, "diffusers", 64)]
    skipped, eager, fast = _table(printed, bench)
    assert (skipped["res"], skipped["ours"]) == ("32", "all")
    assert skipped["ours s/img"] == "failed: diffusers reference: RuntimeError: out of memory (configuration skipped)"
    assert fast["ours"] == "fast (bfloat16+cl eager)"
    for row in (eager, fast):
        assert row["res"] == "64" and row["ours s/img"] == "1.000" and row["diffusers s/img"] == "2.500"
        assert row["speed-up"] == "2.50x" and row["speed-up range"] == "2.00-3.00x"  # ratios 2/1 and 3/1
        assert row["ours peak MB"] == "101" and row["deviation"] == "0.00%"
        assert row["TFLOP/img"] == "n/a" and row["ours GFLOP/s"] == "n/a"  # a count that failed is not a failure


def test_bad_variant_is_a_usage_error(tmp_path):
    r = _run("--quick", "--ours", "onnx:bfloat16", timeout=300)
    assert r.returncode == 2 and "float32 only" in r.stderr


# -- end to end -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_quick_run_compares_every_kind_of_variant_and_survives_a_failing_one(tmp_path, cache, bench):
    """``--quick --ours eager,onnx,fast,eager@tiny,eager@/nonexistent/decoder``: one diffusers reference, a row
    per variant printed as it completes; eager is bit-exact at batch 1 (0.00%), ONNX within the fast tier's
    tolerance (or, without onnx/onnxruntime, a failed row), fast names what it ran, the tiny decoder counts its own
    FLOPs, the missing decoder is a ``failed:`` row (never started) and the exit status is 1."""
    from marigold_toolkit.pipeline.backends import FAST_TIER_ABSREL_TOL
    from marigold_toolkit.pipeline.cost import inference_cost

    out, log = tmp_path / "table.md", tmp_path / "order.log"
    r = _run("--quick", "--tasks", "depth", "--ensembles", "1", "--ours",
             "eager,onnx,fast,eager@tiny,eager@/nonexistent/decoder", "--cache", str(cache), "--output", str(out),
             "--order-log", str(log))
    assert r.returncode == 1, r.stderr[-3000:]  # one row failed; everything was printed
    assert out.read_text() == r.stdout
    header = r.stdout.splitlines()[0]
    assert header.startswith("Machine: ") and " cores, flags " in header and "torch threads" in header
    assert "GPU " in header and "diffusers 0." in header and "model random tiny depth-v1-1" in header
    assert "diffusers float32, ours float32 (eager), float32 (onnx), fast (" in header
    assert "median of 1 repeat after warm-up" in header and "alternating" in header
    rows = _table(r.stdout, bench)
    assert [row["ours"].split(" (")[0] for row in rows] == [
        "eager float32", "onnx float32", "fast", "eager float32 @tiny", "eager float32 @/nonexistent/decoder"]
    eager, onnx, fast, tiny, missing = rows
    for row in rows:
        assert (row["task"], row["model"], row["res"], row["steps"], row["ens"], row["batch"]) == (
            "depth", "random tiny", "64", "1", "1", "1")

    tflop = inference_cost(cache / "tiny-depth-v1-1", (48, 64), 64).total
    for row in (eager, fast, tiny):
        _assert_numbers(row)
        assert row["diffusers s/img"] == eager["diffusers s/img"]  # the same reference runs
        # GFLOP/s is computed from the unrounded latency: bound it by the interval the printed (rounded) cells allow
        to, tf = float(row["ours s/img"]), float(row["TFLOP/img"])
        tf_half = 0.5 * 10 ** (math.floor(math.log10(tf)) - 2)  # half a unit in the 3rd significant digit
        lo, hi = (tf - tf_half) * 1e3 / (to + 0.0005), (tf + tf_half) * 1e3 / max(to - 0.0005, 1e-9)
        assert lo - 0.05 <= float(row["ours GFLOP/s"]) <= hi + 0.05, (row, lo, hi)
    assert float(eager["TFLOP/img"]) == float(f"{tflop:.3g}")
    assert float(eager["max abs diff"]) <= 1e-4 and eager["deviation"] == "0.00%"  # batch 1: same numbers

    m = re.fullmatch(r"fast \((float32|bfloat16|float16|autocast-bfloat16)(\+cl)? (eager|compile)\)", fast["ours"])
    assert m, fast["ours"]
    if m.group(1) == "float32":
        assert fast["deviation"] == "0.00%"
    else:  # half precision changes the numbers (noise is drawn in it too): reported, not asserted small
        assert 0 < float(fast["deviation"].rstrip("%")) < 100
    assert (cache / "tiny-depth-v1-1-tiny-decoder" / "config.json").is_file()  # built once, next to the checkpoint
    assert float(tiny["TFLOP/img"]) < float(eager["TFLOP/img"])  # the tiny decoder's calls, not the VAE's

    if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"):
        _assert_numbers(onnx)
        assert (cache / "tiny-depth-v1-1-onnx" / "manifest.json").is_file()
        assert float(onnx["TFLOP/img"]) == float(f"{tflop:.3g}")
        assert float(onnx["deviation"].rstrip("%")) / 100 <= FAST_TIER_ABSREL_TOL
    else:
        assert onnx["ours s/img"].startswith("failed: ")

    assert missing["ours s/img"].startswith("failed: ") and "/nonexistent/decoder" in missing["ours s/img"]
    assert all(missing[c] == "failed" for c in bench.COLUMNS[8:])
    started = log.read_text().splitlines()
    assert started[0] == "0 diffusers" and len(started) == 4 + ("failed" not in onnx["ours s/img"])
    assert not any("nonexistent" in line for line in started)  # failed in its preparation: never started


@pytest.mark.slow
def test_model_run_alternates_the_order_and_uses_the_checkpoint_defaults(tmp_path, cache, bench):
    """``--model FOLDER`` (a tiny random checkpoint with a bundled tiny decoder and default resolution 96), two
    repeats: the order is reference-first then reversed, the checkpoint's own resolution is used, ``@tiny`` is its
    bundled decoder; a model that cannot be read is a failed row, not an abort."""
    from marigold_toolkit.testing import build_random_checkpoint, build_random_tiny_decoder

    ckpt = tmp_path / "my-depth"
    if (cache / "tiny-depth-v1-1" / "model_index.json").is_file():
        shutil.copytree(cache / "tiny-depth-v1-1", ckpt)
    else:
        build_random_checkpoint(ckpt, "depth-v1-1", size="tiny")
    index = json.loads((ckpt / "model_index.json").read_text())
    (ckpt / "model_index.json").write_text(json.dumps(dict(index, default_processing_resolution=96)))
    build_random_tiny_decoder(ckpt / "tiny_decoder", size="tiny")

    log = tmp_path / "order.log"
    r = _run("--model", f"{ckpt},{tmp_path / 'no-such-model'}", "--ours", "eager@tiny", "--repeats", "2",
             "--steps", "1", "--ensembles", "1", "--image-size", "48", "64", "--cache", str(cache),
             "--order-log", str(log))
    assert r.returncode == 1, r.stderr[-3000:]
    assert f"model {ckpt} (depth, default resolution 96)" in r.stdout and "median of 2 repeats" in r.stdout
    rows = _table(r.stdout, bench)
    assert len(rows) == 2
    row, bad = rows
    assert (row["task"], row["model"], row["res"], row["ours"]) == ("depth", str(ckpt), "96", "eager float32 @tiny")
    _assert_numbers(row)
    assert bad["model"] == str(tmp_path / "no-such-model") and bad["ours s/img"].startswith("failed: ")
    assert log.read_text().splitlines() == ["0 diffusers", "0 eager float32 @tiny", "1 eager float32 @tiny",
                                            "1 diffusers"]

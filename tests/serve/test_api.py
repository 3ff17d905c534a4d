"""The REST API in-process: every endpoint, status code and limit; answers against the Predictor and against
``marigold predict``'s files."""

from __future__ import annotations

import base64
import io
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit.io.files import quantize_uint16, read_png16

from ..cli._helpers import predict_args, random_image, run_cli
from ..io.test_images import _png_claiming_size
from .conftest import make_client, png_bytes_of, wait_ready


def _post(client, image: bytes | None, headers=None, **fields):
    files = {"image": ("x.png", image, "image/png")} if image is not None else None
    return client.post("/v1/predict", files=files, data={k: str(v) for k, v in fields.items()}, headers=headers)


def _map(entry) -> np.ndarray:
    return read_png16(base64.b64decode(entry["png16"]), tuple(entry["range"]))


# --- answers ---------------------------------------------------------------------------------------------------

def test_json_depth_equals_predict_cli_files(client, photo, checkpoints, tmp_path, capsys):
    r = _post(client, png_bytes_of(photo), steps=1, seed=11, processing_resolution=64)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["task"], body["width"], body["height"]) == ("depth", "depth", 64, 48)
    assert body["settings"] == {"steps": 1, "ensemble": 1, "processing_resolution": 64, "seed": 11, "batch_size": 1}
    assert set(body["timing_ms"]) == {"queue", "inference", "total"} and body["timing_ms"]["total"] > 0
    assert "uncertainty" not in body
    entry = body["targets"]["depth"]
    assert entry["range"] == [0.0, 1.0] and entry["shape"] == [48, 64]
    # the same image through `marigold predict --seed 11`: its 16-bit PNG holds the same values
    Image.fromarray(photo).save(tmp_path / "photo.png")
    rc, _, err = run_cli(capsys, *predict_args(tmp_path / "photo.png", checkpoints["depth-v1-1"], tmp_path / "out",
                                               steps=1, res=64, seed=11))
    assert rc == 0, err
    cli_png = np.asarray(Image.open(tmp_path / "out" / "photo_depth.png"))
    np.testing.assert_array_equal(read_png16(base64.b64decode(entry["png16"])), cli_png)


def test_npz_is_the_predictors_float32_output(client, predictors, photo):
    r = _post(client, png_bytes_of(photo), model="normals", steps=2, ensemble=3, seed=5, processing_resolution=64,
              output="npz")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-npz"
    assert r.headers["x-marigold-seed"] == "5" and r.headers["x-marigold-model"] == "normals"
    arrays = np.load(io.BytesIO(r.content))
    assert sorted(arrays.files) == ["normals", "normals_uncertainty"]
    ref = predictors["normals"].predict(photo, num_inference_steps=2, ensemble_size=3, seed=5,
                                        processing_resolution=64, batch_size=3)
    np.testing.assert_array_equal(arrays["normals"], ref.targets["normals"])
    np.testing.assert_array_equal(arrays["normals_uncertainty"], ref.uncertainty["normals"])


def test_json_normals_and_uncertainty_decode_within_one_step(client, predictors, photo):
    r = _post(client, png_bytes_of(photo), model="normals", steps=1, ensemble=2, seed=4, processing_resolution=64)
    body = r.json()
    ref = predictors["normals"].predict(photo, num_inference_steps=1, ensemble_size=2, seed=4,
                                        processing_resolution=64, batch_size=2)
    n = body["targets"]["normals"]
    assert n["range"] == [-1.0, 1.0] and n["shape"] == [48, 64, 3]
    assert np.abs(_map(n) - ref.targets["normals"]).max() <= 2 / 65535 + 1e-6
    u = body["uncertainty"]["normals"]
    assert u["range"] == [0.0, 1.0]
    assert np.abs(_map(u) - ref.uncertainty["normals"]).max() <= 1 / 65535 + 1e-6


def test_png16_answers_one_target(client, predictors, photo):
    r = _post(client, png_bytes_of(photo), model="iid", steps=1, seed=2, processing_resolution=64, output="png16",
              target="shading")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-marigold-target"] == "shading" and r.headers["x-marigold-range"] == "0.0,1.0"
    ref = predictors["iid"].predict(photo, num_inference_steps=1, seed=2, processing_resolution=64)
    np.testing.assert_array_equal(read_png16(r.content), quantize_uint16(ref.targets["shading"], (0.0, 1.0)))
    r = _post(client, png_bytes_of(photo), model="iid", output="png16")
    assert r.status_code == 400 and "albedo, shading, residual" in r.json()["error"]


def test_without_a_seed_the_answer_names_the_one_drawn(client, photo):
    a = _post(client, png_bytes_of(photo), steps=1, processing_resolution=64, output="npz")
    seed = int(a.headers["x-marigold-seed"])
    b = _post(client, png_bytes_of(photo), steps=1, processing_resolution=64, output="npz", seed=seed)
    np.testing.assert_array_equal(np.load(io.BytesIO(a.content))["depth"], np.load(io.BytesIO(b.content))["depth"])


def test_models_health_and_metrics(client, photo):
    models = client.get("/v1/models").json()
    assert models["default"] == "depth"
    by_name = {m["name"]: m for m in models["models"]}
    assert by_name["iid"]["targets"] == ["albedo", "shading", "residual"]
    assert by_name["normals"]["value_range"] == [-1.0, 1.0]
    assert set(by_name["depth"]["defaults"]) == {"steps", "ensemble", "processing_resolution"}
    assert models["limits"]["max_pixels"] == 200_000
    assert client.get("/healthz").json() == {"status": "ready", "models": ["depth", "normals", "iid"]}

    def counter(text: str, line: str) -> float:
        hits = [ln for ln in text.splitlines() if ln.startswith(line + " ")]
        return float(hits[0].split()[-1]) if hits else 0.0

    before = client.get("/metrics").text
    _post(client, png_bytes_of(photo), steps=1, processing_resolution=64)
    _post(client, b"not an image")
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    ok = 'marigold_requests_total{code="200",path="/v1/predict"}'
    bad = 'marigold_errors_total{code="400"}'
    assert counter(after.text, ok) == counter(before, ok) + 1
    assert counter(after.text, bad) == counter(before, bad) + 1
    assert counter(after.text, "marigold_queue_depth") == 0
    assert counter(after.text, 'marigold_batch_size_count{model="depth"}') >= 1
    assert counter(after.text, 'marigold_request_latency_seconds_count{model="depth"}') >= 1


# --- errors ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, message", [
    ({"steps": "abc"}, "'steps': 'abc' is not an integer"),
    ({"steps": 0}, "'steps': 0 is outside [1, 50]"),
    ({"ensemble": 11}, "'ensemble': 11 is outside [1, 10]"),
    ({"processing_resolution": -1}, "outside [0, 2048]"),
    ({"seed": -3}, "'seed': -3 is outside"),
    ({"model": "gpt"}, "'gpt' is not loaded; loaded: depth, normals, iid"),
    ({"output": "xml"}, "'output': 'xml' is not one of json, npz, png16"),
    ({"colour": "red"}, "unknown field(s) colour"),
])
def test_bad_fields_are_400(client, photo, fields, message):
    r = _post(client, png_bytes_of(photo), **fields)
    assert r.status_code == 400 and message in r.json()["error"]


def test_bad_images_are_400(client, photo):
    full = png_bytes_of(photo, "JPEG")
    for data, message in [(b"", "empty file"), (b"GIF89a garbage", "not a recognised image"),
                          (full[: len(full) // 2], "truncated")]:
        r = _post(client, data)
        assert r.status_code == 400 and message in r.json()["error"], r.text
    r = client.post("/v1/predict", files={"steps": (None, "1")})  # multipart without the image
    assert r.status_code == 400 and "field 'image'" in r.json()["error"]
    r = client.post("/v1/predict", files={"image": (None, "a string, not a file")})
    assert r.status_code == 400 and "field 'image'" in r.json()["error"]


def test_wrong_content_type_is_415(client):
    r = client.post("/v1/predict", json={"image": "aGVsbG8="})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]


def test_limits_are_413(client):
    big = os.urandom(1_200_000)  # over the 1 MB upload limit
    r = _post(client, big)
    assert r.status_code == 413 and "1 MB" in r.json()["error"]

    def chunks():  # no Content-Length: the limit applies as the bytes arrive
        boundary = b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
        yield boundary
        for _ in range(30):
            yield b"\0" * 65536
    r = client.post("/v1/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413
    r = _post(client, _png_claiming_size(100_000, 100_000))  # 10 GP claimed in an 80-byte file
    assert r.status_code == 413 and "100000x100000" in r.json()["error"]
    r = _post(client, png_bytes_of(np.zeros((500, 500, 3), dtype=np.uint8)))  # 250 kP over 200 kP
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_unknown_paths_and_methods_are_json(client):
    r = client.get("/v2/anything")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = client.get("/v1/predict")
    assert r.status_code == 405 and "error" in r.json()


def test_api_key(predictors, photo):
    with make_client(predictors, api_key="s3cret", max_wait_ms=0) as c:
        wait_ready(c)  # /healthz stays open for load balancers
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "s3cre"}):
            r = _post(c, png_bytes_of(photo), headers=headers, steps=1, processing_resolution=64)
            assert r.status_code == 401 and "API key" in r.json()["error"]
        assert c.get("/v1/models").status_code == 401 and c.get("/metrics").status_code == 401
        for headers in ({"Authorization": "Bearer s3cret"}, {"X-API-Key": "s3cret"}):
            r = _post(c, png_bytes_of(photo), headers=headers, steps=1, processing_resolution=64)
            assert r.status_code == 200
        assert c.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200


def test_503_while_loading_and_after_a_failed_load(predictors, photo):
    from fastapi.testclient import TestClient

    from marigold_toolkit.serve.api import ServeConfig, create_app

    release = threading.Event()

    def slow():
        release.wait(30)
        return predictors["depth"]

    with TestClient(create_app({"depth": slow}, ServeConfig(max_wait_ms=0))) as c:
        r = _post(c, png_bytes_of(photo))
        assert r.status_code == 503 and "loading" in r.json()["error"]
        assert c.get("/healthz").status_code == 503 and c.get("/healthz").json()["status"] == "loading"
        release.set()
        wait_ready(c)
        assert _post(c, png_bytes_of(photo), steps=1, processing_resolution=64).status_code == 200

    def broken():
        raise OSError("unet/diffusion_pytorch_model.safetensors: no such file")

    with TestClient(create_app({"depth": broken}, ServeConfig())) as c:
        c.app.state.server.loaded.wait(10)
        r = _post(c, png_bytes_of(photo))
        assert r.status_code == 503 and "no such file" in r.json()["error"]
        assert c.get("/healthz").json()["status"] == "failed"


class GatedPredictor:
    """A predictor whose calls wait for ``gate`` (to hold requests in flight)."""

    def __init__(self, inner, gate: threading.Event):
        self._inner, self.gate, self.calls = inner, gate, []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def predict(self, images, **kwargs):
        self.gate.wait(30)
        self.calls.append(len(images))
        return self._inner.predict(images, **kwargs)


def _concurrently(fn, n: int):
    out = [None] * n

    def one(i):
        out[i] = fn(i)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    return threads, out


def test_queue_full_is_429_and_the_held_requests_finish(predictors, photo):
    gate = threading.Event()
    gated = GatedPredictor(predictors["depth"], gate)
    from fastapi.testclient import TestClient

    from marigold_toolkit.serve.api import ServeConfig, create_app

    with TestClient(create_app({"depth": lambda: gated}, ServeConfig(queue_size=2, max_batch=1, max_wait_ms=0))) as c:
        wait_ready(c)
        data = png_bytes_of(photo)
        threads, out = _concurrently(lambda i: _post(c, data, steps=1, processing_resolution=64, seed=i), 2)
        time.sleep(0.3)
        r = _post(c, data, steps=1, processing_resolution=64)
        assert r.status_code == 429 and "queue" in r.json()["error"]
        gate.set()
        for t in threads:
            t.join(30)
        assert [o.status_code for o in out] == [200, 200]
        assert _post(c, data, steps=1, processing_resolution=64).status_code == 200


def test_batched_requests_match_each_served_alone(predictors):
    gate = threading.Event()
    gated = GatedPredictor(predictors["depth"], gate)
    from fastapi.testclient import TestClient

    from marigold_toolkit.serve.api import ServeConfig, create_app

    photos = [random_image(48, 64, seed=20 + i) for i in range(5)]
    images = [png_bytes_of(p) for p in photos]
    with TestClient(create_app({"depth": lambda: gated}, ServeConfig(max_batch=4, max_wait_ms=300))) as c:
        wait_ready(c)
        threads, out = _concurrently(
            lambda i: _post(c, images[i], steps=2, seed=100 + i, processing_resolution=64, output="npz"), 5)
        time.sleep(0.5)
        gate.set()
        for t in threads:
            t.join(60)
    assert all(o.status_code == 200 for o in out)
    assert sorted(gated.calls) == [1, 4]  # four requests in one model call, the fifth on its own
    for i, o in enumerate(out):
        alone = predictors["depth"].predict(photos[i], num_inference_steps=2, seed=100 + i, processing_resolution=64)
        served = np.load(io.BytesIO(o.content))["depth"]
        # batched kernels round differently than a batch of one: float-level agreement
        assert np.abs(served - alone.targets["depth"]).max() < 1e-4


def test_bad_requests_leave_memory_at_baseline(client, photo):
    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) / 1024

    junk = os.urandom(900_000)
    for _ in range(10):  # warm up the code paths
        _post(client, junk)
    base = rss_mb()
    for k in range(150):
        r = _post(client, junk if k % 3 else _png_claiming_size(50_000, 50_000))
        assert r.status_code in (400, 413)
    assert rss_mb() - base < 40, (base, rss_mb())
    assert _post(client, png_bytes_of(photo), steps=1, processing_resolution=64).status_code == 200


class FailingPredictor(GatedPredictor):
    def predict(self, images, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB\nsecond line")


def test_a_failed_model_call_is_a_json_500_and_the_server_goes_on(predictors, photo):
    from fastapi.testclient import TestClient

    from marigold_toolkit.serve.api import ServeConfig, create_app

    failing = FailingPredictor(predictors["depth"], threading.Event())
    with TestClient(create_app({"bad": lambda: failing, "depth": lambda: predictors["depth"]},
                               ServeConfig(max_wait_ms=0))) as c:
        wait_ready(c)
        r = _post(c, png_bytes_of(photo), steps=1, processing_resolution=64)
        assert r.status_code == 500
        assert r.json() == {"error": "prediction failed: CUDA out of memory. Tried to allocate 20.00 GiB"}
        assert _post(c, png_bytes_of(photo), model="depth", steps=1, processing_resolution=64).status_code == 200

"""Fixtures for the server tests: an in-process app on tiny checkpoints, and helpers."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from marigold_toolkit.pipeline.predictor import Predictor  # noqa: E402
from marigold_toolkit.serve.api import ServeConfig, create_app  # noqa: E402

from ..cli._helpers import random_image  # noqa: E402

MODELS = {"depth": "depth-v1-1", "normals": "normals-v1-1", "iid": "iid-lighting-v1-1"}


def png_bytes_of(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def wait_ready(client, timeout: float = 60.0) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        r = client.get("/healthz")
        if r.status_code == 200:
            return
        assert r.json()["status"] == "loading", r.json()
        time.sleep(0.05)
    raise AssertionError("the server did not become ready")


@pytest.fixture(scope="module")
def predictors(checkpoints) -> dict[str, Predictor]:
    return {name: Predictor.from_pretrained(checkpoints[layout], device="cpu") for name, layout in MODELS.items()}


def make_client(predictors, **config) -> TestClient:
    loaders = {name: (lambda p=p: p) for name, p in predictors.items()}
    return TestClient(create_app(loaders, ServeConfig(**config)))


@pytest.fixture(scope="module")
def client(predictors):
    with make_client(predictors, max_batch=4, max_wait_ms=5, max_pixels=200_000, max_upload_mb=1.0) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return random_image(48, 64, seed=7)

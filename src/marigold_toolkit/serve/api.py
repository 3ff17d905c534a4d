"""The REST API (FastAPI): ``POST /v1/predict``, ``GET /v1/models``, ``GET /healthz``, ``GET /metrics``.

Every error is JSON ``{"error": "..."}`` with its status: 400 unreadable upload / not an image / bad field,
401 missing or wrong API key, 404/405 unknown path or method, 413 upload or pixel count over the limit (the pixel
count is read from the image header before anything is decoded), 415 a body that is not ``multipart/form-data``,
429 queue full, 503 while the models load, after a failed load, or while draining. The server fetches nothing:
the only image it reads is the uploaded one.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations (``Request``, imported in
# create_app since FastAPI is an optional extra) as objects

import asyncio
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.images import ImageReadError, ImageTooLargeError, load_image
from .batching import Admission, BatchKey, Job, ModelWorker, QueueFull
from .metrics import ServerMetrics
from .responses import OUTPUT_KINDS, json_answer, npz_answer, png16_answer

logger = logging.getLogger(__name__)

#: the form fields of ``POST /v1/predict`` besides the ``image`` file
FORM_FIELDS = ("model", "steps", "ensemble", "processing_resolution", "seed", "output", "target")
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching of a server (``marigold serve`` flags).

    Attributes:
        max_batch: requests per model call; max_wait_ms: how long a request waits for companions.
        max_pixels: largest accepted image (width x height, read from the header).
        max_upload_mb: largest request body in MB (10^6 bytes).
        queue_size: requests held at once (queued or running) before 429.
        api_key: required ``Authorization: Bearer <key>`` / ``X-API-Key`` (``None``: open).
        max_steps, max_ensemble, max_processing_resolution: the largest values a request may ask for.
    """

    max_batch: int = 4
    max_wait_ms: float = 10.0
    max_pixels: int = 16_000_000
    max_upload_mb: float = 20.0
    queue_size: int = 64
    api_key: str | None = None
    max_steps: int = 50
    max_ensemble: int = 10
    max_processing_resolution: int = 2048

    def __post_init__(self):
        for name in ("max_batch", "max_pixels", "queue_size", "max_steps", "max_ensemble",
                     "max_processing_resolution"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0 or self.max_upload_mb <= 0:
            raise ValueError("max_wait_ms must be >= 0 and max_upload_mb > 0")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)


class ApiError(Exception):
    """An answer ``{"error": message}`` with HTTP ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _BodyTooLarge(Exception):
    pass


class UploadLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``, by its ``Content-Length`` before anything is
    read, or (chunked uploads) as soon as the bytes received pass the limit."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = f"the upload is over the limit of {self.max_bytes / 1e6:g} MB"
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_json(send, 413, too_large)
        seen, started = 0, False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, 413, too_large)


class AnswerCounter:
    """ASGI middleware: counts every answer by path (``other`` for unknown ones) and status code."""

    def __init__(self, app, metrics: ServerMetrics, paths: set[str]):
        self.app, self.metrics, self.paths = app, metrics, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "") if scope.get("path", "") in self.paths else "other"

        async def counting_send(message):
            if message["type"] == "http.response.start":
                self.metrics.answered(path, int(message["status"]))
            await send(message)

        await self.app(scope, receive, counting_send)


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class ServedModel:
    """A loaded model: its predictor, its batching worker and its defaults."""

    def __init__(self, name: str, predictor: Any, config: ServeConfig, on_batch: Callable[[str, int], None]):
        self.name, self.predictor, self.task = name, predictor, predictor.task
        self.default_steps, self.default_resolution = predictor.resolve_settings(None, None)
        self.worker = ModelWorker(name, self._run, config.max_batch, config.max_wait_ms,
                                  on_batch=lambda n: on_batch(name, n))

    def _run(self, images: list[np.ndarray], seeds: list[int], key: BatchKey) -> list[Any]:
        return self.predictor.predict(
            images, num_inference_steps=key.steps, ensemble_size=key.ensemble,
            processing_resolution=key.processing_resolution, seed=seeds, batch_size=len(images) * key.ensemble)

    def describe(self) -> dict[str, Any]:
        spec = self.predictor.spec
        return {"name": self.name, "task": self.task.name, "targets": list(self.task.target_names),
                "value_range": list(self.task.value_range),
                "defaults": {"steps": self.default_steps, "ensemble": 1,
                             "processing_resolution": self.default_resolution},
                "source": spec.source, "device": str(self.predictor.device),
                "dtype": str(self.predictor.dtype).replace("torch.", "")}


class ServerState:
    """What the server is doing (``loading``, ``ready``, ``draining``, ``failed``) and what it holds."""

    def __init__(self, loaders: Mapping[str, Callable[[], Any]], config: ServeConfig):
        if not loaders:
            raise ValueError("a server needs at least one model")
        self.loaders, self.config = dict(loaders), config
        self.status, self.error = "loading", None
        self.models: dict[str, ServedModel] = {}
        self.admission = Admission(config.queue_size)
        self.metrics = ServerMetrics(config.max_batch, lambda: self.admission.held)
        self.loaded = threading.Event()

    def load(self) -> None:
        """Load every model (in a thread of its own: the server answers 503 meanwhile)."""
        try:
            for name, loader in self.loaders.items():
                logger.info("loading model %s", name)
                predictor = loader()
                self.models[name] = ServedModel(name, predictor, self.config, self._batched)
            self.status = "ready" if self.status == "loading" else self.status
            logger.info("ready: %s", ", ".join(self.models))
        except Exception as exc:  # noqa: BLE001 - reported by /healthz and every request
            self.status, self.error = "failed", f"loading the models failed: {str(exc).splitlines()[0]}"
            logger.error("%s", self.error)
        finally:
            self.loaded.set()

    def _batched(self, model: str, n: int) -> None:
        self.metrics.batch.labels(model=model).observe(n)

    def drain(self) -> None:
        """Stop taking predictions (503); the ones already held finish."""
        if self.status in ("loading", "ready"):
            self.status = "draining"

    def close(self) -> None:
        for m in self.models.values():
            m.worker.close(timeout=60)


def _int_field(form, name: str, lo: int, hi: int) -> int | None:
    raw = form.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ApiError(400, f"field {name!r} must be a number, not a file")
    try:
        value = int(raw.strip())
    except ValueError:
        raise ApiError(400, f"field {name!r}: {raw[:40]!r} is not an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"field {name!r}: {value} is outside [{lo}, {hi}]")
    return value


def _check_key(request, key: str | None) -> None:
    if key is None:
        return
    auth = request.headers.get("authorization", "")
    given = auth[7:] if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not given or not hmac.compare_digest(given.encode(), key.encode()):
        raise ApiError(401, "missing or wrong API key (send 'Authorization: Bearer <key>' or 'X-API-Key')")


def create_app(loaders: Mapping[str, Callable[[], Any]], config: ServeConfig | None = None):
    """The FastAPI app serving ``loaders`` (model name -> a function returning a loaded
    :class:`~marigold_toolkit.pipeline.predictor.Predictor`; the first model is the default).

    The models load in a background thread when the app starts (503 until then). ``app.state.server`` is the
    :class:`ServerState`; ``app.state.server.drain()`` starts a graceful stop.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    config = config or ServeConfig()
    state = ServerState(loaders, config)

    @asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=state.load, name="marigold-load", daemon=True).start()
        yield
        state.drain()
        await run_in_threadpool(state.close)

    app = FastAPI(title="marigold-toolkit", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = state
    known_paths = {"/v1/predict", "/v1/models", "/healthz", "/metrics"}

    app.add_middleware(UploadLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(AnswerCounter, metrics=state.metrics, paths=known_paths)  # outermost: counts the 413s too

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        return error(400, f"bad request: {first.get('msg', 'invalid input')}")

    def require_ready() -> None:
        if state.status == "loading":
            raise ApiError(503, "the models are still loading; retry shortly")
        if state.status == "draining":
            raise ApiError(503, "the server is shutting down")
        if state.status == "failed":
            raise ApiError(503, state.error)

    @app.get("/healthz")
    async def healthz():
        body = {"status": state.status, "models": list(state.models)}
        if state.error:
            body["error"] = state.error
        return JSONResponse(body, status_code=200 if state.status == "ready" else 503)

    @app.get("/metrics")
    async def metrics(request: Request):
        _check_key(request, config.api_key)
        return Response(state.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models(request: Request):
        _check_key(request, config.api_key)
        require_ready()
        return {"models": [m.describe() for m in state.models.values()], "default": next(iter(state.models)),
                "limits": {"max_pixels": config.max_pixels, "max_upload_mb": config.max_upload_mb,
                           "max_batch": config.max_batch, "max_steps": config.max_steps,
                           "max_ensemble": config.max_ensemble,
                           "max_processing_resolution": config.max_processing_resolution}}

    @app.post("/v1/predict")
    async def predict(request: Request):
        arrived = time.perf_counter()
        _check_key(request, config.api_key)
        require_ready()
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise ApiError(415, "send the image as multipart/form-data with a file field 'image'")
        try:
            state.admission.enter()
        except QueueFull as exc:
            raise ApiError(429, str(exc)) from None
        try:
            return await _predict(request, arrived)
        finally:
            state.admission.leave()

    async def _predict(request, arrived: float):
        try:
            form = await request.form(max_files=1, max_fields=len(FORM_FIELDS), max_part_size=64 * 1024)
        except ClientDisconnect:  # nobody is left to read an answer; this one only ends the handler quietly
            raise ApiError(400, "the client disconnected during the upload") from None
        unknown = [k for k in form.keys() if k not in FORM_FIELDS and k != "image"]
        if unknown:
            raise ApiError(400, f"unknown field(s) {', '.join(sorted(unknown))}; fields: image, {', '.join(FORM_FIELDS)}")
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "no image: send the file in the multipart field 'image'")
        name = form.get("model") or next(iter(state.models))
        model = state.models.get(name) if isinstance(name, str) else None
        if model is None:
            raise ApiError(400, f"field 'model': {name!r} is not loaded; loaded: {', '.join(state.models)}")
        output = form.get("output") or "json"
        if output not in OUTPUT_KINDS:
            raise ApiError(400, f"field 'output': {output!r} is not one of {', '.join(OUTPUT_KINDS)}")
        targets = list(model.task.target_names)
        target = form.get("target") or (targets[0] if len(targets) == 1 else None)
        if output == "png16" and target not in targets:
            raise ApiError(400, f"field 'target': output=png16 answers one target; model {name} predicts "
                                f"{', '.join(targets)}")
        steps = _int_field(form, "steps", 1, config.max_steps) or model.default_steps
        ensemble = _int_field(form, "ensemble", 1, config.max_ensemble) or 1
        res = _int_field(form, "processing_resolution", 0, config.max_processing_resolution)
        res = model.default_resolution if res is None else res
        seed = _int_field(form, "seed", 0, MAX_SEED)
        seed = secrets.randbelow(2**31) if seed is None else seed

        data = await upload.read()
        try:
            image = await run_in_threadpool(load_image, data, config.max_pixels)
        except ImageTooLargeError as exc:
            raise ApiError(413, f"image: {exc}") from None
        except ImageReadError as exc:
            raise ApiError(400, f"image: {exc}") from None
        finally:
            await upload.close()
        if res == 0 and max(image.shape[:2]) > config.max_processing_resolution:
            raise ApiError(400, f"field 'processing_resolution': 0 (native) on a {image.shape[1]}x{image.shape[0]} "
                                f"image is over the limit of {config.max_processing_resolution}")

        job = Job(image=image, key=BatchKey(steps, ensemble, res), seed=seed)
        try:
            out = await asyncio.wrap_future(model.worker.submit(job))
        except (RuntimeError, ValueError, MemoryError) as exc:
            raise ApiError(500, f"prediction failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        timing = {"queue": round(job.queued_s * 1000, 3), "inference": round(job.inference_s * 1000, 3),
                  "total": round((time.perf_counter() - arrived) * 1000, 3)}
        settings = {"steps": steps, "ensemble": ensemble, "processing_resolution": res, "seed": seed,
                    "batch_size": job.batch_size}
        state.metrics.latency.labels(model=name).observe(time.perf_counter() - arrived)
        headers = {"X-Marigold-Model": name, "X-Marigold-Seed": str(seed)}
        if output == "npz":
            return Response(await run_in_threadpool(npz_answer, out), media_type="application/x-npz",
                            headers=headers)
        if output == "png16":
            lo, hi = model.task.value_range
            return Response(await run_in_threadpool(png16_answer, out, model.task, target), media_type="image/png",
                            headers={**headers, "X-Marigold-Target": target, "X-Marigold-Range": f"{lo},{hi}"})
        body = await run_in_threadpool(json_answer, out, model.task,
                                       {"model": name, "settings": settings, "timing_ms": timing})
        return JSONResponse(body, headers=headers)

    return app

"""``marigold serve``: the REST API (FastAPI + uvicorn) with request batching; ``marigold app``: the web app.

Exit codes: 0 after a graceful stop (SIGTERM / Ctrl-C), 2 usage error (bad flag, a model that cannot be
resolved, a missing package or API-key variable).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import sys
from pathlib import Path

from ..checkpoints.loading import load_spec
from ..checkpoints.resolve import CheckpointError
from ..pipeline.predictor import Predictor
from ..io.images import find_images
from ..serve.api import ServeConfig, create_app
from ..serve.app import build_app, launch_app
from ..serve.server import run_server
from .predict import EXIT_OK, EXIT_USAGE

logger = logging.getLogger(__name__)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--model`` (repeatable) and how the models are loaded: shared by ``serve`` and ``app``."""
    p.add_argument("--model", action="append", metavar="MODEL",
                   help="hub id, registry alias (demo-depth, demo-normals: offline) or local folder; repeat for "
                        "several models, the first is the default (default: demo-depth)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"),
                   help="model dtype (default: float32, or what --fast picks for this machine)")
    p.add_argument("--autocast", choices=("bfloat16", "float16"),
                   help="mixed precision (as predict --autocast; models float32)")
    p.add_argument("--fast", action="store_true",
                   help="machine-aware fast tier (as predict --fast: bfloat16 autocast channels-last on CPUs with "
                        "AVX-512-BF16/AMX, half precision + torch.compile on CUDA; logged)")
    p.add_argument("--decoder", metavar="PATH|HUB_ID|bundled",
                   help="tiny decoder for every model (as predict --decoder)")


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="REST API with request batching (FastAPI + uvicorn)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=4, metavar="B",
                   help="concurrent requests with the same model and settings run as one batch of up to B "
                        "(default: %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=10.0, metavar="W",
                   help="how long a request waits for others to batch with (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=16_000_000, metavar="P",
                   help="413 for images over P pixels, read from the header before decoding (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, metavar="U",
                   help="413 for request bodies over U MB (default: %(default)s)")
    p.add_argument("--queue-size", type=int, default=64, metavar="Q",
                   help="429 once Q requests are held (queued or running) (default: %(default)s)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="require the key in environment variable VAR (Authorization: Bearer <key> or X-API-Key)")
    p.add_argument("--max-steps", type=int, default=50, help="largest 'steps' a request may ask (default: %(default)s)")
    p.add_argument("--max-ensemble", type=int, default=10,
                   help="largest 'ensemble' a request may ask (default: %(default)s)")
    p.add_argument("--max-processing-resolution", type=int, default=2048,
                   help="largest 'processing_resolution' (and native size) a request may ask (default: %(default)s)")
    p.set_defaults(func=run)

    a = sub.add_parser("app", help="web app (Gradio): upload a photo, see and download the predictions",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(a)
    a.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    a.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    a.add_argument("--examples", type=Path, metavar="DIR",
                   help="folder of example photos offered in the app (default: ./examples when it exists)")
    a.set_defaults(func=run_app)


def model_loaders(args: argparse.Namespace) -> tuple[dict, str | None]:
    """Model name -> loader, each checked (resolved and its ``model_index.json`` read) now, or a usage problem."""
    names = args.model or ["demo-depth"]
    if len(set(names)) != len(names):
        return {}, f"--model: {', '.join(names)} names a model twice"
    loaders = {}
    for name in names:
        try:
            load_spec(name)
        except (CheckpointError, OSError, ValueError) as exc:
            return {}, f"--model {name}: {str(exc).splitlines()[0]}"
        loaders[name] = functools.partial(
            Predictor.from_pretrained, name, dtype=args.dtype, device=args.device, fast=args.fast,
            decoder=args.decoder, autocast=args.autocast)
    return loaders, None


def _port_and_models(args: argparse.Namespace) -> tuple[dict, str | None]:
    """The model loaders of ``serve`` / ``app`` after checking ``--port``, or a usage problem."""
    if not 0 < args.port < 65536:
        return {}, f"--port {args.port}: must lie in 1..65535"
    return model_loaders(args)


def _first_defaults(name: str) -> dict[str, int]:
    spec = load_spec(name)
    out = {}
    if spec.default_denoising_steps:
        out["steps"] = spec.default_denoising_steps
    if spec.default_processing_resolution is not None:
        out["processing_resolution"] = spec.default_processing_resolution
    return out


def run_app(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("error: marigold app needs Gradio: pip install \"marigold-toolkit[app]\"", file=sys.stderr)
        return EXIT_USAGE
    loaders, problem = _port_and_models(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    folder = args.examples if args.examples is not None else Path("examples")
    if args.examples is not None and not folder.is_dir():
        print(f"error: --examples {folder}: no such folder", file=sys.stderr)
        return EXIT_USAGE
    examples, _ = find_images([folder]) if folder.is_dir() else ([], [])
    demo = build_app(loaders, examples=examples, defaults=_first_defaults(next(iter(loaders))))
    logger.warning("app on http://%s:%d", args.host, args.port)
    launch_app(demo, host=args.host, port=args.port)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        print(f"error: marigold serve needs FastAPI, uvicorn, python-multipart and prometheus_client ({exc.name} is "
              "missing): "
              "pip install \"marigold-toolkit[serve]\"", file=sys.stderr)
        return EXIT_USAGE
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            print(f"error: --api-key-env {args.api_key_env}: the variable is unset or empty", file=sys.stderr)
            return EXIT_USAGE
    try:
        config = ServeConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_pixels=args.max_pixels,
                             max_upload_mb=args.max_upload_mb, queue_size=args.queue_size, api_key=api_key,
                             max_steps=args.max_steps, max_ensemble=args.max_ensemble,
                             max_processing_resolution=args.max_processing_resolution)
    except ValueError as exc:  # the config names its fields; the user typed flags
        message = re.sub(r"\b(max_[a-z_]+|queue_size)\b", lambda m: "--" + m.group(1).replace("_", "-"), str(exc))
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    loaders, problem = _port_and_models(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    app = create_app(loaders, config)
    logger.warning("serving %s on http://%s:%d (models load in the background: /healthz says when ready)",
                   ", ".join(loaders), args.host, args.port)
    run_server(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK

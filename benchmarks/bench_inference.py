"""Inference speed and memory: marigold-toolkit vs diffusers' Marigold pipelines, side by side in one run.

By default both run the same randomly initialised full-size checkpoint (timing does not depend on the weight
values); ``--model`` benchmarks trained checkpoints instead (so the deviation is measured on a real model too). Both
implementations get the same image and the same seed. Every run is its own fresh subprocess (one warm-up call, one
timed call), so peak memory (RSS on CPU, allocated memory on CUDA) is that run's alone. Prints a Markdown table:

    python benchmarks/bench_inference.py                  # full SD2 architecture, 512/768, steps 1/4, ensemble 1/10
    python benchmarks/bench_inference.py --quick          # tiny model, a few small configurations (CI)
    python benchmarks/bench_inference.py --tasks depth --resolutions 768 --steps 1 --ensembles 10 --repeats 4
    python benchmarks/bench_inference.py --ours eager,eager+cl:bfloat16,fast,fast@tiny --repeats 4
    python benchmarks/bench_inference.py --model demo-depth,demo-normals --ours eager,fast   # trained checkpoints

Variants of ours (``--ours``, comma-separated; each measured against the one diffusers reference of its
configuration):

* ``BACKEND[+cl][:DTYPE]``: backend ``eager``, ``compile`` (torch.compile, inductor) or ``onnx`` (ONNX Runtime on an
  export of the checkpoint, made once per checkpoint in the cache folder; float32 only); ``+cl``: channels-last
  layout (eager, compile); DTYPE float32, float16, bfloat16, autocast-bfloat16 or autocast-float16 (float32 models
  under autocast; default ``--ours-dtype``, else ``--dtype``).
* ``fast``: ``Predictor.from_pretrained(..., fast=True)``, whatever the machine-aware fast tier picks here; the row
  names what it ran, e.g. ``fast (autocast-bfloat16+cl eager)``.
* a ``@DECODER`` suffix on any of them decodes with a tiny ``AutoencoderTiny`` decoder: ``@tiny`` = for the random
  checkpoints a random decoder built once in the cache folder next to the checkpoint (TAESD's architecture for the
  full-size checkpoint, a tiny one for ``--quick``; random weights, so its deviation says nothing about quality),
  for ``--model`` the checkpoint's bundled ``tiny_decoder/``; ``@PATH`` (or ``@HUB_ID``) = that decoder folder.
  E.g. ``--ours eager,eager+cl:bfloat16,fast,fast@tiny,eager@/path/to/decoder``.

``--ours-backend``/``--ours-dtype`` name a single variant (without ``--ours``).

Fair order: each repeat runs the reference and every variant in a fresh subprocess, and the order alternates
across repeats (repeat 0: diffusers, v1, v2, ...; repeat 1: ..., v2, v1, diffusers; and so on), so process-start
and thermal drift cancel over an even number of repeats. The s/img columns are medians over the repeats;
``speed-up`` is the median of the per-repeat ratios (diffusers s / ours s of the same repeat) and ``speed-up range``
their min-max. Deviation and max abs difference compare repeat 0's outputs.

Survival: the header and the table head are printed first, then each row as soon as its configuration has run
all its repeats (stdout is flushed). A variant that fails (``onnx`` without onnx/onnxruntime installed, an unknown
decoder, a crash in its subprocess) becomes a row whose measurement cells say ``failed`` (the first one
``failed: <one-line reason>``); a failing reference skips its configuration with such a row. Exit status 0 if
every row ran, 1 if some row failed (after printing all).

Columns: latency per image, images/s, peak memory, the warm-up call's time (``torch.compile`` compiles there; the
warm-up runs ``min(ensemble, batch size)`` members, so it makes every model call of the timed run with the same
shapes at a fraction of their cost), the max abs difference of our prediction from diffusers' and the deviation
(depth: AbsRel between the two outputs; other tasks: mean abs difference). Compare backends at ensemble 1: depth
ensembling's BFGS alignment amplifies float-level differences. ``--threads 1`` gives steady timings on a shared,
busy machine.

``TFLOP/img`` counts the floating-point operations of the model calls one image needs (one VAE encode,
ensemble x steps UNet calls, ensemble x targets decodes -- the tiny decoder's where a variant uses one; torch's
FLOP counter on meta tensors, so nothing runs); ``ours GFLOP/s`` divides it by our latency. On a CPU both
implementations run the same float32 convolutions and matrix products through the same oneDNN/MKL kernels, so
their ratio to the machine's measured GEMM rate (``--gemm``) is how close to the compute floor a configuration is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import product
from pathlib import Path

LAYOUT = {"depth": "depth-v1-1", "normals": "normals-v1-1", "intrinsics": "iid-lighting-v1-1"}
DTYPES = ("float32", "float16", "bfloat16")
#: what ours also runs: float32 models under bf16/fp16 autocast (``Predictor(autocast=...)``)
OURS_DTYPES = (*DTYPES, "autocast-bfloat16", "autocast-float16")
BACKENDS = ("eager", "compile", "onnx")


def diffusers_pipeline_class(task: str) -> str:
    """The diffusers Marigold pipeline class of a task (the reference the benchmark compares with)."""
    from marigold_toolkit.tasks import get_task

    return get_task(task).pipeline_classes[0]


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process in MiB: allocated memory on CUDA, the resident-set high-water mark on CPU."""
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    try:  # this process's own high-water mark (ru_maxrss would include the parent's RSS when it forked us)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. under ``taskset``), else all cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def one_line(exc: BaseException | str, limit: int = 240) -> str:
    """An error as one table-safe line: ``Type: message`` with whitespace collapsed, no ``|``, at most ``limit``."""
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- variants and order ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """A variant of ours: ``backend`` eager/compile/onnx or ``"fast"`` (the machine-aware tier; ``dtype`` None),
    ``channels_last``, ``dtype``, and ``decoder``: None, ``"tiny"`` or a decoder folder / hub id as given."""

    backend: str
    channels_last: bool = False
    dtype: str | None = "float32"
    decoder: str | None = None

    @property
    def fast(self) -> bool:
        return self.backend == "fast"

    def _suffix(self) -> str:
        return f" @{self.decoder}" if self.decoder else ""

    def label(self, ran: dict | None = None) -> str:
        """The table's ``ours`` cell: ``eager+cl bfloat16``, ``fast (bfloat16+cl eager) @tiny``; ``ran`` (what the
        worker reports it ran) fills in the fast tier's choice and a compile that fell back to eager."""
        if self.fast:
            base = f"fast ({describe_ran(ran)})" if ran else "fast"
        else:
            base = f"{self.backend}{'+cl' if self.channels_last else ''} {self.dtype}"
            if ran and ran.get("backend") not in (None, self.backend):
                base += f" (ran {ran['backend']})"
        return base + self._suffix()

    def header_label(self, fast_plan: str) -> str:
        """The header's name: ``float32 (eager)``, ``fast (bfloat16+cl eager, machine-aware)``."""
        if self.fast:
            return f"fast ({fast_plan}, machine-aware){self._suffix()}"
        return f"{self.dtype} ({self.backend}{'+cl' if self.channels_last else ''}){self._suffix()}"


def describe_ran(ran: dict) -> str:
    """``bfloat16+cl eager`` (``autocast-bfloat16+cl eager``) from a worker's ``{"dtype", "channels_last",
    "backend", "autocast"}``."""
    dtype = f"autocast-{ran['autocast']}" if ran.get("autocast") else ran["dtype"]
    return f"{dtype}{'+cl' if ran.get('channels_last') else ''} {ran['backend']}"


def parse_variant(item: str, default_dtype: str) -> Variant:
    """``BACKEND[+cl][:DTYPE][@DECODER]`` or ``fast[@DECODER]`` -> :class:`Variant` (``ValueError`` if malformed).

    >>> parse_variant("eager+cl:bfloat16", "float32")
    Variant(backend='eager', channels_last=True, dtype='bfloat16', decoder=None)
    >>> parse_variant("fast@tiny", "float32")
    Variant(backend='fast', channels_last=False, dtype=None, decoder='tiny')
    """
    base, at, decoder = item.partition("@")
    if at and not decoder:
        raise ValueError(f"--ours {item!r}: '@' needs a decoder (tiny, or a decoder folder)")
    if base == "fast":
        return Variant("fast", False, None, decoder or None)
    if base.startswith("fast"):
        raise ValueError(f"--ours {item!r}: fast takes no layout or dtype, it picks them (name a fixed choice as "
                         f"BACKEND[+cl][:DTYPE])")
    backend, _, dtype = base.partition(":")
    dtype = dtype or default_dtype
    backend, plus, layout = backend.partition("+")
    if backend not in BACKENDS or (plus and layout != "cl") or (layout == "cl" and backend == "onnx"):
        raise ValueError(f"--ours {item!r}: backend must be eager, compile or onnx (eager+cl, compile+cl: "
                         f"channels-last), or fast")
    if dtype not in OURS_DTYPES:
        raise ValueError(f"--ours {item!r}: dtype must be one of {', '.join(OURS_DTYPES)}")
    if backend == "onnx" and dtype != "float32":
        raise ValueError(f"--ours {item!r}: the onnx backend runs float32 only")
    return Variant(backend, layout == "cl", dtype, decoder or None)


def _variants(args) -> list[Variant]:
    """``--ours`` (or ``--ours-backend``/``--ours-dtype``) -> the variants, in order."""
    default_dtype = args.ours_dtype or args.dtype
    if not args.ours:
        return [parse_variant(f"{args.ours_backend}:{default_dtype}", default_dtype)]
    out = [parse_variant(item, default_dtype) for item in (v.strip() for v in args.ours.split(",")) if item]
    if not out:
        raise ValueError("--ours names no variant")
    return out


def run_order(n_variants: int, repeat: int) -> list[int]:
    """The order repeat ``repeat`` runs its implementations in: indices into ``[reference, variant 1, ...,
    variant n]``, forward on even repeats and backward on odd ones (ABBA...), so drift cancels.

    >>> run_order(2, 0), run_order(2, 1), run_order(2, 2)
    ([0, 1, 2], [2, 1, 0], [0, 1, 2])
    """
    order = list(range(n_variants + 1))
    return order if repeat % 2 == 0 else order[::-1]


# -- worker ---------------------------------------------------------------------------------------------------
def worker(args: argparse.Namespace) -> None:
    """Run one (implementation, configuration) once: a warm-up call, then one timed call; write the timing, the
    memory and (``--save-prediction``) the prediction. On failure the result JSON carries ``error``."""
    if args.order_log:  # the start order, for checking the order policy
        with open(args.order_log, "a") as f:
            f.write(f"{args.repeat_index} {args.label}\n")
    try:
        _work(args)
    except Exception as exc:
        Path(args.result + ".json").write_text(json.dumps({"error": one_line(exc)}))
        raise


def _work(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads or default_threads())
    rng = np.random.default_rng(0)
    h, w = args.image_size
    image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    autocast = args.dtype.partition("autocast-")[2] or None
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[
        "float32" if autocast else args.dtype]
    kw = dict(num_inference_steps=args.steps, processing_resolution=args.resolution, batch_size=args.batch_size)
    ran = None
    if args.impl == "ours":
        from marigold_toolkit import Predictor

        if args.fast:
            model = Predictor.from_pretrained(args.checkpoint, device=args.device, fast=True, decoder=args.decoder)
        else:
            model = Predictor.from_pretrained(args.checkpoint, dtype=dtype, device=args.device, backend=args.backend,
                                              onnx_dir=args.onnx_dir, channels_last=args.channels_last,
                                              decoder=args.decoder, autocast=autocast)
        ran = {"dtype": str(model.dtype).replace("torch.", ""), "channels_last": bool(model.channels_last),
               "backend": model.backend,
               "autocast": None if model.autocast is None else str(model.autocast).replace("torch.", "")}

        def run(ensemble):
            out = model.predict(image, seed=0, ensemble_size=ensemble, **kw)
            return np.stack([v if v.ndim == 3 else v[..., None] for v in out.targets.values()])
    else:
        import diffusers
        from PIL import Image

        pipe = getattr(diffusers, diffusers_pipeline_class(args.task)).from_pretrained(args.checkpoint, torch_dtype=dtype)
        pipe = pipe.to(args.device)
        pipe.set_progress_bar_config(disable=True)
        pil = Image.fromarray(image)

        def run(ensemble):
            return pipe(pil, generator=torch.Generator("cpu").manual_seed(0), ensemble_size=ensemble, **kw).prediction

    def timed(ensemble):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = run(ensemble)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out, time.perf_counter() - t0

    # warm-up: the same model-call shapes as the timed run (batches of min(ensemble, batch) rows), fewer of them
    _, warmup = timed(min(args.ensemble, args.batch_size))
    pred, seconds = timed(args.ensemble)
    if args.save_prediction:
        np.save(args.result + ".npy", np.asarray(pred, dtype=np.float32))
    Path(args.result + ".json").write_text(json.dumps({"time": seconds, "times": [seconds], "warmup": warmup,
                                                       "peak_mb": peak_memory_mb(args.device), "ran": ran}))


def run_worker(cmd: list[str], result: str, what: str) -> dict:
    """Run one worker subprocess; its ``result.json`` (timings, memory) with ``pred`` = its saved output.
    Raises ``RuntimeError`` if it fails (``bench_large_input.py`` uses this)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-3000:]}")
    import numpy as np

    info = json.loads(Path(result + ".json").read_text())
    info["pred"] = np.load(result + ".npy")
    return info


def _run_worker_safe(cmd: list[str], result: str, what: str) -> dict:
    """Like :func:`run_worker` but a failure is a result: ``{"error": one-line reason}`` (the subprocess's stderr
    tail goes to our stderr)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    info = None
    try:
        info = json.loads(Path(result + ".json").read_text())
    except (OSError, ValueError):
        pass
    if proc.returncode != 0 or info is None or "error" in info:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        print(f"--- {what} failed (exit status {proc.returncode}):\n{tail}", file=sys.stderr, flush=True)
        if info and info.get("error"):
            return {"error": info["error"]}
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        status = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                  else f"exit status {proc.returncode}")
        return {"error": one_line(f"{status}: {lines[-1]}" if lines else status)}
    if Path(result + ".npy").is_file():
        import numpy as np

        info["pred"] = np.load(result + ".npy")
    return info


# -- what is benchmarked --------------------------------------------------------------------------------------
@dataclass
class Target:
    """One checkpoint: a random one (``random_size`` tiny/full, one per task) or a ``--model`` (``name``)."""

    task: str
    model: str  # the table's model cell
    path: Path | None = None  # the local folder (diffusers loads it from here)
    name: str | None = None  # what ours loads (the --model name: registry aliases keep their task/noise settings)
    random_size: str | None = None
    default_resolution: int | None = None
    error: str | None = None
    describe: str = ""

    @property
    def ours_checkpoint(self) -> str:
        return str(self.name if self.name is not None else self.path)


def _ensure_checkpoint(cache: Path, task: str, size: str) -> Path:
    from marigold_toolkit.testing import build_random_checkpoint

    folder = cache / f"{size}-{LAYOUT[task]}"
    if not (folder / "model_index.json").is_file():
        print(f"building a random {size} {LAYOUT[task]} checkpoint in {folder} ...", file=sys.stderr)
        build_random_checkpoint(folder, LAYOUT[task], size=size)
    return folder


def _ensure_onnx_export(ckpt: Path, folder: Path | None = None) -> Path:
    from marigold_toolkit.checkpoints.onnx import MANIFEST, export_onnx

    folder = folder or ckpt.parent / f"{ckpt.name}-onnx"
    if not (folder / MANIFEST).is_file():
        print(f"exporting {ckpt} to ONNX in {folder} ...", file=sys.stderr)
        export_onnx(ckpt, folder, overwrite=True)
    return folder


def _vae_config(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / "vae" / "config.json").read_text())


def _ensure_random_tiny_decoder(ckpt: Path, size: str) -> Path:
    """A random tiny decoder for a random checkpoint, built once next to it: TAESD's architecture for the
    full-size checkpoint, the tiny test architecture for the tiny one."""
    from marigold_toolkit.testing import build_random_tiny_decoder

    folder = ckpt.parent / f"{ckpt.name}-tiny-decoder"
    if not (folder / "config.json").is_file():
        arch = "taesd" if size == "full" else "tiny"
        print(f"building a random tiny decoder ({arch} architecture) in {folder} ...", file=sys.stderr)
        build_random_tiny_decoder(folder, latent_channels=int(_vae_config(ckpt).get("latent_channels", 4)),
                                  size=arch)
    return folder


def _model_cache_name(path: Path) -> str:
    return f"{path.name}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def _targets(args, size: str) -> list[Target]:
    if not args.model:
        tasks = [t for t in (args.tasks or "depth,normals,intrinsics").split(",") if t]
        out = []
        for task in tasks:
            path = _ensure_checkpoint(args.cache, task, size)
            out.append(Target(task, f"random {size}", path, random_size=size,
                              describe=f"random {size} {LAYOUT[task]}"))
        return out
    from marigold_toolkit.checkpoints.loading import load_spec

    out = []
    for name in args.model:
        try:
            spec = load_spec(name)
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint becomes a failed row
            out.append(Target("?", name, error=one_line(exc), describe=f"{name} (unreadable)"))
            continue
        res = spec.default_processing_resolution or 768
        out.append(Target(spec.task.name, name, spec.path, name=name, default_resolution=res,
                          describe=f"{name} ({spec.task.name}"
                                   f"{'' if Path(name).resolve() == spec.path else f', {spec.path}'}, "
                                   f"default resolution {res})"))
    return out


def _prepare(variant: Variant, target: Target, args) -> tuple[list[str], Path | None]:
    """The worker arguments of ``variant`` on ``target`` (exports the ONNX model, builds or finds the tiny
    decoder) and the decoder folder; raises what fails."""
    from marigold_toolkit.checkpoints.tiny_decoder import BUNDLED, tiny_decoder_folder

    extra: list[str] = []
    if variant.fast:
        extra.append("--fast")
    else:
        extra += ["--backend", variant.backend] + (["--channels-last"] if variant.channels_last else [])
        if variant.backend == "onnx":
            folder = None if target.random_size else args.cache / f"{_model_cache_name(target.path)}-onnx"
            extra += ["--onnx-dir", str(_ensure_onnx_export(target.path, folder))]
    decoder = None
    if variant.decoder == "tiny" and target.random_size:
        decoder = _ensure_random_tiny_decoder(target.path, target.random_size)
    elif variant.decoder:
        decoder = tiny_decoder_folder(BUNDLED if variant.decoder == "tiny" else variant.decoder, target.path)
    if decoder is not None:
        extra += ["--decoder", str(decoder)]
    return extra, decoder


# -- FLOPs ----------------------------------------------------------------------------------------------------
_DECODER_TFLOP: dict = {}


def decoder_tflop(folder: Path, latent_channels: int, latent_hw: tuple[int, int]) -> float:
    """TFLOP of one tiny-decoder call on a ``latent_hw`` latent (counted on meta tensors; cached)."""
    key = (str(folder), latent_channels, tuple(latent_hw))
    if key not in _DECODER_TFLOP:
        import torch
        from diffusers import AutoencoderTiny
        from diffusers.utils import logging as dlogging
        from torch.utils.flop_counter import FlopCounterMode

        verbosity = dlogging.get_verbosity()
        dlogging.set_verbosity_error()  # a distilled decoder's config has keys AutoencoderTiny ignores
        try:
            with torch.device("meta"):
                tiny = AutoencoderTiny.from_config(AutoencoderTiny.load_config(folder))
        finally:
            dlogging.set_verbosity(verbosity)
        z = torch.empty(1, latent_channels, *latent_hw, device="meta")
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            tiny.decode(z)
        _DECODER_TFLOP[key] = counter.get_total_flops() / 1e12
    return _DECODER_TFLOP[key]


def _tflop(cost, target: Target, decoder: Path | None) -> float | None:
    """``TFLOP/img`` of a variant: the checkpoint's count, with the tiny decoder's calls in place of the VAE
    decoder's where it uses one."""
    if cost is None:
        return None
    if decoder is None:
        return cost.total
    try:
        vae = _vae_config(target.path)
        stride = 2 ** (len(vae.get("block_out_channels", (0,) * 4)) - 1)
        ph, pw = cost.processing_size
        tiny = decoder_tflop(decoder, int(vae.get("latent_channels", 4)), (ph // stride, pw // stride))
    except Exception as exc:  # noqa: BLE001 - a count we cannot make is "n/a", not a failed row
        print(f"cannot count the FLOPs of decoder {decoder}: {one_line(exc)}", file=sys.stderr)
        return None
    return cost.total - cost.calls_decode * cost.decode_call + cost.calls_decode * tiny


# -- running one configuration --------------------------------------------------------------------------------
def _measure(impl: str, target: Target, cfg: dict, args, tmp: Path, repeat: int, label: str, dtype: str,
             extra: list[str] = ()) -> dict:
    slug = hashlib.sha1(f"{target.model}|{target.task}|{label}".encode()).hexdigest()[:10]
    result = str(tmp / f"{impl}-{slug}-{cfg['resolution']}-{cfg['steps']}-{cfg['ensemble']}-{cfg['batch_size']}-"
                       f"r{repeat}")
    ckpt = target.ours_checkpoint if impl == "ours" else str(target.path)
    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--task", target.task, "--checkpoint", ckpt,
           "--resolution", str(cfg["resolution"]), "--steps", str(cfg["steps"]), "--ensemble", str(cfg["ensemble"]),
           "--batch-size", str(cfg["batch_size"]), "--device", args.device, "--threads", str(args.threads),
           "--dtype", dtype, "--image-size", *map(str, args.image_size),
           "--result", result, "--repeat-index", str(repeat), "--label", label, *extra]
    if repeat == 0:
        cmd.append("--save-prediction")
    if args.order_log:
        cmd += ["--order-log", str(args.order_log)]
    return _run_worker_safe(cmd, result, f"{label} {target.model} {target.task} {cfg} repeat {repeat}")


def run_configuration(target: Target, cfg: dict, variants: list[Variant], prepared: list, args, tmp: Path):
    """All repeats of one configuration in the alternating order -> ``(reference runs or {"error"}, per variant:
    its runs or {"error"})``."""
    ref_runs: list[dict] = []
    runs: list = [[] if not isinstance(p, str) else {"error": p} for p in prepared]
    for repeat in range(args.repeats):
        for idx in run_order(len(variants), repeat):
            if idx == 0:
                info = _measure("diffusers", target, cfg, args, tmp, repeat, "diffusers", args.dtype)
                if "error" in info:
                    return {"error": info["error"]}, runs
                ref_runs.append(info)
                continue
            i = idx - 1
            if isinstance(runs[i], dict):  # failed before: not run again
                continue
            v = variants[i]  # (fast: the worker picks the dtype)
            info = _measure("ours", target, cfg, args, tmp, repeat, v.label(), v.dtype or args.dtype, prepared[i][0])
            if "error" in info:
                runs[i] = {"error": info["error"]}
            else:
                runs[i].append(info)
    return ref_runs, runs


def make_row(target: Target, cfg: dict, variant: Variant, ref_runs, runs, tflop: float | None) -> dict:
    """One table row from the runs of a variant and of its reference."""
    import numpy as np

    row = dict(task=target.task, model=target.model, cfg=cfg, variant=variant.label())
    if isinstance(runs, dict):
        return dict(row, error=runs["error"])
    row["variant"] = variant.label(runs[0].get("ran"))
    try:
        ours_pred, ref_pred = runs[0]["pred"], ref_runs[0]["pred"]
        if ours_pred.shape != ref_pred.shape:
            raise ValueError(f"output shape {ours_pred.shape} differs from the reference's {ref_pred.shape}")
        err = np.abs(ours_pred - ref_pred)
        # depth: AbsRel between the two outputs (mean |ours - ref| / ref); others: mean abs difference
        rel = (float((err / np.maximum(np.abs(ref_pred), 1e-3)).mean()) if target.task == "depth"
               else float(err.mean()))
    except Exception as exc:  # noqa: BLE001
        return dict(row, error=one_line(exc))
    ratios = [r["time"] / o["time"] for r, o in zip(ref_runs, runs)]
    return dict(row, t_ours=statistics.median(o["time"] for o in runs),
                t_ref=statistics.median(r["time"] for r in ref_runs),
                speedup=statistics.median(ratios), speedup_lo=min(ratios), speedup_hi=max(ratios),
                mem_ours=max(o["peak_mb"] for o in runs), mem_ref=max(r["peak_mb"] for r in ref_runs),
                diff=float(err.max()), rel=rel, warmup=statistics.median(o["warmup"] for o in runs), tflop=tflop)


# -- main -----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model and small configurations (seconds)")
    p.add_argument("--tasks", help="tasks of the random checkpoints (default depth,normals,intrinsics)")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="benchmark this trained checkpoint (registry alias such as demo-depth, hub id or folder in "
                        "diffusers' layout; repeatable or comma-separated) instead of the random ones, at its own "
                        "default processing resolution unless --resolutions is given")
    p.add_argument("--resolutions", help="processing resolutions (default 512,768; --quick 64; --model: the "
                                         "checkpoint's default)")
    p.add_argument("--steps", default="1,4")
    p.add_argument("--ensembles", default="1,10")
    p.add_argument("--batch-sizes", default="1")
    p.add_argument("--repeats", type=int, default=3,
                   help="fresh-process runs of each implementation per configuration, in alternating order "
                        "(an even number cancels drift)")
    p.add_argument("--device", default=None, help="cpu or cuda (default cuda where available)")
    p.add_argument("--dtype", default="float32", choices=OURS_DTYPES,  # a worker gets ours' dtype here
                   help="dtype of the diffusers reference (float32, float16 or bfloat16; and of ours unless "
                        "--ours-dtype or a variant's :DTYPE)")
    p.add_argument("--ours-dtype", choices=OURS_DTYPES,
                   help="run ours in this dtype and report its deviation from the reference")
    p.add_argument("--ours-backend", default="eager", choices=BACKENDS,
                   help="run ours through torch.compile or ONNX Runtime (float32) and report its deviation from "
                        "the reference")
    p.add_argument("--ours", help="comma-separated variants of ours, each BACKEND[+cl][:DTYPE][@DECODER] (backend "
                                  "eager, compile or onnx; +cl: channels-last) or fast[@DECODER] (the machine-aware "
                                  "fast tier); @tiny: a tiny decoder (random for the random checkpoints, the "
                                  "bundled one for --model), @PATH: that decoder folder; all measured against the "
                                  "same diffusers reference: e.g. "
                                  "eager,eager+cl:bfloat16,eager+cl:autocast-bfloat16,fast,fast@tiny (default: "
                                  "--ours-backend with --ours-dtype)")
    p.add_argument("--gemm", action="store_true",
                   help="also measure this machine's float32 matrix-product rate (GFLOP/s) for the header")
    p.add_argument("--image-size", type=int, nargs=2, default=(768, 1024), metavar=("H", "W"))
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads per run (torch and ONNX Runtime; default 0 = the CPUs this process may use). "
                        "On a shared, busy machine 1 thread gives far steadier timings")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "marigold-bench-checkpoints")
    p.add_argument("--output", type=Path, help="also write the header and the Markdown table to this file")
    p.add_argument("--order-log", type=Path, metavar="FILE",
                   help="append one line per worker subprocess as it starts ('REPEAT LABEL'): the run order")
    # worker-only arguments
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--task", help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", help=argparse.SUPPRESS)
    p.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    p.add_argument("--ensemble", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--backend", default="eager", help=argparse.SUPPRESS)
    p.add_argument("--onnx-dir", help=argparse.SUPPRESS)
    p.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--decoder", help=argparse.SUPPRESS)
    p.add_argument("--repeat-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--label", default="", help=argparse.SUPPRESS)
    p.add_argument("--save-prediction", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.steps = int(args.steps)
        args.device = args.device or "cpu"
        worker(args)
        return 0
    if args.dtype not in DTYPES:
        p.error(f"--dtype {args.dtype}: the diffusers reference runs float32, float16 or bfloat16 (autocast is "
                "ours only: --ours-dtype or a variant's :DTYPE)")

    args.device = args.device or ("cuda" if _cuda() else "cpu")
    args.threads = args.threads or default_threads()
    args.model = [m.strip() for item in (args.model or []) for m in item.split(",") if m.strip()]
    if args.model and args.tasks:
        p.error("--tasks chooses the random checkpoints; --model's checkpoints have their own task")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    size = "full"
    if args.quick:
        size = "tiny"
        quick = dict(steps="1", ensembles="1,3", batch_sizes="1", repeats=1, image_size=(48, 64))
        for key, value in quick.items():  # explicit flags win over the quick defaults
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    try:
        variants = _variants(args)
    except ValueError as exc:
        p.error(str(exc))

    out_text: list[str] = []

    def emit(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        out_text.append(text)

    targets = _targets(args, size)
    emit(_header(args, targets, variants))
    emit(table_head())
    from marigold_toolkit.pipeline.cost import inference_cost

    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            if target.error:
                emit(format_row(dict(task=target.task, model=target.model, cfg=None, variant="all",
                                     error=f"cannot read the checkpoint: {target.error}")))
                failed = True
                continue
            prepared = []
            for v in variants:
                try:
                    prepared.append(_prepare(v, target, args))
                except Exception as exc:  # noqa: BLE001 - a variant that cannot be set up is a failed row
                    prepared.append(one_line(exc))
            for cfg in _configs(args, target, size):
                ref_runs, runs = run_configuration(target, cfg, variants, prepared, args, Path(tmp))
                if isinstance(ref_runs, dict):  # no reference: the configuration is skipped, in one row
                    emit(format_row(dict(task=target.task, model=target.model, cfg=cfg, variant="all",
                                         error=f"diffusers reference: {ref_runs['error']} (configuration "
                                               f"skipped)")))
                    failed = True
                    continue
                try:
                    cost = inference_cost(target.path, args.image_size, cfg["resolution"], cfg["steps"],
                                          cfg["ensemble"])
                except Exception as exc:  # noqa: BLE001
                    print(f"cannot count the FLOPs of {target.model}: {one_line(exc)}", file=sys.stderr)
                    cost = None
                for v, prep, v_runs in zip(variants, prepared, runs):
                    decoder = None if isinstance(prep, str) else prep[1]
                    tflop = _tflop(cost, target, decoder) if not isinstance(v_runs, dict) else None
                    row = make_row(target, cfg, v, ref_runs, v_runs, tflop)
                    failed = failed or "error" in row
                    emit(format_row(row))
    if args.output:
        args.output.write_text("".join(out_text))
    return 1 if failed else 0


def _configs(args, target: Target, size: str) -> list[dict]:
    if args.resolutions:
        resolutions = args.resolutions
    elif target.default_resolution is not None:
        resolutions = str(target.default_resolution)
    else:
        resolutions = "64" if size == "tiny" else "512,768"
    return [dict(resolution=r, steps=s, ensemble=e, batch_size=b) for r, s, e, b in product(
        map(int, resolutions.split(",")), map(int, args.steps.split(",")),
        map(int, args.ensembles.split(",")), map(int, args.batch_sizes.split(",")))
        if not (b > 1 and e == 1)]


def gemm_gflops(threads: int) -> float:
    """This machine's float32 matrix-product rate (best of 3 products of two 2048x2048 matrices)."""
    import torch

    torch.set_num_threads(threads or default_threads())
    a = torch.randn(2048, 2048)
    a @ a
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048**3 / best / 1e9


def _fast_plan_text(device: str) -> str:
    try:
        from marigold_toolkit.pipeline.fast import choose_fast_plan

        plan = choose_fast_plan(device)
    except Exception as exc:  # noqa: BLE001
        return f"plan unknown: {one_line(exc, 80)}"
    return describe_ran(dict(dtype=plan.dtype, channels_last=plan.channels_last, backend=plan.backend,
                             autocast=plan.dtype if plan.autocast else None))


def _header(args, targets: list[Target], variants: list[Variant]) -> str:
    """One line: the machine (CPU with its SIMD flags, torch threads, GPU), versions, the implementations, the
    model(s), the input and the timing/order policy."""
    import diffusers
    import torch

    from marigold_toolkit.core.machine import cpu_description, gpu_description

    gemm = f", float32 GEMM {gemm_gflops(args.threads):.0f} GFLOP/s" if args.gemm and args.device == "cpu" else ""
    plan = _fast_plan_text(args.device) if any(v.fast for v in variants) else ""
    ours = ", ".join(v.header_label(plan) for v in variants)
    models = "; ".join(t.describe for t in targets)
    n = args.repeats
    return (f"Machine: {cpu_description()}{gemm}; {args.threads} torch threads; GPU {gpu_description()}; "
            f"torch {torch.__version__}, diffusers {diffusers.__version__}; device {args.device}, "
            f"diffusers {args.dtype}, ours {ours}; model {models}; input {args.image_size[1]}x{args.image_size[0]}; "
            f"median of {n} repeat{'s' if n != 1 else ''} after warm-up, each run a fresh process (1 warm-up + 1 "
            f"timed call), order alternating per repeat (even repeats: diffusers then ours in --ours order, odd: "
            f"reversed); speed-up = median (range: min-max) of the repeats' paired ratios\n\n")


COLUMNS = ("task", "model", "res", "steps", "ens", "batch", "ours", "ours s/img", "diffusers s/img", "speed-up",
           "speed-up range", "ours img/s", "ours peak MB", "diffusers peak MB", "ours warm-up s", "TFLOP/img",
           "ours GFLOP/s", "max abs diff", "deviation")
#: the cells that name a row (the others are measurements; in a failed row the first says ``failed: <reason>``,
#: the others ``failed``)
KEY_COLUMNS = 7


def table_head() -> str:
    return "| " + " | ".join(COLUMNS) + " |\n" + "|" + "---|" * len(COLUMNS) + "\n"


def format_row(r: dict) -> str:
    """One Markdown table line (a configuration and a variant of ours, or a failure)."""
    cfg = r.get("cfg")
    key = (r["task"], r.get("model", ""), *((cfg["resolution"], cfg["steps"], cfg["ensemble"], cfg["batch_size"])
                                          if cfg else ("-",) * 4), r["variant"])
    if r.get("error"):  # the reason once, in the first measurement cell; the others say "failed"
        cells = key + (f"failed: {one_line(r['error'])}",) + ("failed",) * (len(COLUMNS) - KEY_COLUMNS - 1)
    else:
        to, tr, tflop = r["t_ours"], r["t_ref"], r.get("tflop")
        cells = key + (f"{to:.3f}", f"{tr:.3f}", f"{r['speedup']:.2f}x",
                       f"{r['speedup_lo']:.2f}-{r['speedup_hi']:.2f}x", f"{1 / to:.2f}", f"{r['mem_ours']:.0f}",
                       f"{r['mem_ref']:.0f}", f"{r['warmup']:.2f}", "n/a" if tflop is None else f"{tflop:.3g}",
                       "n/a" if tflop is None else f"{tflop * 1e3 / to:.1f}", f"{r['diff']:.1e}", f"{r['rel']:.2%}")
    return "| " + " | ".join(map(str, cells)) + " |\n"


def format_table(rows: list[dict]) -> str:
    """The Markdown table (one line per configuration and variant of ours)."""
    return table_head() + "".join(format_row(r) for r in rows)


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


if __name__ == "__main__":
    sys.exit(main())

"""Inference speed and memory: marigold-toolkit vs diffusers' Marigold pipelines, side by side in one run.

Both run the same randomly initialised checkpoint (timing does not depend on the weight values) on the same
image with the same seed. Every measurement runs in its own subprocess, so peak memory (RSS on CPU, allocated
memory on CUDA) is that configuration's alone. Prints a Markdown table:

    python benchmarks/bench_inference.py                  # full SD2 architecture, 512/768, steps 1/4, ensemble 1/10
    python benchmarks/bench_inference.py --quick          # tiny model, a few small configurations (CI)
    python benchmarks/bench_inference.py --tasks depth --resolutions 768 --steps 1 --ensembles 10 --repeats 3

Columns: latency per image (median of repeats after one warm-up), images/s, peak memory, the max abs
difference of our prediction from diffusers', and the deviation (depth: AbsRel between the two outputs; other
tasks: mean abs difference). ``--ours`` lists the variants of ours measured against the one diffusers reference
of each configuration, e.g. ``--ours eager,eager+cl,onnx,compile,eager:bfloat16`` (``BACKEND[:DTYPE]``; ``+cl``:
channels-last layout; torch.compile with inductor; ONNX Runtime on an export of the checkpoint, made once per
checkpoint in the cache folder);
``--ours-backend``/``--ours-dtype`` name a single variant. The warm-up column is the first call's time
(torch.compile compiles there). The warm-up call runs ``min(ensemble, batch size)`` members, so it makes every
model call of the timed runs with the same shapes at a fraction of their cost. Compare backends at ensemble 1:
depth ensembling's BFGS alignment amplifies float-level differences. ``--threads 1`` gives steady timings on a
shared, busy machine.

``TFLOP/img`` counts the floating-point operations of the model calls one image needs (one VAE encode,
ensemble x steps UNet calls, ensemble x targets VAE decodes; torch's FLOP counter on meta tensors, so nothing
runs); ``ours GFLOP/s`` divides it by our latency. On a CPU both implementations run the same float32
convolutions and matrix products through the same oneDNN/MKL kernels, so their ratio to the machine's measured
GEMM rate (``--gemm``) is how close to the compute floor a configuration is.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import product
from pathlib import Path

LAYOUT = {"depth": "depth-v1-1", "normals": "normals-v1-1", "intrinsics": "iid-lighting-v1-1"}
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


def worker(args: argparse.Namespace) -> None:
    """Run one (implementation, configuration) and write timings, memory and the prediction."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    rng = np.random.default_rng(0)
    h, w = args.image_size
    image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    kw = dict(num_inference_steps=args.steps, processing_resolution=args.resolution, batch_size=args.batch_size)
    if args.impl == "ours":
        from marigold_toolkit import Predictor

        model = Predictor.from_pretrained(args.checkpoint, dtype=dtype, device=args.device, backend=args.backend,
                                          onnx_dir=args.onnx_dir, channels_last=args.channels_last)

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

    # warm-up: the same model-call shapes as the timed runs (batches of min(ensemble, batch) rows), fewer of them
    _, warmup = timed(min(args.ensemble, args.batch_size))
    pred, times = None, []
    for _ in range(args.repeats):
        out, dt = timed(args.ensemble)
        pred = out if pred is None else pred  # the output compared between implementations
        times.append(dt)
    np.save(args.result + ".npy", np.asarray(pred, dtype=np.float32))
    Path(args.result + ".json").write_text(json.dumps({"times": times, "warmup": warmup,
                                                       "peak_mb": peak_memory_mb(args.device)}))


def _ensure_checkpoint(cache: Path, task: str, size: str) -> Path:
    from marigold_toolkit.testing import build_random_checkpoint

    folder = cache / f"{size}-{LAYOUT[task]}"
    if not (folder / "model_index.json").is_file():
        print(f"building a random {size} {LAYOUT[task]} checkpoint in {folder} ...", file=sys.stderr)
        build_random_checkpoint(folder, LAYOUT[task], size=size)
    return folder


def _ensure_onnx_export(ckpt: Path) -> Path:
    from marigold_toolkit.checkpoints.onnx import MANIFEST, export_onnx

    folder = ckpt.parent / f"{ckpt.name}-onnx"
    if not (folder / MANIFEST).is_file():
        print(f"exporting {ckpt} to ONNX in {folder} ...", file=sys.stderr)
        export_onnx(ckpt, folder, overwrite=True)
    return folder


def _measure(impl: str, task: str, ckpt: Path, cfg: dict, args, tmp: Path, dtype: str, backend: str = "eager") -> dict:
    result = str(tmp / f"{impl}-{backend}-{dtype}-{task}-{cfg['resolution']}-{cfg['steps']}-{cfg['ensemble']}-"
                       f"{cfg['batch_size']}")
    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--task", task, "--checkpoint", str(ckpt),
           "--resolution", str(cfg["resolution"]), "--steps", str(cfg["steps"]), "--ensemble", str(cfg["ensemble"]),
           "--batch-size", str(cfg["batch_size"]), "--repeats", str(args.repeats), "--device", args.device,
           "--threads", str(args.threads or 0),
           "--dtype", dtype, "--image-size", *map(str, args.image_size), "--result", result]
    if impl == "ours":
        backend, _, layout = backend.partition("+")
        cmd += ["--backend", backend] + (["--channels-last"] if layout == "cl" else [])
        if backend == "onnx":
            cmd += ["--onnx-dir", str(_ensure_onnx_export(ckpt))]
    return run_worker(cmd, result, f"{impl} {task} {cfg}")


def run_worker(cmd: list[str], result: str, what: str) -> dict:
    """Run one worker subprocess; its ``result.json`` (timings, memory) with ``pred`` = its saved output."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-3000:]}")
    import numpy as np

    info = json.loads(Path(result + ".json").read_text())
    info["pred"] = np.load(result + ".npy")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model and small configurations (seconds)")
    p.add_argument("--tasks", default="depth,normals,intrinsics")
    p.add_argument("--resolutions", default="512,768")
    p.add_argument("--steps", default="1,4")
    p.add_argument("--ensembles", default="1,10")
    p.add_argument("--batch-sizes", default="1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                   help="dtype of the diffusers reference (and of ours unless --ours-dtype)")
    p.add_argument("--ours-dtype", choices=("float32", "float16", "bfloat16"),
                   help="fast tier: run ours in this dtype and report its deviation from the reference")
    p.add_argument("--ours-backend", default="eager", choices=("eager", "compile", "onnx"),
                   help="fast tier: run ours through torch.compile or ONNX Runtime (float32) and report its "
                        "deviation from the reference")
    p.add_argument("--ours", help="comma-separated variants of ours, each BACKEND[:DTYPE] (backend eager, compile or "
                                  "onnx; eager+cl, compile+cl run channels-last), all measured against the same "
                                  "diffusers reference: e.g. eager,eager+cl,onnx (default: --ours-backend with "
                                  "--ours-dtype)")
    p.add_argument("--gemm", action="store_true",
                   help="also measure this machine's float32 matrix-product rate (GFLOP/s) for the header")
    p.add_argument("--image-size", type=int, nargs=2, default=(768, 1024), metavar=("H", "W"))
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads per run (torch and ONNX Runtime; default 0 = all cores). On a shared, busy "
                        "machine 1 thread gives far steadier timings")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "marigold-bench-checkpoints")
    p.add_argument("--output", type=Path, help="also write the Markdown table to this file")
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
    args = p.parse_args(argv)
    if args.worker:
        args.steps = int(args.steps)
        worker(args)
        return 0

    size = "full"
    if args.quick:
        size = "tiny"
        quick = dict(resolutions="64", steps="1", ensembles="1,3", batch_sizes="1", repeats=1, image_size=(48, 64))
        for key, value in quick.items():  # explicit flags win over the quick defaults
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    try:
        variants = _variants(args)
    except ValueError as exc:
        p.error(str(exc))
    tasks = [t for t in args.tasks.split(",") if t]
    configs = [dict(resolution=r, steps=s, ensemble=e, batch_size=b) for r, s, e, b in product(
        map(int, args.resolutions.split(",")), map(int, args.steps.split(",")),
        map(int, args.ensembles.split(",")), map(int, args.batch_sizes.split(",")))
        if not (b > 1 and e == 1)]
    import numpy as np

    from marigold_toolkit.pipeline.cost import inference_cost

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            ckpt = _ensure_checkpoint(args.cache, task, size)
            for cfg in configs:
                ref = _measure("diffusers", task, ckpt, cfg, args, Path(tmp), args.dtype)
                tflop = inference_cost(ckpt, args.image_size, cfg["resolution"], cfg["steps"], cfg["ensemble"]).total
                for backend, dtype in variants:
                    ours = _measure("ours", task, ckpt, cfg, args, Path(tmp), dtype, backend)
                    t_ours, t_ref = statistics.median(ours["times"]), statistics.median(ref["times"])
                    err = np.abs(ours["pred"] - ref["pred"])
                    # depth: AbsRel between the two outputs (mean |ours - ref| / ref); others: mean abs difference
                    rel = (float((err / np.maximum(np.abs(ref["pred"]), 1e-3)).mean()) if task == "depth"
                           else float(err.mean()))
                    rows.append(dict(task=task, cfg=cfg, variant=f"{backend} {dtype}", t_ours=t_ours, t_ref=t_ref,
                                     mem_ours=ours["peak_mb"], mem_ref=ref["peak_mb"], diff=float(err.max()),
                                     rel=rel, warmup=ours["warmup"], tflop=tflop))
    table = _header(args, size, variants) + format_table(rows)
    sys.stdout.write(table)
    if args.output:
        args.output.write_text(table)
    return 0


def _variants(args) -> list[tuple[str, str]]:
    """``--ours`` (or ``--ours-backend``/``--ours-dtype``) -> ``[(backend, dtype), ...]``."""
    default_dtype = args.ours_dtype or args.dtype
    if not args.ours:
        return [(args.ours_backend, default_dtype)]
    out = []
    for item in (v.strip() for v in args.ours.split(",") if v.strip()):
        backend, _, dtype = item.partition(":")
        dtype = dtype or default_dtype
        if backend not in ("eager", "compile", "onnx", "eager+cl", "compile+cl"):
            raise ValueError(f"--ours {item!r}: backend must be eager, compile or onnx (eager+cl, compile+cl: "
                             f"channels-last)")
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"--ours {item!r}: dtype must be float32, float16 or bfloat16")
        if backend == "onnx" and dtype != "float32":
            raise ValueError(f"--ours {item!r}: the onnx backend runs float32 only")
        out.append((backend, dtype))
    if not out:
        raise ValueError("--ours names no variant")
    return out


def gemm_gflops(threads: int) -> float:
    """This machine's float32 matrix-product rate (best of 3 products of two 2048x2048 matrices)."""
    import torch

    torch.set_num_threads(threads or max(1, os.cpu_count() or 1))
    a = torch.randn(2048, 2048)
    a @ a
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048**3 / best / 1e9


def _header(args, size: str, variants) -> str:
    import platform

    import torch

    gemm = f", float32 GEMM {gemm_gflops(args.threads):.0f} GFLOP/s" if args.gemm and args.device == "cpu" else ""
    ours = ", ".join(f"{d} ({b})" for b, d in variants)
    return (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores{gemm}, torch "
            f"{torch.__version__}, {args.threads or os.cpu_count()} threads, device {args.device}, "
            f"diffusers {args.dtype}, ours {ours}, model {size}, input {args.image_size[1]}x{args.image_size[0]}, "
            f"median of {args.repeats} after warm-up\n\n")


COLUMNS = ("task", "res", "steps", "ens", "batch", "ours", "ours s/img", "diffusers s/img", "speed-up", "ours img/s",
           "ours peak MB", "diffusers peak MB", "ours warm-up s", "TFLOP/img", "ours GFLOP/s", "max abs diff",
           "deviation")


def format_table(rows: list[dict]) -> str:
    """The Markdown table (one line per configuration and variant of ours)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cfg, to, tr = r["cfg"], r["t_ours"], r["t_ref"]
        cells = (r["task"], cfg["resolution"], cfg["steps"], cfg["ensemble"], cfg["batch_size"], r["variant"],
                 f"{to:.3f}", f"{tr:.3f}", f"{tr / to:.2f}x", f"{1 / to:.2f}", f"{r['mem_ours']:.0f}",
                 f"{r['mem_ref']:.0f}", f"{r['warmup']:.2f}", f"{r['tflop']:.3g}", f"{r['tflop'] * 1e3 / to:.1f}",
                 f"{r['diff']:.1e}", f"{r['rel']:.2%}")
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


if __name__ == "__main__":
    sys.exit(main())

"""Inference speed and memory: marigold-toolkit vs diffusers' Marigold pipelines, side by side in one run.

Both run the same randomly initialised checkpoint (timing does not depend on the weight values) on the same
image with the same seed. Every measurement runs in its own subprocess, so peak memory (RSS on CPU, allocated
memory on CUDA) is that configuration's alone. Prints a Markdown table:

    python benchmarks/bench_inference.py                  # full SD2 architecture, 512/768, steps 1/4, ensemble 1/10
    python benchmarks/bench_inference.py --quick          # tiny model, a few small configurations (CI)
    python benchmarks/bench_inference.py --tasks depth --resolutions 768 --steps 1 --ensembles 10 --repeats 3

Columns: latency per image (median of repeats after one warm-up), images/s, peak memory, the max abs
difference of our prediction from diffusers', and the deviation (depth: AbsRel between the two outputs; other
tasks: mean abs difference). ``--ours-dtype bfloat16`` measures the fast tier against a float32 reference, and
so does ``--ours-backend compile|onnx`` (torch.compile with inductor; ONNX Runtime on an export of the checkpoint,
made once per checkpoint in the cache folder). The warm-up column is the first call's time (torch.compile
compiles there). Compare backends at ensemble 1: depth ensembling's BFGS alignment amplifies float-level
differences. ``--threads 1`` gives steady timings on a shared, busy machine.
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
PIPELINE = {"depth": "MarigoldDepthPipeline", "normals": "MarigoldNormalsPipeline",
            "intrinsics": "MarigoldIntrinsicsPipeline"}


def _peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
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
    kw = dict(num_inference_steps=args.steps, ensemble_size=args.ensemble, processing_resolution=args.resolution,
              batch_size=args.batch_size)
    if args.impl == "ours":
        from marigold_toolkit import Predictor

        model = Predictor.from_pretrained(args.checkpoint, dtype=dtype, device=args.device, backend=args.backend,
                                          onnx_dir=args.onnx_dir)

        def run():
            out = model.predict(image, seed=0, **kw)
            return np.stack([v if v.ndim == 3 else v[..., None] for v in out.targets.values()])
    else:
        import diffusers
        from PIL import Image

        pipe = getattr(diffusers, PIPELINE[args.task]).from_pretrained(args.checkpoint, torch_dtype=dtype)
        pipe = pipe.to(args.device)
        pipe.set_progress_bar_config(disable=True)
        pil = Image.fromarray(image)

        def run():
            return pipe(pil, generator=torch.Generator("cpu").manual_seed(0), **kw).prediction

    t0 = time.perf_counter()
    pred = run()  # warm-up (and the output compared between implementations)
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    np.save(args.result + ".npy", np.asarray(pred, dtype=np.float32))
    Path(args.result + ".json").write_text(json.dumps({"times": times, "warmup": warmup,
                                                       "peak_mb": _peak_memory_mb(args.device)}))


def _ensure_checkpoint(cache: Path, task: str, size: str) -> Path:
    from marigold_toolkit.models.random_init import build_random_checkpoint

    folder = cache / f"{size}-{LAYOUT[task]}"
    if not (folder / "model_index.json").is_file():
        print(f"building a random {size} {LAYOUT[task]} checkpoint in {folder} ...", file=sys.stderr)
        build_random_checkpoint(folder, LAYOUT[task], size=size)
    return folder


def _ensure_onnx_export(ckpt: Path) -> Path:
    from marigold_toolkit.models.export import MANIFEST, export_onnx

    folder = ckpt.parent / f"{ckpt.name}-onnx"
    if not (folder / MANIFEST).is_file():
        print(f"exporting {ckpt} to ONNX in {folder} ...", file=sys.stderr)
        export_onnx(ckpt, folder, overwrite=True)
    return folder


def _measure(impl: str, task: str, ckpt: Path, cfg: dict, args, tmp: Path, dtype: str) -> dict:
    result = str(tmp / f"{impl}-{task}-{cfg['resolution']}-{cfg['steps']}-{cfg['ensemble']}-{cfg['batch_size']}")
    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--task", task, "--checkpoint", str(ckpt),
           "--resolution", str(cfg["resolution"]), "--steps", str(cfg["steps"]), "--ensemble", str(cfg["ensemble"]),
           "--batch-size", str(cfg["batch_size"]), "--repeats", str(args.repeats), "--device", args.device,
           "--threads", str(args.threads or 0),
           "--dtype", dtype, "--image-size", *map(str, args.image_size), "--result", result]
    if impl == "ours":
        cmd += ["--backend", args.ours_backend]
        if args.ours_backend == "onnx":
            cmd += ["--onnx-dir", str(_ensure_onnx_export(ckpt))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} {task} {cfg} failed:\n{proc.stderr[-3000:]}")
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
    tasks = [t for t in args.tasks.split(",") if t]
    configs = [dict(resolution=r, steps=s, ensemble=e, batch_size=b) for r, s, e, b in product(
        map(int, args.resolutions.split(",")), map(int, args.steps.split(",")),
        map(int, args.ensembles.split(",")), map(int, args.batch_sizes.split(",")))
        if not (b > 1 and e == 1)]
    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            ckpt = _ensure_checkpoint(args.cache, task, size)
            for cfg in configs:
                ours = _measure("ours", task, ckpt, cfg, args, Path(tmp), args.ours_dtype or args.dtype)
                ref = _measure("diffusers", task, ckpt, cfg, args, Path(tmp), args.dtype)
                t_ours, t_ref = statistics.median(ours["times"]), statistics.median(ref["times"])
                err = np.abs(ours["pred"] - ref["pred"])
                diff = float(err.max())
                # depth: AbsRel between the two outputs (mean |ours - ref| / ref); other tasks: mean abs difference
                rel = float((err / np.maximum(np.abs(ref["pred"]), 1e-3)).mean()) if task == "depth" else float(err.mean())
                rows.append((task, cfg, t_ours, t_ref, ours["peak_mb"], ref["peak_mb"], diff, rel, ours["warmup"]))
    import platform

    import torch

    head = (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
            f"{torch.__version__}, {args.threads or os.cpu_count()} threads, device {args.device}, "
            f"diffusers {args.dtype}, ours {args.ours_dtype or args.dtype} "
            f"({args.ours_backend}), "
            f"model {size}, input {args.image_size[1]}x"
            f"{args.image_size[0]}, median of {args.repeats} after warm-up\n\n")
    lines = ["| task | res | steps | ens | batch | ours s/img | diffusers s/img | speed-up | ours img/s | "
             "ours peak MB | diffusers peak MB | ours warm-up s | max abs diff | deviation |", "|" + "---|" * 14]
    for task, cfg, to, tr, mo, mr, d, rel, wu in rows:
        lines.append(f"| {task} | {cfg['resolution']} | {cfg['steps']} | {cfg['ensemble']} | {cfg['batch_size']} | "
                     f"{to:.3f} | {tr:.3f} | {tr / to:.2f}x | {1 / to:.2f} | {mo:.0f} | {mr:.0f} | {wu:.2f} | "
                     f"{d:.1e} | {rel:.2%} |")
    table = head + "\n".join(lines) + "\n"
    sys.stdout.write(table)
    if args.output:
        args.output.write_text(table)
    return 0


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


if __name__ == "__main__":
    sys.exit(main())

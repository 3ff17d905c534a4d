"""Very large inputs: a 4000x3000 photo at native processing resolution, tiled VAE, ours vs diffusers side by side.

Each run is its own subprocess (so its peak memory is its own) on the same synthetic photo and seed:

    python benchmarks/bench_large_input.py                         # demo-depth, 4000x3000, tiled: ours, diffusers
    python benchmarks/bench_large_input.py --untiled               # also ours without tiling (memory comparison)
    python benchmarks/bench_large_input.py --model /path/to/marigold-depth-v1-1 --tile-size 768
    python benchmarks/bench_large_input.py --quick                 # tiny model, 600x800 (CI)

Both implementations use the same tiling (diffusers' ``AutoencoderKL`` tiles, ``--tile-size`` pixels, 25 %
overlap; :func:`marigold_toolkit.checkpoints.loading.enable_vae_tiling`). The UNet always runs on the whole latent
(its attention uses PyTorch's memory-efficient SDPA kernels). Columns: latency, peak memory, TFLOP of the
configuration (counted on meta tensors, :mod:`marigold_toolkit.pipeline.cost`), achieved GFLOP/s, the max
difference from diffusers' output. ``--cost-model CKPT`` adds the FLOP count of another checkpoint at the same
size with the time it would take at the rate measured here (an estimate, marked as such: e.g. the full SD2
architecture, which a 2-core CPU would need hours for).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench_inference import _ensure_checkpoint, peak_memory_mb, run_worker


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from marigold_toolkit.checkpoints.loading import enable_vae_tiling

    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    h, w = args.image_size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)  # a smooth synthetic photo (deterministic, cheap to make)
    image = np.stack([(xx / w), (yy / h), 0.5 + 0.5 * np.sin(xx / 97.0) * np.cos(yy / 83.0)], -1)
    image = (image * 255).astype(np.uint8)
    tiled = not args.untiled_run
    t0 = time.perf_counter()
    if args.impl == "ours":
        from marigold_toolkit import Predictor

        model = Predictor.from_pretrained(args.model, device=args.device, vae_tiling=tiled,
                                          vae_tile_size=args.tile_size if tiled else None)
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict(image, num_inference_steps=args.steps, processing_resolution=0, seed=0).prediction
    else:
        import diffusers
        from PIL import Image

        from marigold_toolkit.checkpoints import resolve_checkpoint_path, read_spec

        folder = resolve_checkpoint_path(args.model)
        pipe = getattr(diffusers, read_spec(folder).task.pipeline_classes[0]).from_pretrained(folder).to(args.device)
        pipe.set_progress_bar_config(disable=True)
        if tiled:
            enable_vae_tiling(pipe.vae, args.tile_size)
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = pipe(Image.fromarray(image), num_inference_steps=args.steps, processing_resolution=0,
                    generator=torch.Generator("cpu").manual_seed(0)).prediction
        pred = np.squeeze(np.asarray(pred))
    seconds = time.perf_counter() - t0
    np.save(args.result + ".npy", np.asarray(pred, dtype=np.float32))
    Path(args.result + ".json").write_text(json.dumps(
        {"seconds": seconds, "load": load, "peak_mb": peak_memory_mb(args.device), "shape": list(np.shape(pred))}))


def _run(impl: str, untiled: bool, args, tmp: Path) -> dict:
    result = str(tmp / f"{impl}-{'untiled' if untiled else 'tiled'}")
    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--model", str(args.model), "--steps", str(args.steps),
           "--device", args.device, "--threads", str(args.threads), "--image-size", *map(str, args.image_size),
           "--tile-size", str(args.tile_size), "--result", result] + (["--untiled-run"] if untiled else [])
    return run_worker(cmd, result, f"{impl} ({'untiled' if untiled else 'tiled'})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo-depth", help="checkpoint folder or registry alias (default demo-depth)")
    p.add_argument("--image-size", type=int, nargs=2, default=(3000, 4000), metavar=("H", "W"))
    p.add_argument("--tile-size", type=int, default=512, help="VAE tile edge in pixels (default 512)")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--untiled", action="store_true", help="also run ours without tiling (memory comparison)")
    p.add_argument("--no-diffusers", action="store_true", help="skip the diffusers run")
    p.add_argument("--cost-model", action="append", default=[], metavar="CKPT",
                   help="also state the FLOPs of this checkpoint at the same size and its estimated time here")
    p.add_argument("--rate", type=float, metavar="GFLOPS",
                   help="GFLOP/s assumed for the --cost-model estimates (default: the rate ours reached here; e.g. "
                        "the full-size rate from bench_inference.py's 'ours GFLOP/s' column)")
    p.add_argument("--quick", action="store_true", help="tiny random depth model, 600x800 (seconds; CI)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "marigold-bench-checkpoints")
    p.add_argument("--output", type=Path, help="also write the Markdown table to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--untiled-run", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.quick:
        args.model = str(_ensure_checkpoint(args.cache, "depth", "tiny"))
        if args.image_size == tuple(p.get_default("image_size")):
            args.image_size = (600, 800)
        if args.tile_size == p.get_default("tile_size"):
            args.tile_size = 128
    import numpy as np

    from marigold_toolkit.pipeline.cost import inference_cost

    runs = [("ours", False)] + ([] if args.no_diffusers else [("diffusers", False)])
    runs += [("ours", True)] if args.untiled else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        results = {run: _run(*run, args, Path(tmp)) for run in runs}
    ref = results.get(("diffusers", False))
    costs = {untiled: inference_cost(args.model, args.image_size, 0, args.steps, vae_tiling=not untiled,
                                     vae_tile_size=None if untiled else args.tile_size).total
             for untiled in {untiled for _, untiled in results}}
    for (impl, untiled), info in results.items():
        cost = costs[untiled]
        diff = "—" if ref is None or info is ref else f"{float(np.abs(info['pred'] - ref['pred']).max()):.1e}"
        rows.append((args.model, impl, "no" if untiled else f"{args.tile_size} px", f"{info['seconds']:.1f}",
                     f"{info['peak_mb'] / 1024:.2f}", f"{cost:.3g}", f"{cost * 1e3 / info['seconds']:.1f}", diff))
    # --rate, else the rate ours reached here: turns other checkpoints' FLOP counts into time estimates
    rate = args.rate * 1e9 if args.rate else costs[False] * 1e12 / results[("ours", False)]["seconds"]
    for ckpt in args.cost_model:  # tiles of the checkpoint's own VAE sample_size
        cost = inference_cost(ckpt, args.image_size, 0, args.steps, vae_tiling=True).total
        rows.append((str(ckpt), "estimate (not run)", "VAE sample_size", f"~{cost * 1e12 / rate:.0f}", "—",
                     f"{cost:.3g}", f"{rate / 1e9:.1f} (assumed)", "—"))
    h, w = args.image_size
    head = (f"Input {w}x{h} at native processing resolution, {args.steps} step(s), ensemble 1, device {args.device}, "
            f"{args.threads or os.cpu_count()} threads, float32\n\n")
    cols = ("model", "run", "VAE tiles", "seconds", "peak GB", "TFLOP", "GFLOP/s", "max abs diff vs diffusers")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = head + "\n".join(lines) + "\n"
    sys.stdout.write(table)
    if args.output:
        args.output.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Labelling throughput (``marigold label``, local vs Ray with 1 and 2 workers) and the cost of a real labelling job.

Part 1, measured on this machine: each variant runs the whole command in its own subprocess on the same synthetic
photos into a fresh output folder, on the tiny random checkpoint (``--quick``-size, 64 px, 1 step):

    python benchmarks/bench_label.py                                 # 96 images, 2 rounds, then the cost model
    python benchmarks/bench_label.py --images 192 --rounds 3 --shard-size 8
    python benchmarks/bench_label.py --cost-only --photos 1000000 --gpus 8 --device-tflops 200

Variants: ``local`` (one process, torch on all cores), ``ray x1`` (a local Ray cluster, one model actor with
``--cpus-per-worker 1``), ``ray x2`` (two actors of one CPU each). Rounds alternate the order of the variants
(round 1 forward, round 2 backward, ...) so a drift of the machine does not favour one. A row is printed as each
run finishes: wall seconds of the command (imports, Ray start, model loading, everything), seconds until the first
shard was on disk (the start-up), the steady rate (images in the shards after the first, over the time between
the first and the last shard's mtime) and the overall rate (images / wall). The medians follow.

Part 2, a cost model (nothing runs on a GPU): TFLOP per photo of the full SD2 architecture at the processing
resolution (counted on meta tensors, :mod:`marigold_toolkit.pipeline.cost`, from configs alone), divided by a
per-device rate that is a **parameter** (``--device-tflops``, an assumption unless you measured it, e.g. with
``bench_inference.py`` on your GPU); plus the CPU work per photo that the model actors do besides (decode the
JPEG, encode the 16-bit PNG), measured here on one core, and the CPU cores per GPU that keeps up with it.
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
from pathlib import Path

from bench_inference import _ensure_checkpoint

from marigold_toolkit.core.machine import cpu_description

VARIANTS = {
    "local": ["--engine", "local"],
    "ray x1": ["--engine", "ray", "--workers", "1", "--cpus-per-worker", "1"],
    "ray x2": ["--engine", "ray", "--workers", "2", "--cpus-per-worker", "1"],
}
def make_photos(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        h, w = size
        base = rng.random((max(2, h // 8), max(2, w // 8), 3))
        img = Image.fromarray((base * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
        paths.append(folder / f"photo{i:05d}.jpg")
        img.save(paths[-1], quality=90)
    return paths


def run_variant(name: str, photos: Path, ckpt: Path, out: Path, args) -> dict:
    """One ``marigold label`` subprocess; its wall time and the shards' timeline."""
    cmd = [sys.executable, "-m", "marigold_toolkit.cli.main", "-q", "label", str(photos), "--model", str(ckpt),
           "--output", str(out), "--steps", "1", "--processing-resolution", str(args.resolution),
           "--shard-size", str(args.shard_size), "--batch-size", str(args.batch_size), "--device", "cpu",
           *VARIANTS[name]]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    mtimes = sorted(p.stat().st_mtime for p in out.glob("part-*.parquet"))
    first_rows = min(args.shard_size, counts["labelled"])
    steady = ((counts["labelled"] - first_rows) / (mtimes[-1] - mtimes[0])
              if len(mtimes) > 1 and mtimes[-1] > mtimes[0] else float("nan"))
    return {"variant": name, "wall": wall, "first_shard": mtimes[0] - t0, "steady": steady,
            "overall": counts["labelled"] / wall, "images": counts["labelled"]}


def format_row(r: dict, round_: int | str) -> str:
    return (f"| {r['variant']} | {round_} | {r['images']} | {r['wall']:.1f} | {r['first_shard']:.1f} | "
            f"{r['steady']:.1f} | {r['overall']:.2f} |")


HEADER = ("| variant | round | images | wall s | first shard s | steady img/s | overall img/s |\n"
          "|---|---|---|---|---|---|---|")


# --- cost model -------------------------------------------------------------------------------------------------

def sd2_config_folder(cache: Path) -> Path:
    """A folder with the full SD2 architecture's ``unet/`` and ``vae/`` configs only (what the FLOP count reads)."""
    from marigold_toolkit.testing.random_checkpoints import architecture_config

    folder = cache / "sd2-configs-depth"
    unet, vae, _ = architecture_config("full", 1)
    for sub, cfg, cls in (("unet", unet, "UNet2DConditionModel"), ("vae", vae, "AutoencoderKL")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / "config.json").write_text(json.dumps({"_class_name": cls, **cfg}))
    return folder


def cpu_side_seconds(photo_size: tuple[int, int], resolution: int) -> dict:
    """Seconds of one core per photo for what a model actor does besides the model: decode the JPEG, and encode
    the 16-bit depth PNG at the input size (``match_input_resolution``) or at the processing size."""
    import io

    import numpy as np
    from PIL import Image

    from marigold_toolkit.core.image import processing_size
    from marigold_toolkit.io.files import png16_bytes
    from marigold_toolkit.io.images import load_image

    h, w = photo_size
    rng = np.random.default_rng(0)
    img = Image.fromarray((rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    data = buf.getvalue()

    def best(fn, n=3):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    ph, pw = processing_size(h, w, resolution)
    depth_full = np.asarray(Image.fromarray(np.asarray(img)[..., 0]).convert("F")) / 255.0
    depth_small = np.asarray(Image.fromarray(depth_full.astype(np.float32)).resize((pw, ph), Image.BILINEAR))
    return {"decode": best(lambda: load_image(data)), "encode_full": best(lambda: png16_bytes(depth_full, (0, 1))),
            "encode_small": best(lambda: png16_bytes(depth_small, (0, 1))), "jpeg_mb": len(data) / 1e6,
            "png_full_mb": len(png16_bytes(depth_full, (0, 1))) / 1e6,
            "png_small_mb": len(png16_bytes(depth_small, (0, 1))) / 1e6}


def job_cost(tflop_per_photo: float, photos: int, gpus: int, device_tflops: float) -> dict:
    """The model's share of a job: seconds per photo on one device, device-hours, wall hours on ``gpus``
    devices, and the job's photos/s (``device_tflops``: the sustained TFLOP/s one device reaches on these models)."""
    per_photo = tflop_per_photo / device_tflops
    return {"s_per_photo": per_photo, "device_hours": photos * per_photo / 3600,
            "wall_hours": photos * per_photo / gpus / 3600, "photos_per_s": gpus / per_photo}


def cost_model(args) -> str:
    from marigold_toolkit.pipeline.cost import inference_cost

    cost = inference_cost(sd2_config_folder(args.cache), tuple(args.photo_size), args.cost_resolution,
                          args.cost_steps, args.cost_ensemble)
    model = job_cost(cost.total, args.photos, args.gpus, args.device_tflops)
    cpu = cpu_side_seconds(tuple(args.photo_size), args.cost_resolution)
    h, w = args.photo_size
    ph, pw = cost.processing_size
    lines = [
        f"Cost model: {args.photos:,} photos of {w}x{h} at processing resolution {args.cost_resolution} "
        f"({pw}x{ph} padded), {args.cost_steps} step(s), ensemble {args.cost_ensemble}, {args.gpus} GPUs.",
        f"* FLOPs (SD2 architecture, counted): {cost.total:.2f} TFLOP/photo = encode {cost.encode:.2f} + "
        f"{cost.calls_unet} x UNet {cost.unet_call:.2f} + {cost.calls_decode} x decode {cost.decode_call:.2f}.",
        f"* Device rate: {args.device_tflops:g} TFLOP/s per GPU -- ASSUMED (--device-tflops), not measured here.",
        f"* Model time: {model['s_per_photo'] * 1e3:.1f} ms/photo per GPU; {model['device_hours']:.1f} GPU-hours; "
        f"{model['wall_hours']:.2f} h on {args.gpus} GPUs ({model['photos_per_s']:.0f} photos/s).",
        f"* CPU per photo (measured here, one core): decode the {cpu['jpeg_mb']:.1f} MB JPEG {cpu['decode']:.3f} s; "
        f"encode the 16-bit depth PNG at {w}x{h} {cpu['encode_full']:.3f} s ({cpu['png_full_mb']:.1f} MB), at "
        f"{pw}x{ph} {cpu['encode_small']:.4f} s ({cpu['png_small_mb']:.2f} MB; sizes of a smooth "
        "synthetic map).",
        f"* Output volume: {args.photos * cpu['png_full_mb'] / 1e6:.1f} TB at the input size, "
        f"{args.photos * cpu['png_small_mb'] / 1e6:.2f} TB at the processing size.",
    ]
    for label, enc in (("at the input size", cpu["encode_full"]),
                       ("at the processing size (--no-match-input-resolution)", cpu["encode_small"])):
        cores = (cpu["decode"] + enc) / model["s_per_photo"]
        lines.append(f"* Keeping one GPU busy with outputs {label} needs ~{cores:.1f} cores of this CPU "
                     f"(decode + encode / model time); {args.gpus} GPUs: ~{cores * args.gpus:.0f} cores.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=96)
    p.add_argument("--image-size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    p.add_argument("--resolution", type=int, default=64, help="processing resolution of the measured runs")
    p.add_argument("--shard-size", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--cost-only", action="store_true", help="only the cost model")
    p.add_argument("--photos", type=int, default=1_000_000)
    p.add_argument("--photo-size", type=int, nargs=2, default=(3000, 4000), metavar=("H", "W"))
    p.add_argument("--cost-resolution", type=int, default=768)
    p.add_argument("--cost-steps", type=int, default=1)
    p.add_argument("--cost-ensemble", type=int, default=1)
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--device-tflops", type=float, default=200.0,
                   help="sustained TFLOP/s of one GPU on the UNet and VAE (default %(default)s: an assumption, "
                        "about a quarter of an H100's ~790 TFLOP/s bf16 dense peak)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "marigold-bench-checkpoints")
    p.add_argument("--output", type=Path, help="also write the report to this file")
    args = p.parse_args(argv)
    report = [f"Machine: {cpu_description()}\n"]
    print(report[0], flush=True)
    if not args.cost_only:
        names = [v for v in args.variants.split(",") if v]
        unknown = [v for v in names if v not in VARIANTS]
        if unknown:
            p.error(f"unknown variant(s) {unknown}; use {list(VARIANTS)}")
        ckpt = _ensure_checkpoint(args.cache, "depth", "tiny")
        results: dict[str, list[dict]] = {n: [] for n in names}
        head = (f"{args.images} JPEGs of {args.image_size[1]}x{args.image_size[0]}, tiny random depth model, "
                f"{args.resolution} px, 1 step, shard size {args.shard_size}, batch size {args.batch_size}\n\n"
                f"{HEADER}")
        print(head, flush=True)
        report.append(head)
        with tempfile.TemporaryDirectory() as tmp:
            photos = Path(tmp) / "photos"
            make_photos(photos, args.images, tuple(args.image_size))
            for rnd in range(args.rounds):
                for name in (names if rnd % 2 == 0 else names[::-1]):
                    r = run_variant(name, photos, ckpt, Path(tmp) / f"out-{rnd}-{name.replace(' ', '')}", args)
                    results[name].append(r)
                    report.append(format_row(r, rnd + 1))
                    print(report[-1], flush=True)
        medians = ["", f"Medians of {args.rounds} round(s):", "", HEADER]
        for name, rs in results.items():
            med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "first_shard", "steady", "overall")}
            medians.append(format_row({"variant": name, "images": rs[0]["images"], **med}, "median"))
        print("\n".join(medians), flush=True)
        report += medians
    cost = cost_model(args)
    print("\n" + cost, flush=True)
    report.append("\n" + cost)
    if args.output:
        args.output.write_text("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""High-resolution depth on rendered scenes: the README's "High resolution" table.

    python recipes/high_resolution.py --work-dir runs/hr                      # render 8 scenes 768x1024, compare
    python recipes/high_resolution.py --work-dir runs/hr --num 2 --resolution 384 512   # a quick look

Renders ``--num`` scenes with ``marigold synth`` and predicts depth with ``--model`` (default the bundled
``demo-depth``) in three ways: the plain global prediction at the checkpoint's processing resolution, resized to
the input (``global``); the whole image at native resolution (``native``, processing resolution 0); and the global
pass refined by aligned native-resolution tiles (``hr``, ``--overlaps``). Each is aligned to the ground truth by
least squares (the benchmark protocol) and scored over the valid pixels: AbsRel, delta1, and depth-discontinuity
precision / recall / F1 over pixel pairs ``--baseline`` apart (:mod:`marigold_toolkit.tasks.depth.boundaries`).
Seconds per image are wall-clock on this machine.

Every result is cached per image and method in ``<work-dir>/results.jsonl``; a rerun continues where a killed one
stopped.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from marigold_toolkit import HighResolution, Predictor
from marigold_toolkit.tasks.depth import align_depth_least_squares, depth_metrics
from marigold_toolkit.tasks.depth.boundaries import boundary_metrics


def _methods(overlaps: list[float]) -> dict[str, dict]:
    methods = {"global": {}, "native": {"processing_resolution": 0}}
    for o in overlaps:
        methods[f"hr (overlap {o:g})"] = {"high_resolution": HighResolution(overlap=o)}
    return methods


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=Path("runs/hr"))
    ap.add_argument("--model", default="demo-depth")
    ap.add_argument("--num", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5, help="synth dataset seed")
    ap.add_argument("--resolution", type=int, nargs=2, default=(768, 1024), metavar=("H", "W"))
    ap.add_argument("--spp", type=int, default=16)
    ap.add_argument("--overlaps", default="0.5,0.25")
    ap.add_argument("--steps", type=int, help="denoising steps (default: the checkpoint's)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--baseline", type=int, default=8,
                    help="boundary pairs this many pixels apart (1 = neighbours; 8 = one latent cell)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    data = args.work_dir / "data"
    subprocess.run([sys.executable, "-m", "marigold_toolkit.cli.main", "synth", "--output-dir", str(data), "--num",
                    str(args.num), "--seed", str(args.seed), "--resolution", *map(str, args.resolution),
                    "--spp", str(args.spp), "--workers", str(args.workers), "--no-progress"], check=True)
    methods = _methods([float(o) for o in args.overlaps.split(",") if o])
    cache = args.work_dir / "results.jsonl"
    done = {(r["stem"], r["method"]) for r in map(json.loads, cache.read_text().splitlines())} if cache.exists() \
        else set()
    predictor = Predictor.from_pretrained(args.model)
    stems = sorted(p.stem for p in (data / "rgb").glob("*.png"))[: args.num]
    for stem in stems:
        rgb = np.asarray(Image.open(data / "rgb" / f"{stem}.png").convert("RGB"))
        gt = np.load(data / "depth" / f"{stem}.npy").astype(np.float32)
        valid = np.isfinite(gt) & (gt > 0)
        family = json.loads((data / "camera" / f"{stem}.json").read_text())["family"]
        for name, kwargs in methods.items():
            if (stem, name) in done:
                continue
            t0 = time.perf_counter()
            out = predictor.predict(rgb, num_inference_steps=args.steps, seed=0, batch_size=args.batch_size,
                                    **kwargs)
            seconds = time.perf_counter() - t0
            aligned, _, _ = align_depth_least_squares(out.targets["depth"], gt, valid)
            aligned = np.clip(aligned, 1e-6, None)
            m = depth_metrics(aligned, gt, valid)
            row = {"stem": stem, "family": family, "method": name, "abs_rel": m["abs_rel"], "delta1": m["delta1"],
                   **boundary_metrics(aligned, gt, valid, baseline=args.baseline), "seconds": round(seconds, 2),
                   "tiles": out.settings.get("high_resolution", {}).get("tiles", 0)}
            with open(cache, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{stem} {family:8s} {name:18s} AbsRel {row['abs_rel']:.4f} boundary F1 {row['boundary_f1']:.3f} "
                  f"({seconds:.1f} s)", flush=True)
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    print(f"\n{len({r['stem'] for r in rows})} rendered scenes ({args.resolution[0]}x{args.resolution[1]}, seed "
          f"{args.seed}), model {args.model}, boundary baseline {args.baseline} px, "
          f"{platform.processor() or platform.machine()}\n")
    print("| method | AbsRel | δ1 | boundary precision | boundary recall | boundary F1 | s/img |\n"
          "|---|---|---|---|---|---|---|")
    for name in methods:
        sel = [r for r in rows if r["method"] == name]
        if not sel:
            continue
        mean = {k: np.mean([r[k] for r in sel]) for k in ("abs_rel", "delta1", "boundary_precision",
                                                          "boundary_recall", "boundary_f1", "seconds")}
        print(f"| {name} | {mean['abs_rel']:.4f} | {mean['delta1']:.3f} | {mean['boundary_precision']:.3f} | "
              f"{mean['boundary_recall']:.3f} | {mean['boundary_f1']:.3f} | {mean['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

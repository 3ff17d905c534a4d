"""Metric depth from sparse points on rendered scenes: the README's "Metric depth and completion" table.

    python recipes/metric_depth.py --work-dir runs/metric                 # render, predict, fit, complete, table
    python recipes/metric_depth.py --work-dir runs/metric --num 6 --steps 5   # a quick look

Renders ``--num`` scenes with ``marigold synth`` (a seed and mix of its own), predicts depth with ``--model``
(default the bundled ``demo-depth``), samples ``--points`` pixels of the ground truth per image (deterministic) and
compares, in metres over every valid ground-truth pixel:

* ``oracle``: the least-squares scale and shift against the dense ground truth (what a benchmark's alignment
  gives; no method with sparse points can beat it with a global affine map);
* ``sparse fit``: the robust fit to the sparse points only (``marigold predict --sparse-depth``);
* ``Marigold-DC``: test-time guided completion with the sparse points (``marigold complete``).

Every result is cached per image in ``<work-dir>/results.jsonl``; a rerun continues where a killed one stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from marigold_toolkit import Predictor
from marigold_toolkit.pipeline.completion import complete_depth
from marigold_toolkit.tasks.depth import align_depth_least_squares
from marigold_toolkit.tasks.depth.metric import fit_metric


def _metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    p, g = pred[valid].astype(np.float64), gt[valid].astype(np.float64)
    ok = np.isfinite(p)
    p = np.where(ok, p, 0.0)
    return {"abs_rel": float(np.mean(np.abs(p - g) / g)), "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
            "finite": float(ok.mean())}


def _points(gt: np.ndarray, valid: np.ndarray, n: int, seed: int) -> np.ndarray:
    idx = np.flatnonzero(valid)
    pick = np.random.default_rng(seed).choice(idx, min(n, idx.size), replace=False)
    sparse = np.zeros_like(gt)
    sparse.reshape(-1)[pick] = gt.reshape(-1)[pick]
    return sparse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=Path("runs/metric"))
    ap.add_argument("--model", default="demo-depth")
    ap.add_argument("--num", type=int, default=24)
    ap.add_argument("--seed", type=int, default=9090, help="synth dataset seed (not the demo recipe's)")
    ap.add_argument("--resolution", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    ap.add_argument("--points", default="100,500,1000")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--ensemble", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    data = args.work_dir / "data"
    subprocess.run([sys.executable, "-m", "marigold_toolkit.cli.main", "synth", "--output-dir", str(data), "--num",
                    str(args.num), "--seed", str(args.seed), "--resolution", *map(str, args.resolution),
                    "--workers", str(args.workers), "--scenes", "room,tabletop,outdoor", "--no-progress"], check=True)
    counts = [int(c) for c in args.points.split(",") if c]
    cache = args.work_dir / "results.jsonl"
    done = {(r["stem"], r["points"]) for r in map(json.loads, cache.read_text().splitlines())} if cache.exists() \
        else set()
    predictor = Predictor.from_pretrained(args.model)
    stems = sorted(p.stem for p in (data / "rgb").glob("*.png"))[: args.num]
    for stem in stems:
        if all((stem, n) in done for n in counts):
            continue
        rgb = np.asarray(Image.open(data / "rgb" / f"{stem}.png").convert("RGB"))
        gt = np.load(data / "depth" / f"{stem}.npy").astype(np.float32)
        valid = np.isfinite(gt) & (gt > 0)
        family = json.loads((data / "camera" / f"{stem}.json").read_text())["family"]
        pred = predictor.predict(rgb, seed=0).prediction
        oracle, _, _ = align_depth_least_squares(pred, gt, valid)
        for n in counts:
            if (stem, n) in done:
                continue
            sparse = _points(gt, valid, n, 2024)
            fitted, _ = fit_metric(pred, sparse)
            t0 = time.perf_counter()
            dc = complete_depth(predictor, rgb, sparse, num_inference_steps=args.steps, ensemble_size=args.ensemble,
                                seed=2024)
            seconds = time.perf_counter() - t0
            row = {"stem": stem, "family": family, "points": n, "oracle": _metrics(oracle, gt, valid),
                   "sparse_fit": _metrics(fitted, gt, valid), "marigold_dc": _metrics(dc.depth, gt, valid),
                   "dc_seconds": round(seconds, 2), "dc_loss": [dc.losses[0][0], dc.losses[0][-1]]}
            with open(cache, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{stem} {family:8s} {n:5d} pts: AbsRel oracle {row['oracle']['abs_rel']:.3f} "
                  f"fit {row['sparse_fit']['abs_rel']:.3f} DC {row['marigold_dc']['abs_rel']:.3f} ({seconds:.1f} s)",
                  flush=True)
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    print(f"\n{len({r['stem'] for r in rows})} rendered scenes ({args.resolution[0]}x{args.resolution[1]}, "
          f"seed {args.seed}), model {args.model}, Marigold-DC {args.steps} steps x {args.ensemble}\n")
    print("| points | method | AbsRel | RMSE (m) |\n|---|---|---|---|")
    for n in counts:
        sel = [r for r in rows if r["points"] == n]
        for key, label in (("oracle", "oracle: LS scale+shift on the dense GT"),
                           ("sparse_fit", "sparse robust fit (IRLS)"), ("marigold_dc", "Marigold-DC")):
            ar = np.mean([r[key]["abs_rel"] for r in sel])
            rm = np.mean([r[key]["rmse"] for r in sel])
            print(f"| {n} | {label} | {ar:.3f} | {rm:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

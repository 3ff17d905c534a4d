"""Video depth on rendered sequences: the README's "Video" table (TAE next to AbsRel / delta1, seconds per frame).

    python recipes/video_tae.py --work-dir runs/video                    # 4 sequences x 24 frames, 96x128
    python recipes/video_tae.py --work-dir runs/video --num 1 --frames 8 # a quick look

Renders ``--num`` sequences (:mod:`marigold_toolkit.synth.video`: a scene and a sliding, turning camera) and runs
``marigold video`` on each in every ``--modes`` (default: independent frames, latent-init, rolling) with
``--model`` (default the bundled ``demo-depth``; rolling then runs RollingDepth's inference, cross-frame attention
and co-alignment, on a model that was not trained for cross-frame attention). Seconds per frame are the video
job's own (model loading left out). Each prediction is aligned to the
ground truth with one scale and shift for the whole sequence in the model's prediction space and scored: TAE
(:mod:`marigold_toolkit.tasks.depth.temporal`), AbsRel and delta1 over every valid pixel. Results are cached per
sequence and mode in ``<work-dir>/results.jsonl``; a rerun continues where a killed one stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from marigold_toolkit.synth.video import load_sequence, render_sequence
from marigold_toolkit.tasks.depth.temporal import video_metrics
from marigold_toolkit.core.machine import cpu_description

MODE_FLAGS = {"independent": ["--mode", "independent"], "latent-init": ["--mode", "latent-init"],
              "rolling": ["--mode", "rolling", "--dilations", "1,4", "--coalign-iterations", "500"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=Path("runs/video"))
    ap.add_argument("--model", default="demo-depth")
    ap.add_argument("--num", type=int, default=4)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--resolution", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    ap.add_argument("--spp", type=int, default=32)
    ap.add_argument("--modes", default="independent,latent-init,rolling")
    ap.add_argument("--steps", type=int, default=4, help="denoising steps of the per-frame modes")
    args = ap.parse_args()

    work = args.work_dir
    results_file = work / "results.jsonl"
    done = {}
    if results_file.exists():
        for line in results_file.read_text().splitlines():
            r = json.loads(line)
            done[(r["sequence"], r["mode"])] = r
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for i in range(args.num):
        seq = render_sequence(work / "set", i, seed=args.seed, n_frames=args.frames,
                              resolution=tuple(args.resolution), spp=args.spp)
        data = load_sequence(seq)
        for mode in modes:
            if (i, mode) in done:
                continue
            out = work / "pred" / mode / seq.name
            cmd = [sys.executable, "-m", "marigold_toolkit.cli.main", "-q", "video", str(data["rgb"]), "--model",
                   args.model, "--output-dir", str(out), "--no-png", "--no-mp4", "--fps", "10",
                   *MODE_FLAGS[mode]]
            if mode != "rolling":
                cmd += ["--steps", str(args.steps)]
            subprocess.run(cmd, check=True)
            meta = json.loads(next(out.glob("*.json")).read_text())
            seconds = meta["seconds"]  # the job itself: model loading and process start are left out
            pred = np.load(next(out.glob("*.npy")))
            m = video_metrics(pred, data["depth"], data["K"], data["poses"], space=meta["prediction_space"])
            row = {"sequence": i, "family": data["family"], "mode": mode, "frames": int(pred.shape[0]),
                   "s_per_frame": seconds / pred.shape[0], **m}
            with results_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done[(i, mode)] = row
            print(f"sequence {i} {mode}: TAE {m['tae']:.2f} AbsRel {m['abs_rel']:.4f} delta1 {m['delta1']:.3f}",
                  flush=True)

    print(f"\n{args.num} sequences x {args.frames} frames at {args.resolution[1]}x{args.resolution[0]}, model "
          f"{args.model}; {cpu_description()}\n")
    print("| mode | TAE | AbsRel | δ1 | s/frame |")
    print("|---|---|---|---|---|")
    for mode in modes:
        rows = [done[(i, mode)] for i in range(args.num) if (i, mode) in done]
        if rows:
            mean = {k: float(np.mean([r[k] for r in rows])) for k in ("tae", "abs_rel", "delta1", "s_per_frame")}
            print(f"| {mode} | {mean['tae']:.2f} | {mean['abs_rel']:.4f} | {mean['delta1']:.3f} | "
                  f"{mean['s_per_frame']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

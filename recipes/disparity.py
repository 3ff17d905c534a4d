"""Depth vs disparity on rendered scenes: the README's "Depth or disparity" table.

    python recipes/disparity.py --work-dir runs/disparity                       # render, fine-tune x2, score
    python recipes/disparity.py --work-dir runs/disparity --no-finetune         # the bundled model and references only
    python recipes/disparity.py --work-dir runs/disparity --num 3 --train-num 8 --steps 4 --train-steps 2   # a look

Every stage is the project's own commands (``marigold synth``, ``marigold train``, ``marigold predict``,
``marigold evaluate`` in folder mode); this script chains them and builds the table:

1. renders ``--num`` test scenes (the metric-depth recipe's seed and mix: rooms, tabletops, outdoor) and, for the
   fine-tuning, ``--train-num`` training scenes (the demo recipe's seed 0, i.e. scenes the demo models were trained
   on: no new information, only the parameterisation changes);
2. fine-tunes the bundled ``demo-depth`` twice with the same data, steps and settings, once in depth space and once
   in disparity space (``pipeline.prediction_type=disparity``);
3. predicts the test scenes with each model and scores each prediction folder twice, with least squares in depth
   space and in disparity space; two references built from the ground truth itself isolate the effect of the
   alignment space: a perfect affine depth (the ground truth min-max normalised) and a perfect affine disparity.

Scores are per image over the valid ground-truth pixels (the folder contract), averaged; ``results.json`` in the
work dir holds them, and a rerun reuses every finished stage.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO_DEPTH = REPO / "src" / "marigold_toolkit" / "assets" / "demo" / "depth"
ALIGNMENTS = {"depth": "least_squares", "disparity": "least_squares_disparity"}


def marigold(*args: str) -> None:
    """``marigold ARGS`` in a subprocess (the console command, as a user would run it)."""
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "marigold_toolkit.cli.main", "-q", *map(str, args)], check=True, cwd=REPO)
    print(f"  marigold {args[0]}: {time.time() - t0:.0f} s", flush=True)


def render(out: Path, num: int, seed: int, resolution, scenes: str, spp: int, workers: int) -> None:
    marigold("synth", "--output-dir", out, "--num", num, "--seed", seed, "--resolution", *resolution, "--spp", spp,
             "--workers", workers, "--scenes", scenes, "--no-progress")


def finetune(a, space: str, train: Path) -> Path:
    """``demo-depth`` fine-tuned further in ``space``; returns the last checkpoint folder."""
    run = a.work_dir / f"finetune-{space}"
    if not (run / "DONE").is_file():  # an interrupted run resumes from its last checkpoint
        marigold("train", REPO / "configs" / "demo" / "depth.yaml", f"model.base={DEMO_DEPTH}", f"output_dir={run}",
                 f"pipeline.prediction_type={space}", f"data.train.0.root={train}",
                 f"optim.max_iter={a.train_steps}", f"optim.lr={a.lr}",
                 f"optim.lr_scheduler.total_iter={a.train_steps}",
                 f"optim.lr_scheduler.warmup_steps={min(20, a.train_steps - 1)}",
                 f"checkpoint.period={a.train_steps}")
        (run / "DONE").write_text("ok\n")
    return run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()


def predict(a, model: str | Path, out: Path) -> None:
    marigold("predict", a.work_dir / "test" / "rgb", "--model", model, "--output-dir", out, "--steps", a.steps,
             "--seed", 0)


def references(test: Path, out: Path) -> dict[str, Path]:
    """Perfect affine predictions made from the ground truth: depth min-max normalised, and disparity."""
    folders = {"depth": out / "gt_affine_depth", "disparity": out / "gt_affine_disparity"}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    for path in sorted((test / "depth").glob("*.npy")):
        gt = np.load(path).astype(np.float64)
        valid = np.isfinite(gt) & (gt > 0)
        for space, folder in folders.items():
            x = np.where(valid, gt if space == "depth" else 1.0 / np.where(valid, gt, 1.0), np.nan)
            lo, hi = np.nanmin(x), np.nanmax(x)
            unit = np.nan_to_num((x - lo) / (hi - lo), nan=1.0 if space == "depth" else 0.0)  # sky: far
            np.save(folder / f"{path.stem}_{space}.npy", unit.astype(np.float32))
    return folders


def score(a, predictions: Path, alignment: str) -> dict:
    report = a.work_dir / "scores" / f"{predictions.name}-{alignment}.json"
    if not report.is_file():
        report.parent.mkdir(parents=True, exist_ok=True)
        marigold("evaluate", "--task", "depth", "--predictions", predictions, "--ground-truth",
                 a.work_dir / "test" / "depth", "--alignment", alignment, "--output", report)
    result = json.loads(report.read_text())
    rows = list(csv.DictReader(report.with_name(report.stem + "_per_image.csv").open()))
    family = {p.stem: json.loads(p.read_text())["family"] for p in (a.work_dir / "test" / "camera").glob("*.json")}
    by = {}
    for r in rows:
        by.setdefault(family[r["stem"]], []).append(float(r["abs_rel"]))
    return {"abs_rel": result["abs_rel"], "delta1": result["delta1"], "num_images": result["num_images"],
            "by_family": {k: float(np.mean(v)) for k, v in sorted(by.items())}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=Path("runs/disparity"))
    ap.add_argument("--num", type=int, default=24, help="test scenes")
    ap.add_argument("--seed", type=int, default=9090, help="test-set synth seed (the metric-depth recipe's)")
    ap.add_argument("--resolution", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    ap.add_argument("--spp", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4, help="denoising steps at prediction")
    ap.add_argument("--no-finetune", action="store_true", help="only the bundled model and the references")
    ap.add_argument("--train-num", type=int, default=48, help="training scenes (demo recipe seed 0, 128x160)")
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    a.work_dir.mkdir(parents=True, exist_ok=True)
    test = a.work_dir / "test"
    render(test, a.num, a.seed, a.resolution, "room,tabletop,outdoor", a.spp, a.workers)
    preds = a.work_dir / "predictions"
    models: dict[str, tuple[str, str | Path]] = {"demo-depth": ("depth", "demo-depth")}
    if not a.no_finetune:
        train = a.work_dir / "train"
        render(train, a.train_num, 0, (128, 160), "room,tabletop,outdoor", a.spp, a.workers)
        for space in ("depth", "disparity"):
            models[f"demo-depth + {a.train_steps} steps in {space} space"] = (space, finetune(a, space, train))
    rows = []
    for name, folder in references(test, preds).items():
        for align_space, alignment in ALIGNMENTS.items():
            rows.append({"prediction": f"reference: ground truth as a perfect affine {name}", "space": name,
                         "alignment": align_space, **score(a, folder, alignment)})
    for i, (name, (space, model)) in enumerate(models.items()):
        out = preds / f"model{i}"
        if not (out / "DONE").is_file():
            predict(a, model, out)
            (out / "DONE").write_text("ok\n")
        for align_space, alignment in ALIGNMENTS.items():
            rows.append({"prediction": name, "space": space, "alignment": align_space, **score(a, out, alignment)})
    (a.work_dir / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    families = sorted({f for r in rows for f in r["by_family"]})
    print(f"\n{rows[0]['num_images']} rendered scenes ({a.resolution[0]}x{a.resolution[1]}, seed {a.seed}), "
          f"{a.steps} steps, seed 0\n")
    print(f"| prediction | predicts | LS alignment in | AbsRel | δ1 | AbsRel {' / '.join(families)} |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        fam = " / ".join(f"{r['by_family'].get(f, float('nan')):.3f}" for f in families)
        print(f"| {r['prediction']} | {r['space']} | {r['alignment']} | {r['abs_rel']:.4f} | {r['delta1']:.3f} | {fam} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""The demo-model recipe: render -> pretrain a small SD2-layout base -> Marigold fine-tuning -> bundle -> model card.

Every stage runs the project's own commands (``marigold synth``, ``marigold pretrain-base``, ``marigold train``,
``marigold predict``, ``marigold evaluate``) with the configs in ``configs/demo/``; this script only chains them
and writes files. Stages are resumable (rendering and training pick up where they stopped)::

    python recipes/demo.py all                 # everything below, in order (see docs/demo-models.md for times)
    python recipes/demo.py render              # runs/demo/data/{train,test}
    python recipes/demo.py pretrain            # runs/demo/base (+ runs/demo/base-random-unet for the ablation)
    python recipes/demo.py finetune            # runs/demo/{depth,normals}[-random-unet]
    python recipes/demo.py bundle              # -> src/marigold_toolkit/assets/demo/{depth,normals} + CHECKSUMS
    python recipes/demo.py evaluate            # runs/demo/eval/*, runs/demo/model_card.md
    python recipes/demo.py all --smoke         # a tiny budget of every stage (seconds to minutes; CI runs this)

``--work-dir`` (default ``runs/demo``) holds everything but the bundle; ``--smoke`` writes the bundle into the
work dir instead of the package. Extra ``key=value`` overrides go to every ``pretrain-base`` / ``train`` call
via ``--pretrain-override`` / ``--train-override``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "demo"
PACKAGE_ASSETS = REPO / "src" / "marigold_toolkit" / "assets" / "demo"
TASKS = ("depth", "normals")

#: the data: training scenes (all three families) and a held-out test set of a DIFFERENT mix (no rooms,
#: half outdoor) with different seeds
RENDER = {
    "train": dict(num=320, seed=0, scenes="room,tabletop,outdoor"),
    "test": dict(num=48, seed=1, scenes="outdoor,tabletop"),
}
RESOLUTION = (128, 160)
SPP = 16
SMOKE = {"render": dict(train=8, test=3), "resolution": (64, 80), "spp": 4,
         "pretrain": ["vae.steps=3", "unet.steps=3", "vae.batch_size=2", "unet.batch_size=4"],
         "train": ["optim.max_iter=2", "optim.micro_batch_size=2", "optim.effective_batch_size=2",
                   "optim.lr_scheduler.total_iter=2", "optim.lr_scheduler.warmup_steps=0",
                   "checkpoint.period=1"]}

logger = logging.getLogger("demo-recipe")


def marigold(*args: str) -> None:
    """Run ``marigold ARGS`` in a subprocess (the console command, as a user would)."""
    cmd = [sys.executable, "-m", "marigold_toolkit.cli.main", "-v", *args]
    logger.info("$ marigold %s", " ".join(args))
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=REPO)
    logger.info("  done in %.1f min", (time.time() - t0) / 60)


# ---- stages ------------------------------------------------------------------------------------------------
def render(a) -> None:
    for split, spec in RENDER.items():
        num = SMOKE["render"][split] if a.smoke else spec["num"]
        res = SMOKE["resolution"] if a.smoke else RESOLUTION
        marigold("synth", "--output-dir", str(a.work_dir / "data" / split), "--num", str(num),
                 "--seed", str(spec["seed"]), "--resolution", str(res[0]), str(res[1]),
                 "--spp", str(SMOKE["spp"] if a.smoke else SPP), "--workers", str(a.workers),
                 "--scenes", spec["scenes"], "--no-progress")


def _pretrain_overrides(a) -> list[str]:
    train = a.work_dir / "data" / "train"
    return [f"data.root={train / 'rgb'}", f"data.vae_maps=[{train / 'depth'},{train / 'normals'}]"] \
        + (SMOKE["pretrain"] if a.smoke else []) + list(a.pretrain_override)


def pretrain(a) -> None:
    base, ablation = a.work_dir / "base", a.work_dir / "base-random-unet"
    if not (base / "model_index.json").is_file():
        marigold("pretrain-base", str(CONFIGS / "base.yaml"), f"output_dir={base}", *_pretrain_overrides(a))
    if not a.skip_ablation and not (ablation / "model_index.json").is_file():
        # same VAE + text encoder, UNet left at its random initialisation
        marigold("pretrain-base", str(CONFIGS / "base.yaml"), f"output_dir={ablation}", f"vae_from={base}",
                 "unet.steps=0", *_pretrain_overrides(a))


def _run_dir(a, task: str, ablation: bool) -> Path:
    return a.work_dir / (f"{task}-random-unet" if ablation else task)


def finetune(a) -> None:
    for ablation in (False, True):
        if ablation and a.skip_ablation:
            continue
        for task in TASKS:
            base = a.work_dir / ("base-random-unet" if ablation else "base")
            marigold("train", str(CONFIGS / f"{task}.yaml"), f"output_dir={_run_dir(a, task, ablation)}",
                     f"model.base={base}", f"data.train.0.root={a.work_dir / 'data' / 'train'}",
                     *(SMOKE["train"] if a.smoke else []), *a.train_override)


def final_checkpoint(run_dir: Path) -> Path:
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    return run_dir / "checkpoints" / latest


def write_checksums(root: Path) -> dict:
    """``root/CHECKSUMS.json``: the SHA-256 of every bundled file under ``root`` (tiny decoders included)."""
    checksums = {f.relative_to(root).as_posix(): sha256(f) for f in sorted(root.rglob("*"))
                 if f.is_file() and f.name != "CHECKSUMS.json"}
    (root / "CHECKSUMS.json").write_text(json.dumps(checksums, indent=1, sort_keys=True) + "\n")
    return checksums


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle(a) -> None:
    """Copy the final checkpoints into the package with float16 weights (half the size; loading casts back)."""
    from safetensors.torch import load_file, save_file

    dest_root = (a.work_dir / "bundle") if a.smoke else PACKAGE_ASSETS
    for task in TASKS:
        src, dest = final_checkpoint(_run_dir(a, task, False)), dest_root / task
        shutil.rmtree(dest, ignore_errors=True)
        for f in sorted(src.rglob("*")):
            rel = f.relative_to(src)
            if f.is_dir() or rel.parts[0] not in ("unet", "vae", "text_encoder", "tokenizer", "scheduler",
                                                 "model_index.json"):
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if f.suffix == ".safetensors":
                tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(f).items()}
                save_file(tensors, out, metadata={"format": "pt"})
            else:
                shutil.copy(f, out)
    checksums = write_checksums(dest_root)
    size = sum(f.stat().st_size for f in dest_root.rglob("*") if f.is_file())
    logger.info("bundled %d files, %.1f MB, into %s", len(checksums), size / 2**20, dest_root)


# ---- evaluation ----------------------------------------------------------------------------------------------
def _write_baselines(test: Path, out: Path) -> dict[str, Path]:
    """Trivial predictions for every test image: constant depth, vertical-gradient depth (far at the top),
    normals all facing the camera."""
    folders = {name: out / name for name in ("constant_depth", "vertical_gradient", "facing_camera")}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    for gt in sorted((test / "depth").glob("*.npy")):
        h, w = np.load(gt).shape
        np.save(folders["constant_depth"] / f"{gt.stem}_depth.npy", np.ones((h, w), np.float32))
        ramp = np.repeat(np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None], w, 1)   # 1 = far (top row)
        np.save(folders["vertical_gradient"] / f"{gt.stem}_depth.npy", ramp)
        facing = np.zeros((h, w, 3), np.float32)
        facing[..., 2] = 1.0
        np.save(folders["facing_camera"] / f"{gt.stem}_normals.npy", facing)
    return folders


def _score(task: str, preds: Path, gt: Path, report: Path) -> dict:
    """``marigold evaluate`` in folder mode; adds ``by_family``: the first table metric averaged per scene
    family (from the per-image CSV and the test set's camera JSON)."""
    import csv

    marigold("evaluate", "--task", task, "--predictions", str(preds), "--ground-truth", str(gt),
             "--output", str(report), *(["--alignment", "least_square"] if task == "depth" else []))
    result = json.loads(report.read_text())
    key = TABLE_KEYS[task][0]
    by_family: dict[str, list[float]] = {}
    with open(report.with_name(report.stem + "_per_image.csv"), newline="") as f:
        for row in csv.DictReader(f):
            meta = json.loads((gt.parent / "camera" / f"{row['stem']}.json").read_text())
            by_family.setdefault(meta["family"], []).append(float(row[key]))
    result["by_family"] = {fam: float(np.mean(v)) for fam, v in sorted(by_family.items())}
    return result


def evaluate(a) -> None:
    test, ev = a.work_dir / "data" / "test", a.work_dir / "eval"
    bundle_root = (a.work_dir / "bundle") if a.smoke else PACKAGE_ASSETS
    models = {f"demo-{t}": (t, bundle_root / t) for t in TASKS}
    if not a.skip_ablation:
        models.update({f"{t} from random UNet": (t, final_checkpoint(_run_dir(a, t, True))) for t in TASKS})
    rows = []
    for name, (task, ckpt) in models.items():
        pred = ev / name.replace(" ", "-") / "pred"
        marigold("predict", str(test / "rgb"), "--model", str(ckpt), "--output-dir", str(pred), "--seed", "0",
                 "--overwrite")
        rows.append((task, name, _score(task, pred, test / task, ev / name.replace(" ", "-") / "REPORT.json")))
    for name, folder in _write_baselines(test, ev / "baselines").items():
        task = "normals" if name == "facing_camera" else "depth"
        rows.append((task, f"baseline: {name.replace('_', ' ')}", _score(task, folder, test / task,
                                                                         ev / "baselines" / f"{name}.json")))
    table = model_card_table(rows)
    (a.work_dir / "model_card.md").write_text(table)
    logger.info("model card table:\n%s", table)


TABLE_KEYS = {"depth": ("abs_rel", "rmse", "delta1"),
              "normals": ("mean_angular_error", "median_angular_error", "within_11.25", "within_30")}


def model_card_table(rows) -> str:
    """Markdown: per task, one row per model / baseline with the dataset means and the first metric per
    scene family."""
    lines = []
    for task, keys in TABLE_KEYS.items():
        families = sorted({f for t, _, rep in rows if t == task for f in rep.get("by_family", {})})
        head = list(keys) + [f"{keys[0]} ({f})" for f in families]
        lines += [f"| {task} model | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
        for t, name, rep in rows:
            if t == task:
                vals = [float(rep[k]) for k in keys] + [rep["by_family"][f] for f in families]
                lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
        lines.append("")
    return "\n".join(lines)


STAGES = {"render": render, "pretrain": pretrain, "finetune": finetune, "bundle": bundle, "evaluate": evaluate}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=(*STAGES, "all"))
    p.add_argument("--work-dir", type=Path, default=REPO / "runs" / "demo")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="rendering processes")
    p.add_argument("--smoke", action="store_true", help="tiny budget everywhere; bundle into the work dir")
    p.add_argument("--skip-ablation", action="store_true", help="no random-UNet ablation runs")
    p.add_argument("--pretrain-override", action="append", default=[])
    p.add_argument("--train-override", action="append", default=[])
    a = p.parse_args(argv)
    a.work_dir = a.work_dir.resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for name in (STAGES if a.stage == "all" else [a.stage]):
        t0 = time.time()
        STAGES[name](a)
        logger.info("stage %s: %.1f min", name, (time.time() - t0) / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())

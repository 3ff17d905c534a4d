#!/usr/bin/env python
"""The demo-model recipe: render -> pretrain a small SD2-layout base -> Marigold fine-tuning -> ablation ->
bundle -> evaluate on a held-out generator -> model card.

Every stage runs the project's own commands (``marigold synth``, ``marigold pretrain-base``, ``marigold train``,
``marigold predict``, ``marigold evaluate``) with the configs in ``configs/demo/``; this script only chains them
and writes files. Every stage is resumable (rendering skips finished samples, training resumes from its last
checkpoint, finished runs and predictions are skipped), so the recipe can run in several sittings::

    python recipes/demo.py all                 # everything below, in order (see docs/demo-models.md for times)
    python recipes/demo.py render              # runs/demo/data/{train,train-portrait,images,test,heldout}
    python recipes/demo.py pretrain            # runs/demo/base (+ runs/demo/base-random-unet for the ablation)
    python recipes/demo.py finetune            # runs/demo/{depth,normals}
    python recipes/demo.py ablation            # runs/demo/ablation/<task>-{pretrained,random}-seed<k>
    python recipes/demo.py bundle              # -> src/marigold_toolkit/assets/demo/{depth,normals} + CHECKSUMS
    python recipes/demo.py bundle --tasks depth                 # one model; the other stays as bundled
    python recipes/demo.py evaluate            # runs/demo/eval/*, runs/demo/model_card.md
    python recipes/demo.py evaluate --from-runs --tasks depth   # the run's checkpoint, before bundling
    python recipes/demo.py preview             # docs/images/demo-preview.jpg: the example photos, both models
    python recipes/demo.py all --smoke         # a tiny budget of every stage (seconds to minutes; CI runs this)

``--work-dir`` (default ``runs/demo``) holds everything but the bundle; ``--smoke`` writes the bundle into the
work dir instead of the package. Extra ``key=value`` overrides go to every ``pretrain-base`` / ``train`` call
via ``--pretrain-override`` / ``--train-override``.
"""

from __future__ import annotations

import argparse
import csv
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
TRAIN_FAMILIES = "room,tabletop,outdoor,closeup"
#: the second held-out generator (synth.scene.HELDOUT, fixed before tuning): families, shapes and fields of view
#: no training family uses
HELDOUT_FAMILIES = "corridor,street,desk"

#: the data. Training: landscape 120x160 (the shape 4:3 photos are processed at with the models' processing
#: resolution 160) and portrait 160x120, geometry maps only; image-only renders at 4 spp for the generative base.
#: ``test``: the training generator, other seeds (in-distribution). ``heldout``: the held-out generator at
#: 192x256 (the models process it at 120x160), never used for training or tuning.
RENDER = {
    "heldout": dict(num=60, seed=7, scenes=HELDOUT_FAMILIES, resolution=(192, 256), spp=16, maps="geometry"),
    "test": dict(num=48, seed=1, scenes=TRAIN_FAMILIES, resolution=(120, 160), spp=16, maps="geometry"),
    "train": dict(num=1200, seed=0, scenes=TRAIN_FAMILIES, resolution=(120, 160), spp=12, maps="geometry"),
    "train-portrait": dict(num=300, seed=2, scenes=TRAIN_FAMILIES, resolution=(160, 120), spp=12, maps="geometry"),
    "images": dict(num=2000, seed=3, scenes=TRAIN_FAMILIES, resolution=(120, 160), spp=4, maps="image"),
}
#: the ablation: the same fine-tuning budget from the pretrained base and from the random UNet, several seeds
ABLATION_SEEDS = (0, 1, 2)
ABLATION_BUDGET = ["optim.max_iter=800", "optim.lr_scheduler.total_iter=800"]
SMOKE = {"render": dict(train=8, **{"train-portrait": 4}, images=4, test=3, heldout=3), "scale": 0.5, "spp": 2,
         "pretrain": ["vae.steps=3", "unet.steps=3", "vae.batch_size=2", "unet.batch_size=4", "vae.crop=[32,40]"],
         "train": ["optim.max_iter=2", "optim.micro_batch_size=2", "optim.effective_batch_size=2",
                   "optim.lr_scheduler.total_iter=2", "optim.lr_scheduler.warmup_steps=0",
                   "checkpoint.period=1"],
         "ablation_seeds": (0, 1)}

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
        res = [int(r * SMOKE["scale"]) // 16 * 16 for r in spec["resolution"]] if a.smoke else spec["resolution"]
        marigold("synth", "--output-dir", str(a.work_dir / "data" / split), "--num", str(num),
                 "--seed", str(spec["seed"]), "--resolution", str(res[0]), str(res[1]),
                 "--spp", str(SMOKE["spp"] if a.smoke else spec["spp"]), "--workers", str(a.workers),
                 "--scenes", spec["scenes"], "--maps", spec["maps"], "--no-progress")


def _pretrain_overrides(a) -> list[str]:
    data = a.work_dir / "data"
    return [f"data.root={data / 'train' / 'rgb'}", f"data.extra_roots=[{data / 'images' / 'rgb'}]",
            f"data.vae_maps=[{data / 'train' / 'depth'},{data / 'train' / 'normals'}]"] \
        + (SMOKE["pretrain"] if a.smoke else []) + list(a.pretrain_override)


def pretrain(a) -> None:
    base, ablation = a.work_dir / "base", a.work_dir / "base-random-unet"
    if not (base / "model_index.json").is_file():
        marigold("pretrain-base", str(CONFIGS / "base.yaml"), f"output_dir={base}", *_pretrain_overrides(a))
    if not a.skip_ablation and not (ablation / "model_index.json").is_file():
        # same VAE + text encoder, UNet left at its random initialisation
        marigold("pretrain-base", str(CONFIGS / "base.yaml"), f"output_dir={ablation}", f"vae_from={base}",
                 "unet.steps=0", *_pretrain_overrides(a))


def _train(a, task: str, run_dir: Path, base: Path, *overrides: str) -> None:
    """``marigold train`` of ``configs/demo/<task>.yaml`` (resumes an interrupted run; a finished one is
    skipped)."""
    if (run_dir / "checkpoints" / "latest").is_file() and (run_dir / "DONE").is_file():
        return
    data = a.work_dir / "data"
    marigold("train", str(CONFIGS / f"{task}.yaml"), f"output_dir={run_dir}", f"model.base={base}",
             f"data.train.0.root={data / 'train'}", f"data.train.1.root={data / 'train-portrait'}",
             *overrides, *(SMOKE["train"] if a.smoke else []), *a.train_override)
    (run_dir / "DONE").write_text("finished\n")


def finetune(a) -> None:
    for task in a.tasks:
        _train(a, task, a.work_dir / task, a.work_dir / "base")


def _ablation_runs(a) -> list[tuple[str, str, int, Path]]:
    seeds = SMOKE["ablation_seeds"] if a.smoke else ABLATION_SEEDS
    return [(task, init, seed, a.work_dir / "ablation" / f"{task}-{init}-seed{seed}")
            for task in a.ablation_tasks for seed in seeds for init in ("pretrained", "random")]


def ablation(a) -> None:
    """The paper's central claim at small scale: the same budget (``ABLATION_BUDGET``) from the pretrained base
    and from the random UNet (same VAE and text encoder), for each seed in ``ABLATION_SEEDS``."""
    if a.skip_ablation:
        return
    for task, init, seed, run_dir in _ablation_runs(a):
        base = a.work_dir / ("base" if init == "pretrained" else "base-random-unet")
        _train(a, task, run_dir, base, f"seed={seed}", *([] if a.smoke else ABLATION_BUDGET))


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
    """Copy the final checkpoints of ``--tasks`` into the package with float16 weights (half the size; loading
    casts back). Each model folder is replaced whole (``tiny_decoder/`` included: rerun
    ``recipes/distill_decoders.py --tasks ...`` afterwards); the other task's model is left as it is, and
    ``CHECKSUMS.json`` is rewritten over everything bundled."""
    from safetensors.torch import load_file, save_file

    dest_root = (a.work_dir / "bundle") if a.smoke else PACKAGE_ASSETS
    for task in a.tasks:
        src, dest = final_checkpoint(a.work_dir / task), dest_root / task
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
#: the trivial baselines: name -> (task, prediction for an [h, w] image). Depth predictions are scored after the
#: same least-squares scale-and-shift alignment as the models, so only their shape matters.
def _vertical_gradient(h: int, w: int) -> np.ndarray:
    """Depth growing linearly from the bottom row (near) to the top row (far)."""
    return np.repeat(np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None], w, 1)


def _inverse_gradient(h: int, w: int) -> np.ndarray:
    """A ground plane's depth: disparity falling linearly from 1 at the bottom row to 0.05 at the top, depth =
    1 / disparity."""
    disparity = np.linspace(0.05, 1.0, h, dtype=np.float32)
    return np.repeat((1.0 / disparity)[:, None], w, 1)


BASELINES = {
    "constant depth": ("depth", lambda h, w: np.ones((h, w), np.float32)),
    "vertical gradient": ("depth", _vertical_gradient),
    "inverse gradient": ("depth", _inverse_gradient),
    "facing camera": ("normals", lambda h, w: np.broadcast_to(np.float32([0, 0, 1]), (h, w, 3)).copy()),
}


def _write_baselines(gt_root: Path, out: Path) -> dict[str, Path]:
    """One folder of predictions per baseline for every image of ``gt_root``."""
    folders = {}
    for name, (task, make) in BASELINES.items():
        folder = folders[name] = out / name.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for gt in sorted((gt_root / "depth").glob("*.npy")):
            np.save(folder / f"{gt.stem}_{task}.npy", make(*np.load(gt, mmap_mode="r").shape[:2]))
    return folders


def _score(task: str, preds: Path, gt_root: Path, report: Path) -> dict:
    """``marigold evaluate`` in folder mode; adds ``by_family``: every table metric averaged per scene family
    (from the per-image CSV and the data's camera JSON)."""
    if not report.is_file():
        marigold("evaluate", "--task", task, "--predictions", str(preds), "--ground-truth", str(gt_root / task),
                 "--output", str(report), *(["--alignment", "least_square"] if task == "depth" else []))
    result = json.loads(report.read_text())
    by_family: dict[str, dict[str, list[float]]] = {}
    with open(report.with_name(report.stem + "_per_image.csv"), newline="") as f:
        for row in csv.DictReader(f):
            family = json.loads((gt_root / "camera" / f"{row['stem']}.json").read_text())["family"]
            for key in TABLE_KEYS[task]:
                by_family.setdefault(family, {}).setdefault(key, []).append(float(row[key]))
    result["by_family"] = {fam: {k: float(np.mean(v)) for k, v in m.items()} for fam, m in sorted(by_family.items())}
    return result


#: the models are scored as the paper evaluates Marigold: an ensemble of 10 (median for depth, "closest" for
#: normals) at the checkpoint's steps and processing resolution; the card adds a single-member row
EVAL_ENSEMBLE = 10


def _predict_and_score(a, task: str, ckpt: Path, split: str, out: Path, ensemble: int = EVAL_ENSEMBLE) -> dict:
    """Predict ``split`` with ``ckpt`` (``ensemble`` members, seed 0) and score it; reuses an earlier result only
    if it was made with the same UNet weights and ensemble size (``out/MODEL`` holds both)."""
    data = a.work_dir / "data" / split
    pred = out / "pred"
    fingerprint = f"{sha256(ckpt / 'unet' / 'diffusion_pytorch_model.safetensors')} ensemble={ensemble}"
    if (out / "MODEL").is_file() and (out / "MODEL").read_text() != fingerprint:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "MODEL").write_text(fingerprint)
    if not (out / "REPORT.json").is_file():
        marigold("predict", str(data / "rgb"), "--model", str(ckpt), "--output-dir", str(pred), "--seed", "0",
                 "--ensemble", str(ensemble), "--overwrite")
    return _score(task, pred, data, out / "REPORT.json")


def _write_roundtrips(task: str, ckpt: Path, gt_root: Path, out: Path) -> Path:
    """The ceiling the model's autoencoder sets: every ground-truth map of ``gt_root`` through the task's codec
    (depth: the per-image 2 % / 98 % normalisation) and the model's own VAE, encoded and decoded at the processing
    resolution (long edge ``default_processing_resolution``) and resized back; written to ``out/pred`` as
    predictions (``<stem>_<task>.npy``) to be scored like the model's. Returns ``out``; all of it is redone (scores
    included) only when the VAE weights change."""
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL

    from marigold_toolkit.core.image import processing_size
    from marigold_toolkit.pipeline.denoise import decode_latents
    from marigold_toolkit.tasks.depth.task import normalize_depth
    from marigold_toolkit.tasks.registry import get_task
    from marigold_toolkit.training.targets import encode_targets

    fingerprint = sha256(ckpt / "vae" / "diffusion_pytorch_model.safetensors")
    if (out / "MODEL").is_file() and (out / "MODEL").read_text() == fingerprint:
        return out
    shutil.rmtree(out, ignore_errors=True)
    (out / "pred").mkdir(parents=True)
    vae = AutoencoderKL.from_pretrained(ckpt / "vae").eval()
    codec = get_task(task)()
    long_edge = json.loads((ckpt / "model_index.json").read_text())["default_processing_resolution"]
    for gt_file in sorted((gt_root / task).glob("*.npy")):
        gt = torch.from_numpy(np.load(gt_file)).float()
        x = gt[None, None] if gt.ndim == 2 else gt.permute(2, 0, 1)[None]  # [1, C, H, W]
        size = tuple(x.shape[-2:])
        hw = tuple(-(-n // 8) * 8 for n in processing_size(*size, long_edge))  # the VAE's stride: up to a multiple of 8
        if task == "depth":  # nearest keeps invalid (0) pixels out of the valid ones
            x = F.interpolate(x, size=hw, mode="nearest")
            x = normalize_depth(x, valid_mask=x > 0)
        else:
            x = F.normalize(F.interpolate(x, size=hw, mode="bilinear", align_corners=False), dim=1)
        with torch.no_grad():
            pred = decode_latents(vae, encode_targets(vae, codec, x), 1, codec.decode)
        pred = codec.finalize(F.interpolate(pred, size=size, mode="bilinear", align_corners=False))[0]
        pred = pred[0] if task == "depth" else pred.permute(1, 2, 0)  # [H, W] / [H, W, 3]
        np.save(out / "pred" / f"{gt_file.stem}_{task}.npy", pred.numpy())
    (out / "MODEL").write_text(fingerprint)
    return out


def _evaluated_model(a, task: str) -> Path:
    """The model ``evaluate`` scores: the bundled one, or with ``--from-runs`` the run's final checkpoint (float32:
    a verdict before bundling; its numbers differ from the float16 bundle's at rounding level)."""
    if a.from_runs:
        return final_checkpoint(a.work_dir / task)
    return ((a.work_dir / "bundle") if a.smoke else PACKAGE_ASSETS) / task


def evaluate(a) -> None:
    ev = a.work_dir / "eval"
    sections, results = [], {}
    for split, title in (("heldout", "Second held-out set (the held-out generator)"),
                         ("test", "In-distribution test set (the training generator, other seeds)")):
        prefix = ev / split / ("run" if a.from_runs else "demo")
        rows = [(t, f"demo-{t}{label}", _predict_and_score(a, t, _evaluated_model(a, t), split,
                                                            Path(f"{prefix}-{t}-ens{n}"), n))
                for t in a.tasks for n, label in ((EVAL_ENSEMBLE, ""), (1, ", 1 member"))]
        for t in a.tasks:
            trips = _write_roundtrips(t, _evaluated_model(a, t), a.work_dir / "data" / split,
                                      ev / split / f"roundtrip-{t}")
            rows.append((t, "ceiling: autoencoder round trip", _score(t, trips / "pred", a.work_dir / "data" / split,
                                                                       trips / "REPORT.json")))
        for name, folder in _write_baselines(a.work_dir / "data" / split, ev / split / "baselines").items():
            task = BASELINES[name][0]
            if task not in a.tasks:
                continue
            rows.append((task, f"baseline: {name}", _score(task, folder, a.work_dir / "data" / split,
                                                           ev / split / "baselines" / f"{folder.name}.json")))
        results[split] = rows
        sections.append(f"### {title}\n\n" + model_card_table(rows))
    if not a.skip_ablation:
        runs = [(task, init, seed, _predict_and_score(a, task, final_checkpoint(run_dir), "heldout",
                                                      ev / "ablation" / run_dir.name))
                for task, init, seed, run_dir in _ablation_runs(a) if task in a.tasks]
        sections.append("### Ablation: pretrained base vs random UNet (second held-out set)\n\n"
                        + ablation_table(runs))
    verdict = transfer_verdict(results["heldout"])
    sections.append("### Verdict\n\n" + "\n".join(f"* {v}" for v in verdict) + "\n")
    card = "\n".join(sections)
    (a.work_dir / ("model_card.md" if set(a.tasks) == set(TASKS) else f"model_card_{'_'.join(a.tasks)}.md")
     ).write_text(card)
    logger.info("model card:\n%s", card)


TABLE_KEYS = {"depth": ("abs_rel", "delta1"), "normals": ("mean_angular_error", "within_11.25")}
LOWER_IS_BETTER = {"abs_rel": True, "delta1": False, "mean_angular_error": True, "within_11.25": False}


def model_card_table(rows) -> str:
    """Markdown: per task, one row per model / baseline with the dataset means and every metric per family."""
    lines = []
    for task, keys in TABLE_KEYS.items():
        families = sorted({f for t, _, rep in rows if t == task for f in rep["by_family"]})
        head = list(keys) + [f"{k} ({f})" for f in families for k in keys]
        lines += [f"| {task} | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
        for t, name, rep in rows:
            if t == task:
                vals = [float(rep[k]) for k in keys] + [rep["by_family"][f][k] for f in families for k in keys]
                lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
        lines.append("")
    return "\n".join(lines)


def ablation_table(runs) -> str:
    """Markdown: per task and initialisation, mean +- sample standard deviation over the seeds of every metric,
    overall and per family, and the per-seed values of the first metric."""
    lines = []
    for task, keys in TABLE_KEYS.items():
        mine = [r for r in runs if r[0] == task]
        if not mine:
            continue
        families = sorted({f for *_, rep in mine for f in rep["by_family"]})
        head = list(keys) + [f"{keys[0]} ({f})" for f in families] + [f"{keys[0]} per seed"]
        lines += [f"| {task} fine-tuned from | seeds | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
        for init in ("pretrained", "random"):
            reps = [(seed, rep) for t, i, seed, rep in mine if i == init]
            cols = [[float(rep[k]) for _, rep in reps] for k in keys]
            cols += [[rep["by_family"][f][keys[0]] for _, rep in reps] for f in families]
            cells = [f"{np.mean(c):.3f} ± {np.std(c, ddof=1) if len(c) > 1 else 0.0:.3f}" for c in cols]
            cells.append(", ".join(f"{rep[keys[0]]:.3f}" for _, rep in reps))
            label = "pretrained base" if init == "pretrained" else "random UNet"
            lines.append(f"| {label} | {len(reps)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _strictly_better(metric: str, model: float, baseline: float) -> bool:
    return model < baseline if LOWER_IS_BETTER[metric] else model > baseline


def transfer_verdict(rows) -> list[str]:
    """Does each model beat each of its task's baselines on every family (on both table metrics)?"""
    out = []
    for task, keys in TABLE_KEYS.items():
        model = next((rep for t, name, rep in rows if t == task and not name.startswith("baseline")), None)
        if model is None:
            continue
        for t, name, rep in rows:
            if t != task or not name.startswith("baseline"):
                continue
            lost = [f"{k} on {fam}" for fam, m in model["by_family"].items() for k in keys
                    if not _strictly_better(k, m[k], rep["by_family"][fam][k])]
            out.append(f"demo-{task} vs {name}: " + ("better on every family (both metrics)" if not lost
                                                     else "NOT better: " + ", ".join(lost)))
    return out


#: the README's and the model card's picture of the bundled models: the example photos, one row each
PREVIEW = REPO / "docs" / "images" / "demo-preview.jpg"
PREVIEW_ROW_HEIGHT = 160


def preview(a) -> None:
    """The example photos through both bundled models as the README's main command runs them (``marigold predict
    examples/ --model demo-depth,demo-normals --preview``: one member, the checkpoints' defaults), each photo's
    ``_preview.png`` (photo | depth | normals) scaled to :data:`PREVIEW_ROW_HEIGHT` rows and stacked into
    :data:`PREVIEW` (``--smoke``: ``WORK_DIR/demo-preview.jpg``, from the work dir's bundle)."""
    from PIL import Image

    root = (a.work_dir / "bundle") if a.smoke else PACKAGE_ASSETS
    out = a.work_dir / "preview"
    shutil.rmtree(out, ignore_errors=True)
    marigold("predict", str(REPO / "examples"), "--model", f"{root / 'depth'},{root / 'normals'}",
             "--output-dir", str(out), "--preview", "--seed", "0")
    rows = []
    for f in sorted(out.glob("*_preview.png")):
        im = Image.open(f).convert("RGB")
        rows.append(im.resize((round(im.width * PREVIEW_ROW_HEIGHT / im.height), PREVIEW_ROW_HEIGHT),
                              Image.Resampling.LANCZOS))
    if not rows:
        raise RuntimeError(f"{out}: marigold predict wrote no *_preview.png")
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    for i, r in enumerate(rows):
        sheet.paste(r, (0, i * PREVIEW_ROW_HEIGHT))
    dest = (a.work_dir / PREVIEW.name) if a.smoke else PREVIEW
    dest.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dest, quality=88)
    logger.info("preview of %d photos: %s", len(rows), dest)


STAGES = {"render": render, "pretrain": pretrain, "finetune": finetune, "ablation": ablation, "bundle": bundle,
          "evaluate": evaluate, "preview": preview}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=(*STAGES, "all"))
    p.add_argument("--work-dir", type=Path, default=REPO / "runs" / "demo")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="rendering processes")
    p.add_argument("--smoke", action="store_true", help="tiny budget everywhere; bundle into the work dir")
    p.add_argument("--skip-ablation", action="store_true", help="no random-UNet ablation runs")
    p.add_argument("--ablation-tasks", default="depth", help="comma-separated tasks of the ablation (default: depth)")
    p.add_argument("--tasks", default=",".join(TASKS),
                   help="comma-separated tasks to fine-tune, bundle and evaluate (default: all)")
    p.add_argument("--from-runs", action="store_true",
                   help="evaluate the runs' final checkpoints instead of the bundled models (a verdict before "
                        "bundling)")
    p.add_argument("--pretrain-override", action="append", default=[])
    p.add_argument("--train-override", action="append", default=[])
    a = p.parse_args(argv)
    a.work_dir = a.work_dir.resolve()
    a.ablation_tasks = tuple(t for t in a.ablation_tasks.split(",") if t)
    a.tasks = tuple(t for t in a.tasks.split(",") if t)
    if not a.tasks or set(a.tasks) - set(TASKS):
        p.error(f"--tasks: give some of {', '.join(TASKS)}")
    if set(a.ablation_tasks) - set(TASKS):
        p.error(f"--ablation-tasks: unknown tasks {sorted(set(a.ablation_tasks) - set(TASKS))}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for name in (STAGES if a.stage == "all" else [a.stage]):
        t0 = time.time()
        STAGES[name](a)
        logger.info("stage %s: %.1f min", name, (time.time() - t0) / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training checkpoints: complete inference folders in diffusers layout, plus the trainer state, written atomically.

Layout under ``<output_dir>/checkpoints/``::

    step-000050/            model_index.json, unet/, vae/, scheduler/, text_encoder/, tokenizer/  (loadable by
                            ``marigold predict`` and diffusers' Marigold pipelines), trainer_state.pt, COMPLETE
    latest                  text file naming the newest complete checkpoint

A checkpoint is assembled in a hidden temporary folder and renamed into place only when complete (the
``COMPLETE`` marker is written last), so a killed run never leaves a half-written checkpoint that could be
picked up.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..io.atomic import atomic_write

logger = logging.getLogger(__name__)

PIPELINE_CLASS = {"depth": "MarigoldDepthPipeline", "normals": "MarigoldNormalsPipeline",
                  "intrinsics": "MarigoldIntrinsicsPipeline"}
PREDICTION_TYPE = {"depth": "depth", "normals": "normals", "intrinsics": "intrinsics"}
MARKER = "COMPLETE"
TMP_PREFIX = ".tmp-"


def model_index(task: str, pipeline_cfg: dict[str, Any], scheduler_class: str) -> dict[str, Any]:
    """The ``model_index.json`` of a Marigold checkpoint for ``task`` (the fields diffusers' pipelines read)."""
    import diffusers

    index: dict[str, Any] = {"_class_name": PIPELINE_CLASS[task], "_diffusers_version": diffusers.__version__,
                             "prediction_type": PREDICTION_TYPE[task]}
    if task == "depth":
        index.update(scale_invariant=pipeline_cfg["scale_invariant"], shift_invariant=pipeline_cfg["shift_invariant"])
    elif task == "normals":
        index.update(use_full_z_range=pipeline_cfg["use_full_z_range"])
    else:
        index.update(target_properties=pipeline_cfg["target_properties"])
    index.update(
        default_denoising_steps=pipeline_cfg["default_denoising_steps"],
        default_processing_resolution=pipeline_cfg["default_processing_resolution"],
        scheduler=["diffusers", scheduler_class], text_encoder=["transformers", "CLIPTextModel"],
        tokenizer=["transformers", "CLIPTokenizer"], unet=["diffusers", "UNet2DConditionModel"],
        vae=["diffusers", "AutoencoderKL"],
    )
    return index


def _copy_component(src_root: Path, name: str, dst_root: Path) -> None:
    src = src_root / name
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: component folder missing in the base checkpoint")
    shutil.copytree(src, dst_root / name, ignore=shutil.ignore_patterns("*.fp16.*", "*.bin", "*.ckpt"))


def save_checkpoint(
    folder: Path,
    unet,
    base_path: Path,
    task: str,
    pipeline_cfg: dict[str, Any],
    inference_scheduler,
    trainer_state: dict[str, Any] | None,
) -> Path:
    """Write a complete checkpoint to ``folder`` atomically and return it."""
    folder = Path(folder)
    tmp = folder.parent / f"{TMP_PREFIX}{folder.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    unet.save_pretrained(tmp / "unet", safe_serialization=True)
    inference_scheduler.save_pretrained(tmp / "scheduler")
    for comp in ("vae", "text_encoder", "tokenizer"):
        _copy_component(base_path, comp, tmp)
    index = model_index(task, pipeline_cfg, type(inference_scheduler).__name__)
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    if trainer_state is not None:
        torch.save(trainer_state, tmp / "trainer_state.pt")
    (tmp / MARKER).write_text("ok\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def mark_latest(checkpoints_dir: Path, folder: Path) -> None:
    atomic_write(checkpoints_dir / "latest", lambda f: f.write(folder.name.encode() + b"\n"))


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / "unet").is_dir()


def find_latest(checkpoints_dir: Path) -> Path | None:
    """The newest complete checkpoint (the ``latest`` pointer, else the highest complete step)."""
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return None
    pointer = checkpoints_dir / "latest"
    if pointer.is_file():
        cand = checkpoints_dir / pointer.read_text().strip()
        if is_complete(cand) and (cand / "trainer_state.pt").is_file():
            return cand
    steps = sorted((p for p in checkpoints_dir.glob("step-*") if is_complete(p)
                    and (p / "trainer_state.pt").is_file()), key=lambda p: p.name)
    return steps[-1] if steps else None


def clean_temporaries(checkpoints_dir: Path) -> None:
    for p in Path(checkpoints_dir).glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)


def prune(checkpoints_dir: Path, keep_last: int, keep: set[str]) -> None:
    """Delete all but the ``keep_last`` newest step checkpoints, never those named in ``keep``."""
    steps = sorted(p for p in Path(checkpoints_dir).glob("step-*") if p.is_dir())
    for p in steps[:-keep_last] if keep_last > 0 else []:
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def load_trainer_state(folder: Path) -> dict[str, Any]:
    return torch.load(folder / "trainer_state.pt", map_location="cpu", weights_only=True)

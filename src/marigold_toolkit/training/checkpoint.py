"""Training checkpoints: complete inference folders in diffusers layout, plus the trainer state, written atomically.

Layout under ``<output_dir>/checkpoints/``::

    step-000050/            model_index.json, unet/, vae/, scheduler/, text_encoder/, tokenizer/  (loadable by
                            ``marigold predict`` and diffusers' Marigold pipelines), trainer_state.pt, COMPLETE
    latest                  text file naming the newest complete checkpoint

A checkpoint is assembled in a hidden temporary folder and renamed into place only when complete (the
``COMPLETE`` marker is written last), so a killed run never leaves a half-written checkpoint that could be
picked up (:func:`~marigold_toolkit.core.atomic.atomic_folder`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from ..checkpoints.model_index import MarigoldSpec, write_model_index
from ..core.atomic import atomic_folder, atomic_write_bytes

logger = logging.getLogger(__name__)

MARKER = "COMPLETE"


def _copy_component(src_root: Path, name: str, dst_root: Path) -> None:
    src = src_root / name
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: component folder missing in the base checkpoint")
    shutil.copytree(src, dst_root / name, ignore=shutil.ignore_patterns("*.fp16.*", "*.bin", "*.ckpt"))


def save_checkpoint(
    folder: Path,
    unet,
    base_path: Path,
    spec: MarigoldSpec,
    inference_scheduler,
    trainer_state: dict[str, Any] | None,
) -> Path:
    """Write a complete checkpoint to ``folder`` atomically and return it: the UNet, the inference scheduler,
    the base's VAE / text encoder / tokenizer, ``model_index.json`` of ``spec``, the trainer state."""
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        inference_scheduler.save_pretrained(tmp / "scheduler")
        for comp in ("vae", "text_encoder", "tokenizer"):
            _copy_component(base_path, comp, tmp)
        write_model_index(tmp, spec)
        if trainer_state is not None:
            torch.save(trainer_state, tmp / "trainer_state.pt")
        (tmp / MARKER).write_text("ok\n")
    return folder


def mark_latest(checkpoints_dir: Path, folder: Path) -> None:
    atomic_write_bytes(checkpoints_dir / "latest", folder.name.encode() + b"\n")


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


def prune(checkpoints_dir: Path, keep_last: int, keep: set[str]) -> None:
    """Delete all but the ``keep_last`` newest step checkpoints, never those named in ``keep``."""
    steps = sorted(p for p in Path(checkpoints_dir).glob("step-*") if p.is_dir())
    for p in steps[:-keep_last] if keep_last > 0 else []:
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def load_trainer_state(folder: Path) -> dict[str, Any]:
    return torch.load(folder / "trainer_state.pt", map_location="cpu", weights_only=True)

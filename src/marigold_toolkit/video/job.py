"""One video in, depth video files out (``marigold video``), resumable and atomic.

Outputs in ``out_dir`` for an input with stem ``S``:

* ``S_depth.npy`` — float32 ``[T, H, W]`` in [0, 1] at the input resolution, written through a memory map (the
  video never sits in memory) under a temporary name and renamed when complete;
* ``S_depth/`` — one 16-bit PNG per frame (``000000.png`` ...; value x 65535, as predict's ``_depth.png``);
* ``S_depth.mp4`` — the input and the colourised prediction side by side;
* ``S_depth.json`` — mode, settings, frame numbers and rate, the prediction space and the one scale and shift
  that mapped the clip to [0, 1].

A model that predicts disparity (inverse depth; RollingDepth does) writes ``S_disparity.*`` instead, as
``marigold predict`` names its outputs.

Predictions first go to a work folder (``.S_video_work/``) chunk by chunk; a killed job rerun with the same
settings continues after its last finished chunk, and the work folder is removed once the outputs are written.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.atomic import TMP_PREFIX, atomic_folder, atomic_write_bytes, clean_stale_temporaries
from ..core.image import resize
from ..io.files import png16_bytes
from ..io.video import FrameSource, VideoWriter
from ..visualize import side_by_side
from .latent_init import LatentCarry, common_noise, predict_frame
from .coalign import CoalignConfig
from .rolling import PRESETS, RollingDepth, RollingSettings, settings_record
from .work import WorkFolder

logger = logging.getLogger(__name__)

#: ``marigold video --mode`` values
VIDEO_MODES = ("latent-init", "rolling", "independent")


@dataclass
class VideoSettings:
    """What ``marigold video`` runs: the mode, steps, processing resolution, seed and RollingDepth's settings."""

    mode: str = "latent-init"
    steps: int | None = None
    processing_resolution: int | None = None
    seed: int | None = 0
    resample: str = "bilinear"
    chunk: int = 16
    rolling: RollingSettings = field(default_factory=RollingSettings)
    write_png: bool = True
    write_mp4: bool = True

    def __post_init__(self):
        if self.mode not in VIDEO_MODES:
            raise ValueError(f"unknown video mode {self.mode!r}; use one of {', '.join(VIDEO_MODES)}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")


@dataclass
class VideoResult:
    """Where the outputs went and how long it took."""

    stem: str
    files: list[Path]
    frames: int
    seconds: float
    prediction_space: str


def video_settings(mode: str = "latent-init", preset: str | None = None, *, dilations: tuple[int, ...] | None = None,
                   snippet_length: int | None = None, cap_dilation: bool = True, refine_steps: int | None = None,
                   snippets_per_call: int = 1, coalign_iterations: int | None = None, steps: int | None = None,
                   processing_resolution: int | None = None, seed: int | None = 0, resample: str = "bilinear",
                   chunk: int = 16, write_png: bool = True, write_mp4: bool = True,
                   dtype: str | None = None) -> tuple[VideoSettings, str]:
    """``(VideoSettings, dtype)`` from a mode, one of the authors' RollingDepth ``preset`` names
    (:data:`~.rolling.PRESETS`; ``--mode rolling`` only) and explicit values, which win over the preset's.
    dtype: ``dtype``, else the preset's, else float32."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(sorted(PRESETS))}")
    if preset is not None and mode != "rolling":
        raise ValueError("--preset applies to --mode rolling")
    p = PRESETS[preset] if preset else {}
    rolling = RollingSettings(
        dilations=dilations or p.get("dilations", (1, 25)), snippet_length=snippet_length or 3,
        cap_dilation=cap_dilation and p.get("cap_dilation", True),
        refine_steps=refine_steps if refine_steps is not None else p.get("refine_steps", 0),
        snippets_per_call=snippets_per_call, coalign=CoalignConfig(iterations=coalign_iterations or 2000))
    res = processing_resolution if processing_resolution is not None else p.get("processing_resolution")
    return (VideoSettings(mode=mode, steps=steps, processing_resolution=res, seed=seed, resample=resample,
                          chunk=chunk, rolling=rolling, write_png=write_png, write_mp4=write_mp4),
            dtype or p.get("dtype", "float32"))


def protocol_mode(predictor: Any) -> tuple[str, str | None]:
    """The video mode (and preset) a checkpoint is evaluated with by default: ``("rolling", "paper")`` for a
    checkpoint in RollingDepth's layout (its authors' paper settings), ``("latent-init", None)`` for any other."""
    if predictor.spec.model_index.get("_class_name") == "RollingDepthPipeline":
        return "rolling", "paper"
    return "latent-init", None


def settings_key_record(settings: VideoSettings) -> dict[str, Any]:
    """What defines a video prediction of :func:`run_video` besides the model: mode, steps, resolution, seed,
    resampling and (rolling) RollingDepth's settings; not the chunking or the optional PNG / mp4 outputs."""
    return {"mode": settings.mode, "steps": settings.steps, "processing_resolution": settings.processing_resolution,
            "seed": settings.seed, "resample": settings.resample,
            "rolling": settings_record(settings.rolling) if settings.mode == "rolling" else None}


def output_names(stem: str, target: str = "depth") -> dict[str, str]:
    """The output names for input ``stem`` and the model's target (``depth``; ``disparity`` for a model that
    predicts inverse depth)."""
    return {"npy": f"{stem}_{target}.npy", "png": f"{stem}_{target}", "mp4": f"{stem}_{target}.mp4",
            "json": f"{stem}_{target}.json"}


def _raw_frames(predictor: Any, source: FrameSource, settings: VideoSettings, work: WorkFolder,
                show: bool) -> np.ndarray:
    """The per-frame predictions of the latent-init / independent modes at the processing size (not normalised),
    as a memory map in ``work``; resumes after the last finished chunk."""
    steps, res = predictor.resolve_settings(settings.steps if settings.steps is not None else
                                            (1 if settings.mode == "latent-init" else None),
                                            settings.processing_resolution)
    n = len(source)
    done = int(work.get("frames_done", 0))
    raw, carry = None, None
    if done:
        raw = work.array("raw", tuple(work.get("raw_shape")))
        saved = work.load_npz("carry")
        if settings.mode == "latent-init":
            carry = LatentCarry(torch.as_tensor(saved["common"]), torch.as_tensor(saved["previous"]))
    seed = work.get("seed")
    bar = tqdm(total=n, initial=done, desc=f"{source.stem} ({settings.mode})", unit="frame",
               disable=None if show else True)
    for k, (_, frame) in enumerate(source.frames(skip=done), start=done):
        if settings.mode == "latent-init":
            if carry is None:
                carry = LatentCarry(common_noise(predictor, frame, res, seed))
            out = predict_frame(predictor, frame, carry, steps, res, settings.resample, seed=seed)
        else:  # independent: every frame its own prediction, seeded by (seed, frame index)
            out = predictor.predict(frame, num_inference_steps=steps, processing_resolution=res,
                                    match_input_resolution=False, seed=seed + k,
                                    resample_method_input=settings.resample)
        pred = out.targets[predictor.task.target_names[0]]
        if raw is None:
            raw = work.array("raw", (n, *pred.shape))
            work.commit(raw_shape=[n, *pred.shape])
        raw[k] = pred
        if (k + 1) % settings.chunk == 0 or k + 1 == n:
            raw.flush()
            if carry is not None:
                work.save_npz("carry", common=carry.common.numpy(), previous=carry.previous.numpy())
            work.commit(frames_done=k + 1)
        bar.update(1)
    bar.close()
    return raw


def _resized(raw_frame: np.ndarray, size: tuple[int, int], resample: str) -> np.ndarray:
    """One raw frame at the input ``size``."""
    t = torch.as_tensor(np.asarray(raw_frame, dtype=np.float32))[None, None]
    if tuple(t.shape[-2:]) != tuple(size):
        t = resize(t, size, resample)
    return t[0, 0].numpy()


def run_video(predictor: Any, source: FrameSource, out_dir: str | Path, settings: VideoSettings,
              overwrite: bool = False, show_progress: bool = True) -> VideoResult:
    """Predict ``source`` with ``predictor`` (a depth model) and write the outputs (see the module docstring)."""
    t0 = time.perf_counter()
    if not getattr(predictor.task, "supports_video", False):
        raise ValueError(f"video depth needs a depth model; this one predicts {predictor.task.name}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir)
    target = predictor.task.target_names[0]
    space = getattr(predictor.task, "prediction_space", "depth")
    names = output_names(source.stem, target)
    wanted = ["npy", "json"] + (["png"] if settings.write_png else []) + (["mp4"] if settings.write_mp4 else [])
    paths = [out_dir / names[k] for k in wanted]
    if not overwrite and all(p.exists() for p in paths):
        logger.info("%s: outputs exist, skipping (use --overwrite to recompute)", source.path)
        meta = json.loads((out_dir / names["json"]).read_text())
        return VideoResult(source.stem, paths, len(source), 0.0, meta.get("prediction_space", "depth"))

    record = {"mode": settings.mode, "steps": settings.steps, "processing_resolution": settings.processing_resolution,
              "seed": settings.seed, "resample": settings.resample, "model": predictor.spec.source,
              "dtype": str(predictor.dtype), "input": str(source.path.resolve()), "frames": source.numbers,
              "rolling": settings_record(settings.rolling) if settings.mode == "rolling" else None}
    work = WorkFolder(out_dir / f".{source.stem}_video_work", record)
    if work.resumed:
        logger.info("%s: resuming the unfinished job in %s", source.path, work.folder)
    if work.get("seed") is None:
        work.commit(seed=settings.seed if settings.seed is not None else secrets.randbelow(2**31))

    if settings.mode == "rolling":
        res = predictor.resolve_settings(settings.rolling.steps, settings.processing_resolution)[1]
        raw = RollingDepth(predictor, settings.rolling, work, seed=work.get("seed"),
                           show_progress=show_progress).run(source, res, settings.resample)
    else:
        raw = _raw_frames(predictor, source, settings, work, show_progress)
    H, W = source.size
    n = len(source)
    written = []
    final = out_dir / names["npy"]
    tmp = out_dir / f"{TMP_PREFIX}{secrets.token_hex(6)}-{names['npy']}"
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, H, W))
    lo, hi = np.inf, -np.inf  # one scale and shift for the whole clip, from its frames at the input size
    for k in range(n):
        arr[k] = _resized(raw[k], (H, W), settings.resample)
        lo, hi = min(lo, float(arr[k].min())), max(hi, float(arr[k].max()))
    for k in range(n):  # then mapped into [0, 1] in place
        arr[k] = np.clip((arr[k] - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    arr.flush()
    del arr
    os.replace(tmp, final)
    written.append(final)
    depth = np.load(final, mmap_mode="r")

    if settings.write_png:
        with atomic_folder(out_dir / names["png"]) as folder:
            for k in range(n):
                atomic_write_bytes(folder / f"{k:06d}.png", png16_bytes(depth[k], (0.0, 1.0)))
        written.append(out_dir / names["png"])
    if settings.write_mp4:
        with VideoWriter(out_dir / names["mp4"], source.fps) as video:
            for k, (_, frame) in enumerate(source.frames()):
                vis = predictor.task.visualize(target, np.asarray(depth[k]))
                video.write(side_by_side(frame, vis))
        written.append(out_dir / names["mp4"])
    meta = {**record, "prediction_space": space, "normalisation": {"subtract": lo, "divide": hi - lo},
            "fps": source.fps, "size": [H, W], "seed_used": work.get("seed"),
            "seconds": round(time.perf_counter() - t0, 3),
            "outputs": [p.name for p in written]}
    atomic_write_bytes(out_dir / names["json"], json.dumps(meta, indent=1).encode())
    written.append(out_dir / names["json"])
    work.remove()
    return VideoResult(source.stem, written, n, time.perf_counter() - t0, space)

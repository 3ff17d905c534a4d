"""Distil a tiny decoder for one checkpoint: ``marigold distill-decoder CHECKPOINT --output DIR``.

The student is a diffusers ``AutoencoderTiny`` decoder (TAESD layout, :mod:`marigold_toolkit.checkpoints.
tiny_decoder`) of a chosen width and depth; the teacher is the checkpoint's own full VAE decoder. Training data
are the checkpoint task's latents — the ground-truth targets of rendered or supplied training folders
(``data/`` folder layout, any task) encoded by the frozen VAE encoder exactly as fine-tuning encodes them
(:func:`~marigold_toolkit.training.targets.encode_targets`), optionally with the checkpoint's own predicted
latents of the same images (what the decoder sees at inference). The student learns to reproduce the teacher's
decoded image (L1 in the VAE's [-1, 1] image space) from the same latents.

Work folder ``<output>.work/`` (resumable; a rerun continues where a killed run stopped):

* ``config.json`` — the settings the work folder belongs to (a rerun with other settings is refused unless
  ``overwrite``);
* ``latents.safetensors`` — every sample's latents and the teacher's decoded image (float16), built once;
* ``state.pt`` — student, optimiser, step and RNG state, written atomically every ``save_every`` steps and read
  back with ``torch.load(weights_only=True)``;
* ``renders/`` — the rendered training set when no data folder was given.

The result, written atomically when training ends: ``DIR/config.json`` +
``diffusion_pytorch_model.safetensors`` (loadable by ``AutoencoderTiny.from_pretrained`` and by ``--decoder
DIR``) and ``DIR/distill_report.json``: teacher, data, architecture, parameters, steps, the final loss, and the
student's deviation from the teacher on the held-out samples in the task's own terms
(:meth:`~marigold_toolkit.tasks.base.Task.deviation`: depth AbsRel, normals degrees, ...), with decode times.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors
from tqdm.auto import tqdm

from ..checkpoints.loading import MarigoldComponents, load_components
from ..checkpoints.tiny_decoder import new_tiny_decoder, save_tiny_decoder
from ..core.atomic import atomic_write_bytes
from ..core.machine import cpu_description
from ..data import FolderDataset
from ..pipeline.denoise import encode_images
from ..pipeline.predictor import Predictor
from ..synth.writer import render_dataset
from .targets import encode_targets

logger = logging.getLogger(__name__)

WORK_SUFFIX = ".work"


class DistillError(ValueError):
    """The distillation cannot run as asked (no data, bad settings, a work folder from other settings)."""


@dataclass
class DistillConfig:
    """Settings of one distillation (see the module docstring; the CLI flags have the same names).

    Attributes:
        checkpoint: teacher checkpoint (alias, hub id or folder).
        output: folder of the distilled decoder.
        data: training folders in the ``data/`` folder layout holding the checkpoint task's targets; empty:
            render ``render`` scenes with ``marigold synth`` (Mitsuba) at ``render_resolution``.
        width, blocks: the student's channels (one width for all levels) and residual blocks per level.
        steps, batch_size, lr: Adam steps, samples per step and peak learning rate (cosine decay to 5 %).
        crop: training crops in latent pixels (``8 * crop`` image pixels); samples smaller than that are used
            whole. A 2-latent-pixel margin of each crop is left out of the loss (the teacher saw context there).
        holdout: samples (the last ones, in stem order) never trained on; the report's deviation is measured
            on them.
        with_predictions: also train on the checkpoint's own one-step predictions' latents of the images.
    """

    checkpoint: str
    output: Path
    data: list[Path] = field(default_factory=list)
    render: int = 256
    render_resolution: tuple[int, int] | None = None
    width: int = 16
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    steps: int = 2000
    batch_size: int = 8
    lr: float = 2e-3
    crop: int = 16
    holdout: int = 16
    with_predictions: bool = False
    seed: int = 0
    device: str | None = None
    save_every: int = 200

    def key(self) -> dict:
        """What the work folder's contents depend on (not ``output``, ``device``, ``save_every``)."""
        d = asdict(self)
        for k in ("output", "device", "save_every"):
            d.pop(k)
        d["data"] = [str(Path(p).resolve()) for p in self.data]
        d["blocks"] = list(self.blocks)
        d["render_resolution"] = list(self.render_resolution) if self.render_resolution else None
        return d


def work_folder(output: str | Path) -> Path:
    output = Path(output)
    return output.parent / f"{output.name}{WORK_SUFFIX}"


# -- data -------------------------------------------------------------------------------------------------------
def _render(cfg: DistillConfig, work: Path, comps: MarigoldComponents) -> Path:
    """Render ``cfg.render`` scenes into ``work/renders`` (resumable: rendered samples are kept)."""
    try:
        import mitsuba  # noqa: F401
    except ImportError as exc:
        raise DistillError("no --data given and rendering needs Mitsuba 3 (pip install 'marigold-toolkit[synth]'); "
                           "pass training folders with --data") from exc
    res = cfg.render_resolution
    if res is None:
        long_edge = int(comps.spec.default_processing_resolution or 768)
        res = (long_edge * 3 // 4 // 8 * 8, long_edge // 8 * 8)
    root = work / "renders"
    render_dataset(root, cfg.render, seed=cfg.seed, resolution=tuple(res), spp=8, workers=1, progress=True)
    return root


def _datasets(cfg: DistillConfig, work: Path, comps: MarigoldComponents) -> list[FolderDataset]:
    roots = list(cfg.data) or [_render(cfg, work, comps)]
    task = comps.spec.task
    out = []
    for root in roots:
        try:
            ds = FolderDataset(root, augment=False, task=task.name)
        except (FileNotFoundError, ValueError) as exc:
            raise DistillError(f"--data {root}: {exc}") from exc
        if len(ds) == 0:
            raise DistillError(f"--data {root}: no samples under rgb/")
        out.append(ds)
    return out


@torch.no_grad()
def build_latents(cfg: DistillConfig, comps: MarigoldComponents, datasets: Sequence[FolderDataset],
                  path: Path) -> None:
    """Every sample's latents ``[4, h, w]`` (scaled, as the denoiser produces them) and the teacher's decoded image
    ``[3, 8h, 8w]`` (float16) into ``path`` (safetensors, written atomically), one row per (sample, target[,
    source]); ``meta`` in the file's metadata lists the rows' stems, and the holdout rows."""
    task, vae = comps.spec.task, comps.vae
    predictor = Predictor(comps) if cfg.with_predictions else None
    sf = float(vae.config.scaling_factor)
    tensors, rows = {}, []
    samples = [(ds, i) for ds in datasets for i in range(len(ds))]
    n_holdout = min(cfg.holdout, max(0, len(samples) - 1))
    first_holdout = len(samples) - n_holdout
    for k, (ds, i) in enumerate(tqdm(samples, desc="encoding targets", leave=False)):
        sample = ds[i]
        mask = sample.get("valid_mask")
        batch = {key: (v[None] if torch.is_tensor(v) else v) for key, v in sample.items()}
        targets = task.training_targets(batch, None if mask is None else mask[None].to(comps.device), comps.device)
        z = encode_targets(vae, task, targets)[0]  # [4T, h, w]
        latents = [("target", z)]
        if predictor is not None:
            rgb = ((sample["rgb"].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
            out = predictor.predict(rgb, processing_resolution=0, seed=cfg.seed + k, output_latent=True)
            latents.append(("prediction", out.latent[0]))
        for source, lat in latents:
            for t, name in enumerate(task.target_names):
                zt = lat[4 * t: 4 * t + 4].float().contiguous()
                y = vae.decode(zt[None] / sf).sample[0].to(torch.float16)
                r = len(rows)
                tensors[f"z{r}"], tensors[f"y{r}"] = zt.cpu(), y.cpu()
                rows.append({"stem": str(sample["stem"]), "target": name, "source": source,
                             "holdout": k >= first_holdout})
    meta = {"rows": json.dumps(rows), "scaling_factor": repr(sf)}
    atomic_write_bytes(path, save_tensors(tensors, metadata=meta))


def read_latents(path: Path) -> tuple[list[torch.Tensor], list[torch.Tensor], list[dict]]:
    with safe_open(str(path), framework="pt") as f:
        rows = json.loads(f.metadata()["rows"])
        zs = [f.get_tensor(f"z{r}") for r in range(len(rows))]
        ys = [f.get_tensor(f"y{r}") for r in range(len(rows))]
    return zs, ys, rows


# -- training ---------------------------------------------------------------------------------------------------
def _crop_batch(zs, ys, idx, crop: int, margin: int, rng: np.random.Generator):
    """Random ``crop`` x ``crop`` latent windows (clipped to the smallest sample) of rows ``idx`` with the matching
    image windows, and the image-space loss mask leaving out ``margin`` latent pixels at inner crop edges."""
    h = min(min(zs[i].shape[-2] for i in idx), crop)
    w = min(min(zs[i].shape[-1] for i in idx), crop)
    zb, yb, masks = [], [], []
    for i in idx:
        H, W = zs[i].shape[-2:]
        y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        zb.append(zs[i][:, y0:y0 + h, x0:x0 + w])
        yb.append(ys[i][:, 8 * y0:8 * (y0 + h), 8 * x0:8 * (x0 + w)])
        m = torch.ones(8 * h, 8 * w, dtype=torch.bool)
        e = 8 * margin
        if y0 > 0:
            m[:e] = False
        if x0 > 0:
            m[:, :e] = False
        if y0 + h < H:
            m[8 * h - e:] = False
        if x0 + w < W:
            m[:, 8 * w - e:] = False
        masks.append(m)
    return torch.stack(zb), torch.stack(yb).float(), torch.stack(masks)[:, None]


def _lr(step: int, cfg: DistillConfig) -> float:
    warm = max(1, cfg.steps // 50)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def _save_state(path: Path, student, opt, step: int, rng: np.random.Generator, losses: list[float]) -> None:
    buf = io.BytesIO()
    torch.save({"student": student.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "rng": torch.from_numpy(np.frombuffer(json.dumps(rng.bit_generator.state).encode(), dtype=np.uint8)
                                        .copy()),
                "losses": torch.tensor(losses, dtype=torch.float64)}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_state(path: Path, student, opt) -> tuple[int, np.random.Generator, list[float]]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    student.load_state_dict(state["student"])
    opt.load_state_dict(state["optimizer"])
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(bytes(state["rng"].numpy()).decode())
    return int(state["step"]), rng, state["losses"].tolist()


@torch.no_grad()
def held_out_deviation(task, decoder_fn, zs, ys, rows) -> dict[str, float]:
    """Mean (and worst) :meth:`Task.deviation` of ``decoder_fn`` (scaled latents ``[1, 4, h, w]`` -> image) from the
    teacher's images on the holdout rows, each target decoded with the task's codec."""
    per = []
    for z, y, row in zip(zs, ys, rows):
        if row["holdout"]:
            pred = task.decode(decoder_fn(z[None]).float())
            ref = task.decode(y[None].float())
            per.append(task.deviation(pred, ref))
    if not per:
        return {}
    out = {k: float(statistics.fmean(d[k] for d in per)) for k in per[0]}
    out.update({f"worst_{task.deviation_key}": max(d[task.deviation_key] for d in per), "samples": len(per)})
    return out


def _parameters(*modules) -> int:
    return sum(p.numel() for m in modules if m is not None for p in m.parameters())


def _decode_seconds(fn, z: torch.Tensor, repeats: int = 3) -> float:
    fn(z)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(z)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def distill_decoder(cfg: DistillConfig, overwrite: bool = False, progress: bool = True) -> dict:
    """Run (or resume) a distillation; returns the report written next to the decoder (see the module docstring).

    Raises:
        DistillError: no usable data, bad settings, or a work folder made with other settings (without
            ``overwrite``).
    """
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.crop < 4 or cfg.width < 1 or cfg.holdout < 0:
        raise DistillError("steps, batch_size and width must be >= 1, crop >= 4 latent pixels, holdout >= 0")
    output = Path(cfg.output)
    work = work_folder(output)
    key = json.dumps(cfg.key(), sort_keys=True)
    if work.exists() and overwrite:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "config.json"
    if config_path.is_file() and config_path.read_text() != key:
        raise DistillError(f"{work} belongs to a distillation with other settings; rerun those, or pass --overwrite "
                           "to start over")
    config_path.write_text(key)

    comps = load_components(cfg.checkpoint, dtype="float32", device=cfg.device)
    task, vae = comps.spec.task, comps.vae
    latents_path = work / "latents.safetensors"
    if not latents_path.is_file():
        build_latents(cfg, comps, _datasets(cfg, work, comps), latents_path)
    zs, ys, rows = read_latents(latents_path)
    train_idx = [i for i, r in enumerate(rows) if not r["holdout"]]
    if not train_idx:
        raise DistillError(f"{len(rows)} latent rows and all are held out; add data or lower --holdout")

    torch.manual_seed(cfg.seed)
    student = new_tiny_decoder(int(vae.config.latent_channels), cfg.width, tuple(cfg.blocks))
    decoder = student.decoder.to(comps.device).train()
    opt = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    state_path = work / "state.pt"
    step, rng, losses = 0, np.random.default_rng(cfg.seed), []
    if state_path.is_file():
        step, rng, losses = _load_state(state_path, student, opt)
        logger.info("distill-decoder: resuming %s at step %d of %d", work, step, cfg.steps)
    bar = tqdm(total=cfg.steps, initial=step, desc="distilling decoder", disable=not progress)
    while step < cfg.steps:
        idx = [train_idx[int(i)] for i in rng.integers(0, len(train_idx), cfg.batch_size)]
        z, y, m = _crop_batch(zs, ys, idx, cfg.crop, 2, rng)
        z, y, m = z.to(comps.device), y.to(comps.device), m.to(comps.device)
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        out = decoder(z)  # the student's decoder sees scaled latents (its scaling_factor is 1)
        loss = ((out - y).abs() * m).sum() / (m.sum() * out.shape[1]).clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{statistics.fmean(losses[-50:]):.4f}")
        if step % cfg.save_every == 0 or step == cfg.steps:
            _save_state(state_path, student, opt, step, rng, losses)
    bar.close()

    decoder.eval()
    sf = float(vae.config.scaling_factor)
    student_fn = lambda z: student.decode(z.to(comps.device)).sample  # noqa: E731
    teacher_fn = lambda z: vae.decode(z.to(comps.device) / sf).sample  # noqa: E731
    deviation = held_out_deviation(task, student_fn, zs, ys, rows)
    probe = next((z for z, r in zip(zs, rows) if r["holdout"]), zs[0])[None]
    with torch.no_grad():
        t_student, t_teacher = _decode_seconds(student_fn, probe), _decode_seconds(teacher_fn, probe)
    index_sha = hashlib.sha256(json.dumps(comps.spec.model_index, sort_keys=True).encode()).hexdigest()
    report = {
        "teacher": str(cfg.checkpoint), "teacher_model_index_sha256": index_sha, "task": task.name,
        "targets": list(task.target_names), "decoder_only": True,
        "architecture": {"width": cfg.width, "blocks": list(cfg.blocks),
                         "parameters": _parameters(student.decoder),
                         "teacher_decoder_parameters": _parameters(vae.decoder, getattr(vae, "post_quant_conv", None))},
        "data": {"folders": [str(p) for p in cfg.data] or ["rendered"], "rows": len(rows),
                 "train_rows": len(train_idx), "holdout_rows": len(rows) - len(train_idx),
                 "sources": sorted({r["source"] for r in rows})},
        "training": {"steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr, "crop_latent_px": cfg.crop,
                     "final_loss": statistics.fmean(losses[-100:]) if losses else None, "seed": cfg.seed},
        "deviation_key": task.deviation_key,
        "held_out_deviation": deviation,
        "decode_seconds": {"image_size": [int(probe.shape[-2]) * 8, int(probe.shape[-1]) * 8],
                           "student": t_student, "teacher": t_teacher, "machine": cpu_description()
                           if comps.device.type == "cpu" else str(comps.device)},
    }
    save_tiny_decoder(student.to("cpu"), output, report)
    logger.info("distill-decoder: wrote %s (held-out %s %.4g)", output, task.deviation_key,
                deviation.get(task.deviation_key, float("nan")))
    return report

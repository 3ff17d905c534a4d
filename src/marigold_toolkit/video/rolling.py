"""``--mode rolling``: RollingDepth (Ke et al., CVPR 2025) on our stack.

1. every frame is encoded once (latents kept in a memory map);
2. for each dilation ``d``, snippets of ``L`` frames ``i, i + d, ...`` (:mod:`.snippets`) are denoised in one step
   from one noise latent shared by all frames, with cross-frame self-attention inside each snippet
   (:mod:`~marigold_toolkit.pipeline.cross_frame`), and decoded (mean of the three channels, not clipped);
3. the snippets are co-aligned (one scale and shift each, :mod:`.coalign`) and averaged per frame;
4. optionally refined: the co-aligned video, renormalised to [-1, 1], is encoded, re-noised with the same noise to
   the middle of a ``2 x refine_steps`` schedule and denoised over its second half with snippets whose dilation
   falls from ``refine_start_dilation`` to 1, averaging each frame's latent over the snippets covering it.

The RollingDepth checkpoint (``prs-eth/rollingdepth-v1-0``, layout ``RollingDepthPipeline``: a Marigold UNet
with 8 input channels) predicts affine-invariant *inverse* depth; the result is in the model's prediction space.
Each stage records its progress in the job's :class:`~.work.WorkFolder`, so a killed job resumes after its last
finished chunk.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.image import pad_to_multiple, unpad
from ..io.video import FrameSource
from ..pipeline.cross_frame import snippet_frames
from ..pipeline.denoise import as_unet_fn, decode_latents, denoise, encode_images
from .coalign import CoalignConfig, Coalignment, fit_coalignment, merge_snippets, sample_pixels
from .snippets import cap_dilation, refinement_dilation, snippet_indices
from .work import WorkFolder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollingSettings:
    """RollingDepth's inference settings (defaults: the authors' ``fast`` preset without its resolution/dtype)."""

    dilations: tuple[int, ...] = (1, 25)
    snippet_length: int = 3
    cap_dilation: bool = True
    refine_steps: int = 0
    refine_snippet_length: int = 3
    refine_start_dilation: int = 6
    snippets_per_call: int = 1
    #: denoising steps of the initial snippet inference (the authors use 1)
    steps: int = 1
    coalign: CoalignConfig = field(default_factory=CoalignConfig)

    def __post_init__(self):
        if 1 not in self.dilations:
            raise ValueError(f"dilations {list(self.dilations)} must include 1 (every neighbour pair)")
        if self.snippet_length < 1 or self.refine_snippet_length < 1 or self.snippets_per_call < 1:
            raise ValueError("snippet lengths and snippets_per_call must be >= 1")
        if self.refine_steps < 0:
            raise ValueError(f"refine_steps must be >= 0, got {self.refine_steps}")

    def for_frames(self, n_frames: int) -> RollingSettings:
        """The dilations (and refinement start) capped for a video of ``n_frames`` when ``cap_dilation``."""
        if not self.cap_dilation:
            return self
        return replace(self, dilations=tuple(dict.fromkeys(cap_dilation(n_frames, self.snippet_length, d)
                                                            for d in self.dilations)),
                       refine_start_dilation=cap_dilation(n_frames, self.refine_snippet_length,
                                                          self.refine_start_dilation))


#: the authors' presets: processing resolution, dilations, refinement, dtype, dilation cap
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"processing_resolution": 768, "dilations": (1, 25), "refine_steps": 0, "dtype": "float16",
             "cap_dilation": True},
    "fast1024": {"processing_resolution": 1024, "dilations": (1, 25), "refine_steps": 0, "dtype": "float16",
                 "cap_dilation": True},
    "full": {"processing_resolution": 1024, "dilations": (1, 10, 25), "refine_steps": 10, "dtype": "float16",
             "cap_dilation": True},
    "paper": {"processing_resolution": 768, "dilations": (1, 10, 25), "refine_steps": 10, "dtype": "float32",
              "cap_dilation": False},
}


def _decode_mean(image: torch.Tensor) -> torch.Tensor:
    """RollingDepth's decoding: the mean of the three decoded channels, in the VAE's [-1, 1] scale, unclipped."""
    return image.mean(dim=1, keepdim=True).float()


class RollingDepth:
    """One video through RollingDepth with ``predictor`` (a depth checkpoint in RollingDepth's layout; eager
    backend), writing its intermediate arrays into ``work``."""

    def __init__(self, predictor: Any, settings: RollingSettings, work: WorkFolder, seed: int | None = 0,
                 show_progress: bool = True):
        if predictor.backend != "eager":
            raise ValueError("rolling mode sets attention processors on the UNet: use the eager backend")
        if predictor.task.n_targets != 1:
            raise ValueError("rolling mode needs a single-target depth checkpoint")
        self.p, self.settings, self.work, self.seed = predictor, settings, work, seed
        self.show = show_progress
        self.quiet = None if show_progress else True  # tqdm: None shows a bar on a terminal only
        self.text = predictor.components.empty_text_embedding.to(predictor.dtype)

    # -- 1. encode ------------------------------------------------------------------------------------------
    def encode(self, source: FrameSource, resolution: int, resample: str) -> np.ndarray:
        n = len(source)
        done = int(self.work.get("encoded", 0))
        latents = None
        bar = tqdm(total=n, initial=done, desc="encode frames", unit="frame", disable=self.quiet, leave=False)
        for k, (_, frame) in enumerate(source.frames(skip=done), start=done):
            x, pad, _in, proc = self.p.prepare_image(frame, resolution, resample)
            z = encode_images(self.p.vae, x, 1, self.p.calls.encode).float().cpu().numpy()[0]
            if latents is None:
                latents = self.work.array("latents", (n, *z.shape))
                if "padding" not in self.work.state:
                    self.work.commit(padding=list(pad), processing_size=list(proc), latent_shape=list(z.shape))
            latents[k] = z
            if (k + 1) % 8 == 0 or k + 1 == n:
                latents.flush()
                self.work.commit(encoded=k + 1)
            bar.update(1)
        bar.close()
        shape = self.work.get("latent_shape")
        return latents if latents is not None else self.work.array("latents", (n, *shape))

    def noise(self, latent_shape) -> torch.Tensor:
        """The one noise latent ``[1, 4, h, w]`` every frame starts from."""
        gen = torch.Generator("cpu")
        if self.seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(self.seed))
        return torch.randn((1, *latent_shape), generator=gen, dtype=torch.float32)

    # -- 2. snippets ----------------------------------------------------------------------------------------
    def snippets(self, latents: np.ndarray, noise: torch.Tensor, dilation: int) -> tuple[np.ndarray, list]:
        s, p = self.settings, self.p
        n = latents.shape[0]
        idx = snippet_indices(n, s.snippet_length, dilation)
        ph, pw = self.work.get("padding")
        h, w = self.work.get("processing_size")
        out = self.work.array(f"snippets_d{dilation}", (len(idx), s.snippet_length, h, w))
        key = f"snippets_d{dilation}"
        done = int(self.work.get(key, 0))
        steps, per = s.steps, s.snippets_per_call
        bar = tqdm(total=len(idx), initial=done, desc=f"snippets d={dilation}", disable=self.quiet, leave=False)
        for start in range(done, len(idx), per):
            chunk = idx[start : start + per]
            rows = [f for snip in chunk for f in snip]
            cond = torch.as_tensor(np.asarray(latents[rows]), device=p.device, dtype=p.dtype)
            init = noise.to(p.device, p.dtype).expand(len(rows), -1, -1, -1)
            with snippet_frames(p.unet, s.snippet_length):
                z = denoise(p.calls.unet, p.scheduler, cond, init, self.text, steps, len(rows))
            decoded = decode_latents(p.vae, z, len(rows), _decode_mean, p.calls.decode)
            decoded = unpad(decoded, (ph, pw)).cpu().numpy()[:, 0]
            out[start : start + len(chunk)] = decoded.reshape(len(chunk), s.snippet_length, h, w)
            out.flush()
            self.work.commit(**{key: start + len(chunk)})
            bar.update(len(chunk))
        bar.close()
        return out, idx

    # -- 3. co-alignment ------------------------------------------------------------------------------------
    def coalign(self, snippets: list[np.ndarray], indices: list[list], n: int) -> Coalignment:
        saved = self.work.load_npz("coalign")
        k = len(snippets)
        if saved is not None:
            return Coalignment([saved[f"s{i}"] for i in range(k)], [saved[f"t{i}"] for i in range(k)],
                               float(saved["offset"]), saved["losses"].tolist())
        cfg = self.settings.coalign
        offset = float(min(np.min(s) for s in snippets))
        samples = [sample_pixels(s, cfg.factor, cfg.border) - offset for s in snippets]
        fit = fit_coalignment(samples, indices, n, offset, cfg, device=self.p.device, show_progress=self.show)
        self.work.save_npz("coalign", offset=np.float64(offset), losses=np.asarray(fit.losses),
                           **{f"s{i}": fit.scales[i] for i in range(k)}, **{f"t{i}": fit.shifts[i] for i in range(k)})
        return fit

    # -- 4. refinement --------------------------------------------------------------------------------------
    def refine(self, latents: np.ndarray, merged: np.ndarray, noise: torch.Tensor) -> np.ndarray:
        """The refined video ``[N, h, w]`` (VAE scale) from the co-aligned one."""
        p, s = self.p, self.settings
        n = merged.shape[0]
        lo, hi = float(merged.min()), float(merged.max())
        depth_lat = []
        for f in range(n):
            d = (torch.as_tensor(np.asarray(merged[f])) - lo) / max(hi - lo, 1e-12) * 2.0 - 1.0
            x = p.task.encode(d[None, None].to(p.device, p.dtype))
            x, _pad = pad_to_multiple(x, p.latent_stride)
            depth_lat.append(encode_images(p.vae, x, 1, p.calls.encode).float().cpu())
        lat = torch.cat(depth_lat)
        total = 2 * s.refine_steps
        p.scheduler.set_timesteps(total)
        timesteps = p.scheduler.timesteps[total // 2 :]
        lat = p.scheduler.add_noise(lat, noise.expand_as(lat), timesteps[:1].repeat(n))
        unet = as_unet_fn(p.calls.unet)
        cond_all = torch.as_tensor(np.asarray(latents))
        for i, t in enumerate(tqdm(timesteps, desc="refine", disable=self.quiet, leave=False)):
            dilation = refinement_dilation(i, len(timesteps), s.refine_start_dilation)
            idx = snippet_indices(n, s.refine_snippet_length, dilation)
            new, count = torch.zeros_like(lat), torch.zeros(n)
            for start in range(0, len(idx), s.snippets_per_call):
                rows = [f for snip in idx[start : start + s.snippets_per_call] for f in snip]
                cond = cond_all[rows].to(p.device, p.dtype)
                x = lat[rows].to(p.device, p.dtype)
                with snippet_frames(p.unet, s.refine_snippet_length):
                    pred = unet(torch.cat([cond, x], dim=1), t, self.text.expand(len(rows), -1, -1))
                step = p.scheduler.step(pred, t, x).prev_sample.float().cpu()
                new.index_add_(0, torch.as_tensor(rows), step)
                count.index_add_(0, torch.as_tensor(rows), torch.ones(len(rows)))
            lat = new / count[:, None, None, None]
        ph, pw = self.work.get("padding")
        out = []
        for f in range(n):
            z = lat[f : f + 1].to(p.device, p.dtype)
            out.append(unpad(decode_latents(p.vae, z, 1, _decode_mean, p.calls.decode), (ph, pw)).cpu().numpy()[0, 0])
        return np.stack(out)

    # -- all ------------------------------------------------------------------------------------------------
    def run(self, source: FrameSource, resolution: int, resample: str = "bilinear") -> np.ndarray:
        """The video ``[N, h, w]`` at the processing size, in the model's prediction space (not normalised),
        as a memory map in the work folder."""
        n = len(source)
        settings = self.settings = self.settings.for_frames(n)
        latents = self.encode(source, resolution, resample)
        noise = self.noise(latents.shape[1:])
        snippets, indices = [], []
        for d in settings.dilations:
            snip, idx = self.snippets(latents, noise, d)
            snippets.append(snip)
            indices.append(idx)
        fit = self.coalign(snippets, indices, n)
        h, w = self.work.get("processing_size")
        raw = self.work.array("raw", (n, h, w))
        if not self.work.get("merged"):
            merge_snippets(snippets, indices, fit, n, out=raw)
            raw.flush()
            self.work.commit(merged=True)
        if settings.refine_steps > 0 and not self.work.get("refined"):
            raw[:] = self.refine(latents, raw, noise)
            raw.flush()
            self.work.commit(refined=True)
        return raw


def settings_record(settings: RollingSettings) -> dict[str, Any]:
    """``settings`` as JSON-able values (the sidecar file, the work folder's hash)."""
    return asdict(settings)

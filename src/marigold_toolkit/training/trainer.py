"""The one Marigold trainer for every task: the :class:`~marigold_toolkit.tasks.base.Task` supplies the targets,
the codec, the loss mask, the end-to-end loss and the validation score.

Determinism and exact resume: every global micro-batch ``k`` is a pure function of ``(seed, k)`` — which dataset
and which samples (:class:`~marigold_toolkit.data.MixedMicroBatches`), their augmentations, the timesteps and the
noise. The only state is the UNet weights, Adam's moments, the LR schedule and the step counter, all saved in
each checkpoint. Process ``r`` of ``W`` handles the global micro-batches ``k = m * W + r``, so one optimizer step
consumes the same ``effective_batch_size`` samples whatever the number of processes. With
``data.cache_latents_mb`` the frozen-VAE latents come from a :class:`~.latent_cache.LatentCache`, which encodes one
row at a time and so keeps resuming exact.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from tqdm.auto import tqdm

from ..checkpoints.loading import MarigoldComponents, compute_empty_text_embedding
from ..checkpoints.model_index import MarigoldSpec
from ..checkpoints.resolve import resolve_checkpoint_path
from ..core.atomic import clean_stale_temporaries
from ..core.metrics import EmptyMaskError
from ..data import MicroBatchDataset, MixedMicroBatches, get_train_dataset
from ..pipeline.denoise import encode_images
from ..pipeline.predictor import Predictor
from ..tasks import TaskError, get_task
from .checkpoint import find_latest, load_trainer_state, mark_latest, prune, save_checkpoint
from .config import ConfigError, to_container
from .latent_cache import LatentCache
from .loss import latent_valid_mask, masked_latent_mse
from .noise import annealed_strength, multi_res_noise
from .schedule import make_lr_scheduler, make_training_scheduler
from .surgery import prepare_unet_for_task
from .targets import encode_targets

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot continue (e.g. a non-finite loss). The message names the step."""


def micro_batch_seed(seed: int, k: int) -> int:
    """A 63-bit seed for global micro-batch ``k`` (timesteps and noise are drawn from it)."""
    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class Trainer:
    """Fine-tune a UNet with the Marigold protocol. ``cfg`` comes from :func:`~.config.load_config`."""

    def __init__(self, cfg, accelerator=None):
        from accelerate import Accelerator
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

        self.cfg = cfg
        # several processes without CUDA (e.g. `accelerate launch --multi_gpu` on a CPU machine): DDP over gloo
        multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.acc = accelerator or Accelerator(mixed_precision=cfg.model.mixed_precision, cpu=multi_cpu)
        self.world, self.rank = self.acc.num_processes, self.acc.process_index
        o = cfg.optim
        self.accum_total = o.effective_batch_size // o.micro_batch_size
        if self.accum_total % self.world:
            raise ConfigError(f"effective_batch_size / micro_batch_size = {self.accum_total} micro-batches per step "
                              f"is not divisible by {self.world} processes")
        self.accum_local = self.accum_total // self.world
        self.out = Path(cfg.output_dir)
        self.ckpt_dir = self.out / "checkpoints"

        # data first: a missing dataset root is an error before any model is loaded
        self.train_sets, self.val_sets = self._build_datasets()
        self.sampler = MixedMicroBatches(self.train_sets, [float(d.prob) for d in cfg.data.train],
                                         o.micro_batch_size, cfg.seed, o.max_iter * self.accum_total)

        self.base_path = resolve_checkpoint_path(cfg.model.base, variant=cfg.model.variant)
        n_targets = len(cfg.targets)
        unet = UNet2DConditionModel.from_pretrained(self.base_path / "unet", use_safetensors=None)
        prepare_unet_for_task(unet, n_targets)
        if cfg.model.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        self.vae = AutoencoderKL.from_pretrained(self.base_path / "vae").requires_grad_(False).eval()
        self.text_embedding = compute_empty_text_embedding(self.base_path)
        self.train_scheduler = make_training_scheduler(self.base_path, v1_1=cfg.diffusion.version == "v1.1")
        # an e2e model is run in one step at t = 999, which trailing spacing gives for any schedule
        spacing = {"timestep_spacing": "trailing"} if cfg.diffusion.mode == "e2e" else {}
        self.inference_scheduler = DDIMScheduler.from_config(self.train_scheduler.config, **spacing)
        self.spec = self._spec()
        self.task = self.spec.task

        self.optimizer = torch.optim.Adam(unet.parameters(), lr=o.lr, betas=tuple(o.betas),
                                          weight_decay=o.weight_decay)
        ls = o.lr_scheduler
        self.lr_scheduler = make_lr_scheduler(self.optimizer, ls.total_iter, ls.final_ratio, ls.warmup_steps)
        self.start_step = 0
        latest = find_latest(self.ckpt_dir)
        if latest is not None:
            self._resume(unet, latest)
        self.unet, self.optimizer = self.acc.prepare(unet, self.optimizer)
        self.vae.to(self.acc.device)
        self.text_embedding = self.text_embedding.to(self.acc.device)
        self.latent_cache = None
        if cfg.data.cache_latents_mb > 0:
            self.latent_cache = LatentCache(lambda x: self.vae.encode(x).latent_dist.mode(),
                                            int(cfg.data.cache_latents_mb * 2**20))
        self._tb = None

    # -- construction ---------------------------------------------------------------------------------------
    def _build_datasets(self):
        def make(dcfg, augment):
            try:
                return get_train_dataset(dcfg.name, dcfg.root, split=dcfg.split, augment=augment,
                                         **dict(dcfg.kwargs or {}))
            except (KeyError, ValueError) as exc:
                raise ConfigError(f"data: {exc}") from None

        train = [make(d, self.cfg.data.augment) for d in self.cfg.data.train]
        val = [make(d, False) for d in self.cfg.data.val]
        for ds, d in zip(train, self.cfg.data.train):
            if len(ds) < self.cfg.optim.micro_batch_size:
                raise ConfigError(f"data.train '{d.name}' at {d.root} has {len(ds)} samples, fewer than one "
                                  f"micro-batch of {self.cfg.optim.micro_batch_size}")
        return train, val

    def _spec(self) -> MarigoldSpec:
        """What the saved checkpoints describe: the task (from the config's task, targets and pipeline section),
        the defaults and the inference scheduler."""
        pipeline = to_container(self.cfg.pipeline)
        e2e = self.cfg.diffusion.mode == "e2e"
        try:
            task = get_task(self.cfg.task).from_config(list(self.cfg.targets), pipeline)
        except TaskError as exc:
            raise ConfigError(str(exc)) from None
        wanted = pipeline.get("prediction_type")
        written = task.model_index_fields().get("prediction_type", (task.prediction_types or (None,))[0])
        if wanted is not None and wanted != written:
            raise ConfigError(f"pipeline.prediction_type {wanted!r}: task {task.name} predicts {written!r} "
                              f"(choices: {', '.join(task.prediction_types)})")
        return MarigoldSpec(
            path=self.base_path, source=str(self.cfg.model.base), task=task,
            # an end-to-end fine-tuned model is run as it was trained: one step from a zero latent
            default_denoising_steps=1 if e2e else pipeline["default_denoising_steps"],
            default_processing_resolution=pipeline["default_processing_resolution"],
            scheduler_class=type(self.inference_scheduler).__name__,
            initial_noise="zeros" if e2e else "gaussian",
        )

    def _resume(self, unet, folder: Path) -> None:
        state = load_trainer_state(folder)
        weights = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
        unet.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.start_step = int(state["step"])
        if int(state.get("effective_batch_size", self.cfg.optim.effective_batch_size)) != \
                self.cfg.optim.effective_batch_size:
            raise ConfigError(f"{folder}: saved with another effective batch size; cannot resume exactly")
        logger.info("resuming from %s at step %d", folder, self.start_step)

    # -- one micro-batch ------------------------------------------------------------------------------------
    @torch.no_grad()
    def _encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        dev = self.acc.device
        rgb = batch["rgb"].to(dev)
        if self.latent_cache is not None:
            rgb_latent = encode_images(self.vae, rgb, rgb.shape[0], encode_fn=self.latent_cache.encode)
        else:
            rgb_latent = self.vae.encode(rgb).latent_dist.mode() * self.vae.config.scaling_factor
        mask = batch.get("valid_mask")
        mask = mask.to(dev) if torch.is_tensor(mask) else None
        targets = self.task.training_targets(batch, mask, dev)
        target_latent = encode_targets(self.vae, self.task, targets,
                                       encode_fn=None if self.latent_cache is None else self.latent_cache.encode)
        latent_mask = None
        if self.cfg.use_mask and mask is not None and self.task.mask_latent_loss:
            latent_mask = latent_valid_mask(mask[:, :1] if mask.dim() == 4 else mask[:, None])
        return rgb_latent, target_latent, latent_mask

    def _diffusion_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        rgb_latent, target_latent, latent_mask = self._encode(batch)
        g = torch.Generator(device="cpu").manual_seed(micro_batch_seed(self.cfg.seed, batch["k"]))
        B = target_latent.shape[0]
        T = self.train_scheduler.config.num_train_timesteps
        t = torch.randint(0, T, (B,), generator=g)
        nc = self.cfg.diffusion.multi_res_noise
        if nc.enabled:
            strength = annealed_strength(t, T, nc.strength) if nc.annealed else nc.strength
            noise = multi_res_noise(target_latent.shape, strength, generator=g, downscale_strategy=nc.downscale_strategy)
        else:
            noise = torch.randn(target_latent.shape, generator=g)
        noise, t = noise.to(target_latent), t.to(target_latent.device)
        noisy = self.train_scheduler.add_noise(target_latent, noise, t)
        with self.acc.autocast():
            pred = self.unet(torch.cat([rgb_latent, noisy], dim=1), t,
                             encoder_hidden_states=self.text_embedding.expand(B, -1, -1)).sample
        ptype = self.train_scheduler.config.prediction_type
        target = (self.train_scheduler.get_velocity(target_latent, noise, t) if ptype == "v_prediction"
                  else noise if ptype == "epsilon" else target_latent)
        return masked_latent_mse(pred.float(), target.float(), latent_mask)

    def _e2e_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """One-step end-to-end fine-tuning (E2E-FT): fixed timestep, zero noise, task loss in pixel space."""
        rgb_latent, target_latent, _ = self._encode(batch)
        B, dev = rgb_latent.shape[0], rgb_latent.device
        t = torch.full((B,), int(self.cfg.diffusion.e2e_timestep), device=dev, dtype=torch.long)
        x_t = torch.zeros_like(target_latent)
        with self.acc.autocast():
            v = self.unet(torch.cat([rgb_latent, x_t], dim=1), t,
                          encoder_hidden_states=self.text_embedding.expand(B, -1, -1)).sample.float()
        a = self.train_scheduler.alphas_cumprod.to(dev)[t].view(B, 1, 1, 1)
        x0 = a.sqrt() * x_t - (1 - a).sqrt() * v
        n = len(self.cfg.targets)
        latents = x0.reshape(B * n, 4, *x0.shape[2:]) / self.vae.config.scaling_factor
        decoded = self.task.decode(self.vae.decode(latents).sample).reshape(B, n, -1, *batch["rgb"].shape[2:])
        return self.task.e2e_loss(decoded, batch, dev)

    def micro_batch_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return self._e2e_loss(batch) if self.cfg.diffusion.mode == "e2e" else self._diffusion_loss(batch)

    # -- loop -----------------------------------------------------------------------------------------------
    def _loader(self):
        k0 = self.start_step * self.accum_total
        ks = list(range(k0 + self.rank, self.cfg.optim.max_iter * self.accum_total, self.world))
        ds = MicroBatchDataset(self.train_sets, self.sampler)
        nw = int(self.cfg.data.num_workers)
        return torch.utils.data.DataLoader(ds, batch_size=None, sampler=ks, num_workers=nw,
                                           persistent_workers=nw > 0, prefetch_factor=2 if nw > 0 else None)

    def _log(self, step: int, values: dict[str, float]) -> None:
        if not self.acc.is_main_process:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.cfg.logging.tensorboard:
            if self._tb is None:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    try:
                        from tensorboardX import SummaryWriter
                    except ImportError:
                        logger.warning("TensorBoard logging needs `tensorboard` or `tensorboardX`; logging to "
                                       "metrics.jsonl only")
                        self.cfg.logging.tensorboard = False
                        return
                self._tb = SummaryWriter(str(self.out / "tensorboard"))
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def save(self, step: int) -> Path | None:
        self.acc.wait_for_everyone()
        folder = None
        if self.acc.is_main_process:
            folder = self.ckpt_dir / f"step-{step:06d}"
            state = {"step": step, "optimizer": self.optimizer.state_dict(),
                     "lr_scheduler": self.lr_scheduler.state_dict(),
                     "effective_batch_size": int(self.cfg.optim.effective_batch_size),
                     "world_size": int(self.world),
                     "seed": int(self.cfg.seed)}
            save_checkpoint(folder, self.acc.unwrap_model(self.unet), self.base_path, self.spec,
                            self.inference_scheduler, state)
            mark_latest(self.ckpt_dir, folder)
            bp = self.cfg.checkpoint.backup_period
            keep = {folder.name} | {p.name for p in self.ckpt_dir.glob("step-*")
                                    if bp and int(p.name.split("-")[1]) % bp == 0}
            prune(self.ckpt_dir, self.cfg.checkpoint.keep_last, keep)
        self.acc.wait_for_everyone()
        return folder

    def train(self) -> dict[str, Any]:
        """Run until ``optim.max_iter`` optimizer steps; returns a summary."""
        cfg = self.cfg
        if self.acc.is_main_process:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            clean_stale_temporaries(self.ckpt_dir)
            (self.out / "config.yaml").write_text(_yaml(cfg))
        max_iter = cfg.optim.max_iter
        step = self.start_step
        bar = tqdm(total=max_iter, initial=step, desc="train", disable=None if self.acc.is_main_process else True)
        loader = iter(self._loader())
        self.unet.train()
        t0, losses, last_val = time.perf_counter(), [], {}
        while step < max_iter:
            step_loss = 0.0
            for a in range(self.accum_local):
                batch = next(loader)
                if batch["size"] == 0:  # every sample of this micro-batch was corrupt (logged by the loader)
                    continue
                sync = a == self.accum_local - 1
                ctx = self.acc.no_sync(self.unet) if not sync else contextlib.nullcontext()
                with ctx:
                    loss = self.micro_batch_loss(batch)
                    if not torch.isfinite(loss):
                        last = find_latest(self.ckpt_dir)
                        raise TrainingError(
                            f"non-finite loss ({loss.item()}) at step {step + 1} (micro-batch {batch['k']}); "
                            f"stopped without saving; last good checkpoint: {last or 'none'}")
                    self.acc.backward(loss / self.accum_local)
                step_loss += loss.detach().item() / self.accum_local
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(step_loss)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}")
            if step % cfg.logging.period == 0 or step == max_iter:
                values = {"train/loss": float(np.mean(losses[-cfg.logging.period:])),
                          "train/lr": self.lr_scheduler.get_last_lr()[0]}
                if self.latent_cache is not None:
                    values.update({f"train/{k}": v for k, v in self.latent_cache.stats().items()})
                self._log(step, values)
            if cfg.validation.period and (step % cfg.validation.period == 0 or step == max_iter) and self.val_sets:
                last_val = self.validate(step)
            if step % cfg.checkpoint.period == 0 or step == max_iter:
                self.save(step)
        bar.close()
        return {"steps": step, "final_loss": losses[-1] if losses else None, "losses": losses,
                "validation": last_val, "seconds": time.perf_counter() - t0,
                "checkpoint": str(find_latest(self.ckpt_dir))}

    # -- validation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, step: int) -> dict[str, float]:
        """Predict the validation sets with the inference core and score them with the task's metrics."""
        if not self.acc.is_main_process:
            self.acc.wait_for_everyone()
            return {}
        unet = self.acc.unwrap_model(self.unet)
        unet.eval()
        comps = MarigoldComponents(self.spec, unet, self.vae, self.inference_scheduler, self.text_embedding,
                                   torch.float32, self.acc.device)
        predictor = Predictor(comps)
        v = self.cfg.validation
        results: dict[str, float] = {}
        for dcfg, ds in zip(self.cfg.data.val, self.val_sets):
            scores = []
            n = len(ds) if v.max_samples is None else min(len(ds), v.max_samples)
            for i in range(n):
                sample = ds.load(i, np.random.default_rng(0))
                rgb = ((sample["rgb"].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
                out = predictor.predict(rgb, num_inference_steps=v.num_inference_steps, ensemble_size=v.ensemble_size,
                                        processing_resolution=v.processing_resolution, seed=v.seed + i)
                try:
                    scores.append(self.task.validation_score(out.targets, sample))
                except EmptyMaskError:
                    continue
            if scores:
                results[f"val/{dcfg.name}/{self.task.validation_metric}"] = float(np.mean(scores))
        unet.train()
        self._log(step, results)
        self.acc.wait_for_everyone()
        return results


def _yaml(cfg) -> str:
    return OmegaConf.to_yaml(cfg)

"""Learning-rate schedule and training noise scheduler of the Marigold fine-tuning protocol.

* :class:`IterExponential` is the LR multiplier of Marigold's ``src/util/lr_scheduler.py``: linear warm-up
  ``it / warmup_steps`` for ``it < warmup_steps`` (so **0 at it = 0**, as in the authors' code), then
  ``exp((it - warmup) / (total - warmup) * ln(final_ratio))`` until ``total_iter``, then ``final_ratio``.
  It is evaluated afresh at every step (no accumulated rounding). ``it`` counts optimizer steps.
* :func:`make_training_scheduler` builds the DDPM scheduler used for ``add_noise`` / ``get_velocity``.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


class IterExponential:
    """LR multiplier for ``torch.optim.lr_scheduler.LambdaLR`` (picklable, so optimizer state can be saved).

    Args:
        total_iter: iteration at which the multiplier reaches ``final_ratio`` (25 000 in the Marigold configs,
            45 000 for IID-lighting); afterwards it stays at ``final_ratio``.
        final_ratio: multiplier at and after ``total_iter`` (0.01).
        warmup_steps: length of the linear warm-up (100); 0 disables it.
    """

    def __init__(self, total_iter: int, final_ratio: float = 0.01, warmup_steps: int = 100):
        if warmup_steps < 0 or total_iter <= warmup_steps:
            raise ValueError(
                f"need 0 <= warmup_steps < total_iter, got warmup {warmup_steps}, total {total_iter}"
            )
        if not 0.0 < final_ratio:
            raise ValueError(f"final_ratio must be positive, got {final_ratio}")
        self.total_iter = int(total_iter)
        self.final_ratio = float(final_ratio)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, it: int) -> float:
        if it < self.warmup_steps:
            return it / self.warmup_steps
        if it >= self.total_iter:
            return self.final_ratio
        progress = (it - self.warmup_steps) / (self.total_iter - self.warmup_steps)
        return math.exp(progress * math.log(self.final_ratio))

    def __repr__(self) -> str:
        return (f"IterExponential(total_iter={self.total_iter}, final_ratio={self.final_ratio}, "
                f"warmup_steps={self.warmup_steps})")


def make_lr_scheduler(
    optimizer: torch.optim.Optimizer, total_iter: int, final_ratio: float = 0.01, warmup_steps: int = 100
) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR(optimizer, IterExponential(total_iter, final_ratio, warmup_steps))``.

    Call ``scheduler.step()`` once per optimizer step (every ``accumulation_steps`` micro-batches). Note that,
    as in the authors' code, the very first optimizer step runs with LR 0 when ``warmup_steps > 0``.
    """
    lr_lambda = IterExponential(total_iter, final_ratio, warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def _scheduler_config(config_or_path: Any) -> dict:
    if hasattr(config_or_path, "config") and not isinstance(config_or_path, (str, Path, Mapping)):
        return dict(config_or_path.config)  # a scheduler instance
    if isinstance(config_or_path, Mapping):
        return dict(config_or_path)
    path = Path(config_or_path)
    candidates = [path, path / "scheduler_config.json", path / "scheduler" / "scheduler_config.json"]
    for cand in candidates:
        if cand.is_file():
            return json.loads(cand.read_text(encoding="utf-8"))
    raise FileNotFoundError(f"no scheduler_config.json at {path} (tried {[str(c) for c in candidates]})")


def make_training_scheduler(config_or_path: Any, v1_1: bool = True):
    """The DDPM scheduler for training, from a base/Marigold checkpoint's scheduler config.

    Args:
        config_or_path: a scheduler instance, a config mapping, a checkpoint folder (``<dir>/scheduler/``), a
            scheduler folder or a ``scheduler_config.json`` file. Its ``_class_name`` may be anything (SD2
            ships a DDIM config); only the fields ``DDPMScheduler`` accepts (betas, ``prediction_type``, ...)
            are used, the others (e.g. DDIM's ``set_alpha_to_one``) are dropped silently.
        v1_1: ``True`` (Marigold v1.1): ``rescale_betas_zero_snr=True, timestep_spacing="trailing"``.
            ``False`` (v1.0): ``rescale_betas_zero_snr=False, timestep_spacing="leading"`` -- forced
            explicitly, so a v1.1 checkpoint's config does not leak zero-SNR into a v1.0 run (the authors
            loaded the plain SD2 config, which has neither field, i.e. these diffusers defaults).

    Returns:
        ``diffusers.DDPMScheduler``. ``timestep_spacing`` matters only for ``set_timesteps`` (validation);
        zero-SNR changes ``alphas_cumprod`` (``alphas_cumprod[-1] == 0``), hence
        ``add_noise``/``get_velocity``.
    """
    from diffusers import DDPMScheduler

    accepted = set(inspect.signature(DDPMScheduler.__init__).parameters) - {"self"}
    config = {k: v for k, v in _scheduler_config(config_or_path).items() if k in accepted}
    if v1_1:
        overrides = dict(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    else:
        overrides = dict(rescale_betas_zero_snr=False, timestep_spacing="leading")
    return DDPMScheduler.from_config({**config, **overrides})


__all__ = ["IterExponential", "make_lr_scheduler", "make_training_scheduler"]

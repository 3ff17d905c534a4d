"""Marigold fine-tuning: the trainer and its building blocks.

* :mod:`.surgery`: SD2 UNet -> Marigold UNet (``conv_in``/``conv_out`` expansion).
* :mod:`.noise`: annealed multi-resolution noise.
* :mod:`.schedule`: LR schedule (``IterExponential``) and the training DDPM scheduler.
* :mod:`.loss`: latent validity mask, masked latent MSE, v-prediction target.
* :mod:`.targets`: target encoding through the VAE (each task's targets in prediction units come from
  :meth:`~marigold_toolkit.tasks.base.Task.training_targets`, e.g. the depth normalisation
  :func:`~marigold_toolkit.tasks.depth.normalize_depth`).
* :mod:`.trainer`, :mod:`.checkpoint`, :mod:`.config`: the trainer, its checkpoints and its configuration.
"""

from __future__ import annotations

from .loss import latent_valid_mask, masked_latent_mse, v_prediction_target
from .noise import DOWNSCALE_STRATEGIES, annealed_strength, multi_res_noise
from .schedule import IterExponential, make_lr_scheduler, make_training_scheduler
from .surgery import LATENT_CHANNELS, expand_conv_in, expand_conv_out, prepare_unet_for_task
from .targets import encode_targets

__all__ = [
    "LATENT_CHANNELS", "expand_conv_in", "expand_conv_out", "prepare_unet_for_task",
    "DOWNSCALE_STRATEGIES", "annealed_strength", "multi_res_noise",
    "IterExponential", "make_lr_scheduler", "make_training_scheduler",
    "latent_valid_mask", "masked_latent_mse", "v_prediction_target",
    "encode_targets",
]

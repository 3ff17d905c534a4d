"""Training building blocks for Marigold fine-tuning (no trainer loop, datasets or CLI here).

* :mod:`.surgery`: SD2 UNet -> Marigold UNet (``conv_in``/``conv_out`` expansion).
* :mod:`.noise`: annealed multi-resolution noise.
* :mod:`.schedule`: LR schedule (``IterExponential``) and the training DDPM scheduler.
* :mod:`.loss`: latent validity mask, masked latent MSE, v-prediction target.
* :mod:`.targets`: depth normalisation, target encoding through the VAE, flip augmentation.

The empty-prompt embedding is :func:`marigold_toolkit.models.loading.compute_empty_text_embedding`,
re-exported.
"""

from __future__ import annotations

from ..models.loading import compute_empty_text_embedding
from .loss import latent_valid_mask, masked_latent_mse, v_prediction_target
from .noise import DOWNSCALE_STRATEGIES, annealed_strength, multi_res_noise
from .schedule import IterExponential, make_lr_scheduler, make_training_scheduler
from .surgery import LATENT_CHANNELS, expand_conv_in, expand_conv_out, prepare_unet_for_task
from .targets import encode_targets, normalize_depth

__all__ = [
    "compute_empty_text_embedding",
    "LATENT_CHANNELS", "expand_conv_in", "expand_conv_out", "prepare_unet_for_task",
    "DOWNSCALE_STRATEGIES", "annealed_strength", "multi_res_noise",
    "IterExponential", "make_lr_scheduler", "make_training_scheduler",
    "latent_valid_mask", "masked_latent_mse", "v_prediction_target",
    "normalize_depth", "encode_targets",
]

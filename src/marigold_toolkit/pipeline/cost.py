"""What an inference costs before running it: FLOP counts of the model calls, on meta tensors.

The UNet and the VAE are built from the checkpoint's configs on the ``meta`` device (no weights are read, nothing
is computed) and run under :class:`torch.utils.flop_counter.FlopCounterMode`, which counts 2 FLOPs per
multiply-add of every convolution and matrix product; attention is counted as its two matrix products (on meta
tensors SDPA runs its math decomposition, which the counter sees; a real CPU run through the fused flash kernel
would count it as 0). The benchmarks use it for their ``TFLOP/img``
column (how close a measured latency is to the machine's compute floor) and to state the cost of inputs too large
to run on a small machine (a 4000x3000 photo at native resolution).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoints.loading import enable_vae_tiling, vae_stride
from ..checkpoints.resolve import resolve_checkpoint_path
from ..core.image import processing_size

#: tokens of the empty-prompt embedding the UNet cross-attends to (BOS, EOS; unpadded, as diffusers' pipelines)
EMPTY_PROMPT_TOKENS = 2


@dataclass(frozen=True)
class InferenceCost:
    """TFLOP of one image's model calls (``processing_size`` is the padded size the models see, ``H x W``).

    ``total = encode + calls_unet * unet_call + calls_decode * decode_call``.
    """

    processing_size: tuple[int, int]
    encode: float
    unet_call: float
    decode_call: float
    calls_unet: int
    calls_decode: int

    @property
    def total(self) -> float:
        return self.encode + self.calls_unet * self.unet_call + self.calls_decode * self.decode_call


def _meta_models(checkpoint: str | Path):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = resolve_checkpoint_path(str(checkpoint))
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))
    return unet, vae


def _tflop(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e12


def inference_cost(
    checkpoint: str | Path,
    image_size: tuple[int, int],
    processing_resolution: int,
    num_inference_steps: int = 1,
    ensemble_size: int = 1,
    vae_tiling: bool = False,
    vae_tile_size: int | None = None,
) -> InferenceCost:
    """FLOPs of predicting one ``image_size = (H, W)`` image with a checkpoint (local folder or registry alias).

    One VAE encode, ``ensemble_size x num_inference_steps`` UNet calls and ``ensemble_size x targets`` VAE decodes,
    at the size the predictor processes (long edge ``processing_resolution``, 0 = native; padded to the latent
    stride). With ``vae_tiling`` the VAE is counted tile by tile as diffusers runs it (overlaps included).
    """
    unet, vae = _meta_models(checkpoint)
    if vae_tiling:
        enable_vae_tiling(vae, vae_tile_size)
    stride = vae_stride(vae)
    ph, pw = processing_size(int(image_size[0]), int(image_size[1]), int(processing_resolution))
    h, w = -(-ph // stride), -(-pw // stride)
    targets = unet.config.out_channels // vae.config.latent_channels
    latent = torch.empty(1, vae.config.latent_channels, h, w, device="meta")
    encode = _tflop(lambda: vae.encode(torch.empty(1, 3, h * stride, w * stride, device="meta")))
    decode = _tflop(lambda: vae.decode(latent))
    unet_call = _tflop(lambda: unet(
        torch.empty(1, unet.config.in_channels, h, w, device="meta"), 999,
        encoder_hidden_states=torch.empty(1, EMPTY_PROMPT_TOKENS, unet.config.cross_attention_dim, device="meta")))
    return InferenceCost((h * stride, w * stride), encode, unet_call, decode,
                         ensemble_size * num_inference_steps, ensemble_size * targets)

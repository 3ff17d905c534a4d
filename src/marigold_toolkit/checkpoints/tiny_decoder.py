"""Tiny decoders: a diffusers ``AutoencoderTiny`` (TAESD layout) that decodes a checkpoint's latents in place of
its full VAE decoder.

The VAE decoder is most of a one-step prediction's work (56 % at ensemble 1, 72 % at ensemble 10 for the SD2
architecture). A tiny decoder maps the same latents to the same kind of image at a fraction of the cost:
``madebyollin/taesd`` (the SD1/SD2 latent space, trained on photos), or one distilled for a checkpoint's own task
by ``marigold distill-decoder`` (:mod:`marigold_toolkit.training.distill_decoder`), which can be far smaller
because depth and normal maps are simpler than photos.

Folder layout (diffusers' ``AutoencoderTiny``): ``config.json`` + ``diffusion_pytorch_model.safetensors``; a
distilled decoder also carries :data:`REPORT` (teacher, data, its measured deviation from the full decoder). A
checkpoint may bundle one in its ``tiny_decoder/`` subfolder (:data:`BUNDLED`; the demo models do), selected
with ``decoder="bundled"``. Only the decoder half is used: a distilled decoder's encoder is a zero placeholder
that keeps the folder loadable by ``AutoencoderTiny.from_pretrained``.

Latent convention: TAESD-style decoders take latents *scaled* by the teacher VAE's ``scaling_factor`` (what
the denoiser produces) divided by their own ``scaling_factor`` (1.0 for TAESD and for ours), as diffusers'
pipelines feed a swapped-in ``AutoencoderTiny``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from ..core.atomic import atomic_folder
from .resolve import CheckpointError, resolve_checkpoint_path

logger = logging.getLogger(__name__)

#: a checkpoint's own tiny decoder: ``<checkpoint>/tiny_decoder/``
BUNDLED_FOLDER = "tiny_decoder"
#: the ``decoder`` value that selects it
BUNDLED = "bundled"
#: a distilled decoder's provenance and measured deviation, next to its config
REPORT = "distill_report.json"


def tiny_decoder_folder(source: str | Path, checkpoint_path: Path | None = None) -> Path:
    """The local folder of ``source``: ``"bundled"`` (the checkpoint's ``tiny_decoder/``), a folder, or a hub id
    from the local cache (e.g. ``madebyollin/taesd``).

    Raises:
        CheckpointError: nothing there, or (``"bundled"``) the checkpoint ships no tiny decoder.
    """
    if str(source) == BUNDLED:
        folder = Path(checkpoint_path or ".") / BUNDLED_FOLDER
        if checkpoint_path is None or not (folder / "config.json").is_file():
            raise CheckpointError(f"decoder 'bundled': checkpoint {checkpoint_path} bundles no tiny decoder (no "
                                  f"{BUNDLED_FOLDER}/ folder); distill one with `marigold distill-decoder` and pass "
                                  "its folder")
        return folder
    try:
        return resolve_checkpoint_path(str(source))
    except CheckpointError as exc:
        raise CheckpointError(f"decoder {source}: {exc}") from exc


def load_tiny_decoder(source: str | Path, checkpoint_path: Path | None = None, latent_channels: int = 4,
                      stride: int = 8, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu"):
    """Load an ``AutoencoderTiny`` to decode a checkpoint's latents (safetensors weights only).

    Args:
        source: as :func:`tiny_decoder_folder`.
        latent_channels, stride: the checkpoint VAE's latent channels and spatial stride; the decoder must match.

    Returns:
        The ``AutoencoderTiny`` (eval mode, no gradients) on ``device`` in ``dtype``.

    Raises:
        CheckpointError: not an ``AutoencoderTiny`` folder, no safetensors weights, or a decoder for a different
            latent space (channels or stride).
    """
    from diffusers import AutoencoderTiny

    folder = tiny_decoder_folder(source, checkpoint_path)
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"decoder {source}: cannot read {config_path} ({exc})") from exc
    if config.get("_class_name") != "AutoencoderTiny":
        raise CheckpointError(f"decoder {source}: {config_path} describes a {config.get('_class_name')!r}, not an "
                              "AutoencoderTiny (diffusers' TAESD layout)")
    if not any(folder.glob("*.safetensors")):
        raise CheckpointError(f"decoder {source}: {folder} has no .safetensors weights (only safetensors are loaded)")
    channels = int(config.get("latent_channels", 4))
    levels = len(config.get("decoder_block_out_channels", (64, 64, 64, 64)))
    up = int(config.get("upsampling_scaling_factor", 2)) ** (levels - 1)
    if channels != latent_channels or up != stride:
        raise CheckpointError(f"decoder {source}: decodes {channels}-channel latents {up}x up, but the checkpoint's "
                              f"VAE has {latent_channels} channels at stride {stride}")
    try:
        tiny = AutoencoderTiny.from_pretrained(folder, torch_dtype=dtype, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"decoder {source}: cannot load {folder} ({exc})") from exc
    tiny.requires_grad_(False).eval().to(device)
    logger.info("decoding with tiny decoder %s (%d parameters in its decoder)", folder,
                sum(p.numel() for p in tiny.decoder.parameters()))
    return tiny


def read_report(folder: str | Path) -> dict | None:
    """A distilled decoder's :data:`REPORT`, or ``None`` (TAESD and other foreign decoders have none)."""
    path = Path(folder) / REPORT
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tiny_decode_fn(tiny, vae_scaling_factor: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A :data:`~marigold_toolkit.pipeline.denoise.VaeFn` with the full decoder's call convention: unscaled
    latents ``[R, C, h, w]`` -> image ``[R, 3, stride*h, stride*w]`` in about [-1, 1]."""
    factor = float(vae_scaling_factor) / float(getattr(tiny.config, "scaling_factor", 1.0) or 1.0)
    return lambda z: tiny.decode(z * factor).sample


def new_tiny_decoder(latent_channels: int = 4, width: int = 64, blocks: tuple[int, ...] = (3, 3, 3, 1),
                     out_channels: int = 3):
    """A fresh ``AutoencoderTiny`` whose decoder has ``width`` channels at every level (diffusers' ``DecoderTiny``
    keeps one width throughout) and ``blocks`` residual blocks per level, with ``len(blocks) - 1`` 2x upsamplings
    (4 levels = stride 8): ``width=64, blocks=(3, 3, 3, 1)`` is TAESD's decoder. Its encoder is the smallest legal
    one, zeroed: a placeholder (decoding only)."""
    from diffusers import AutoencoderTiny

    if int(width) < 1 or not blocks or min(int(b) for b in blocks) < 0:
        raise ValueError(f"tiny decoder: width {width} must be >= 1 and blocks {tuple(blocks)} non-empty, >= 0")
    levels = len(blocks)
    tiny = AutoencoderTiny(latent_channels=latent_channels, out_channels=out_channels,
                           encoder_block_out_channels=(1,) * levels, num_encoder_blocks=(1,) * levels,
                           decoder_block_out_channels=(int(width),) * levels,
                           num_decoder_blocks=tuple(int(b) for b in blocks))
    with torch.no_grad():
        for p in tiny.encoder.parameters():
            p.zero_()
    return tiny


def save_tiny_decoder(tiny, folder: str | Path, report: dict | None = None) -> Path:
    """Write ``tiny`` in diffusers' ``AutoencoderTiny`` layout (safetensors) with ``report`` as :data:`REPORT`,
    atomically: the folder appears complete or not at all (an existing one is replaced)."""
    with atomic_folder(folder) as tmp:
        tiny.save_pretrained(tmp, safe_serialization=True)
        if report is not None:
            (Path(tmp) / REPORT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return Path(folder)

"""Pretrain a small Stable-Diffusion-layout generative base from images (``marigold pretrain-base CONFIG``).

This is what makes the bundled demo models possible without the hub: a small text-to-image model in exactly
the SD2 checkpoint layout (``model_index.json`` of a ``StableDiffusionPipeline``; ``vae/``, ``unet/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``) that :class:`~marigold_toolkit.training.trainer.Trainer`
then fine-tunes with the Marigold protocol, as it would Stable Diffusion 2. Two stages on the images under
``data.root`` (any folder of images, e.g. the ``rgb/`` of ``marigold synth``):

1. **VAE** (``AutoencoderKL``): reconstruction L1 + ``kl_weight`` * KL, horizontal flips, random crops.
   Optionally also on dense maps (``data.vae_maps``): Stable Diffusion's VAE, trained on billions of images,
   encodes depth and normal maps it never saw almost losslessly; a small VAE trained briefly does not (see
   docs/demo-models.md), so the demo recipe shows it the maps too. Afterwards the latent ``scaling_factor`` is set to ``1 / std`` of the image latents (as Stable
   Diffusion did).
2. **UNet** (``UNet2DConditionModel``, 4 latent channels): the SD2 objective — v-prediction DDPM on the scaled
   latents, uniform timesteps, conditioned on the empty-prompt embedding of a (random, frozen) CLIP text
   encoder. Marigold conditions on the empty prompt only, so the text encoder never needs training.
   ``unet.steps: 0`` keeps the UNet at its random initialisation: the "no generative prior" ablation.

Both stages are deterministic given ``seed`` (on one machine/threads setting). Small by design: this is a
demonstration of the protocol on a CPU, not a replacement for Stable Diffusion.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..checkpoints.loading import encode_empty_prompt
from ..checkpoints.sd2 import SD2_SCHEDULER_CONFIG, finish_tokenizer_folder, write_tokenizer_vocab
from ..io.images import is_image_path, load_image
from ..training.config import ConfigError, load_structured

logger = logging.getLogger(__name__)


@dataclass
class VAEArch:
    block_out_channels: list = field(default_factory=lambda: [32, 64, 64, 64])
    layers_per_block: int = 1
    norm_num_groups: int = 16
    latent_channels: int = 4


@dataclass
class UNetArch:
    block_out_channels: list = field(default_factory=lambda: [64, 128, 128])
    layers_per_block: int = 1
    attention_head_dim: list = field(default_factory=lambda: [2, 4, 4])
    norm_num_groups: int = 32
    cross_attention_dim: int = 64


@dataclass
class TextArch:
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4


@dataclass
class StageConfig:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1.0e-3
    warmup_steps: int = 50
    kl_weight: float = 1.0e-6  # VAE only
    crop: Optional[list] = None  # VAE only: train on random [h, w] crops (it is fully convolutional but its
    #                              mid-block attention; crops cut the cost per step)
    # VAE only: relative sampling weight of each source, the images first, then each data.vae_maps folder in order
    # (e.g. [1, 1, 1]: a third of every batch each); default: uniform over all rows of all sources
    source_weights: Optional[list] = None


@dataclass
class PretrainData:
    root: str = "data/train/rgb"
    extra_roots: list = field(default_factory=list)  # more image folders (same size as root's), e.g. image-only renders
    resize: Optional[list] = None  # [H, W]; default: native size (all images must share one size)
    max_images: Optional[int] = None
    # extra VAE-only training maps: folders of float .npy depth ([H, W]) or normals ([H, W, 3]) maps, shown to
    # the autoencoder as images (see :func:`load_maps`); the UNet and the latent scale see only the images
    vae_maps: list = field(default_factory=list)


@dataclass
class PretrainConfig:
    base_config: Optional[str] = None
    seed: int = 0
    output_dir: str = "runs/base"
    threads: Optional[int] = None
    data: PretrainData = field(default_factory=PretrainData)
    vae_arch: VAEArch = field(default_factory=VAEArch)
    unet_arch: UNetArch = field(default_factory=UNetArch)
    text_arch: TextArch = field(default_factory=TextArch)
    vae: StageConfig = field(default_factory=StageConfig)
    unet: StageConfig = field(default_factory=lambda: StageConfig(steps=2000, batch_size=16, lr=3.0e-4))
    # reuse the VAE (and text encoder/tokenizer) of an existing base: skip stage 1 (the ablation shares it)
    vae_from: Optional[str] = None
    log_period: int = 50


def load_pretrain_config(path: str | Path, overrides: list[str] | None = None):
    cfg = load_structured(path, PretrainConfig, overrides)
    if cfg.text_arch.hidden_size != cfg.unet_arch.cross_attention_dim:
        raise ConfigError(f"{path}: text_arch.hidden_size must equal unet_arch.cross_attention_dim")
    for name in ("vae", "unet"):
        st = cfg[name]
        if st.steps < 0 or st.batch_size < 1 or st.lr <= 0:
            raise ConfigError(f"{path}: {name}.steps must be >= 0, {name}.batch_size >= 1, {name}.lr > 0")
    return cfg


# ---- data ----------------------------------------------------------------------------------------------------
def load_images(root: str | Path, resize=None, max_images: int | None = None) -> torch.Tensor:
    """All images under ``root`` (sorted, recursive) -> float32 ``[N, 3, H, W]`` in [-1, 1]."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if is_image_path(p))
    if max_images:
        files = files[: int(max_images)]
    if not files:
        raise ConfigError(f"data.root {root}: no images found")
    arrays = []
    for f in files:
        img = load_image(f)
        if resize:
            img = np.asarray(Image.fromarray(img).resize((int(resize[1]), int(resize[0])), Image.BICUBIC))
        if arrays and img.shape != arrays[0].shape:
            raise ConfigError(f"{f}: size {img.shape[:2]} differs from {arrays[0].shape[:2]}; set data.resize")
        if img.dtype == np.uint8:
            img = img.astype(np.float32) / 255.0
        elif img.dtype == np.uint16:
            img = img.astype(np.float32) / 65535.0
        arrays.append(img.astype(np.float32))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) * 2.0 - 1.0
    return x.contiguous()


def load_maps(folder: str | Path, max_maps: int | None = None) -> torch.Tensor:
    """Dense maps as autoencoder training images, float32 ``[N, 3, H, W]`` in [-1, 1]: depth ``[H, W]`` is
    normalised per map as the Marigold depth codec does (2nd / 98th percentile of the valid, > 0, pixels to
    -1 / 1, clipped; invalid pixels = 1, far) and repeated to 3 channels; normals ``[H, W, 3]`` are used as they
    are (unit vectors, 0 = invalid)."""
    return _read_maps(folder, max_maps)[0]


def _read_maps(folder: str | Path, max_maps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`load_maps` and, per row, whether it is a normal map (bool ``[N]``: mirroring negates its x)."""
    files = sorted(Path(folder).glob("*.npy"))[: max_maps or None]
    if not files:
        raise ConfigError(f"data.vae_maps {folder}: no .npy maps found")
    out, normals = [], []
    for f in files:
        m = np.load(f, allow_pickle=False).astype(np.float32)
        normals.append(m.ndim == 3)
        if m.ndim == 2:
            valid = np.isfinite(m) & (m > 0)
            lo, hi = (np.percentile(m[valid], [2, 98]) if valid.any() else (0.0, 1.0))
            m = np.where(valid, np.clip((m - lo) / max(hi - lo, 1e-6), 0, 1) * 2 - 1, 1.0)
            m = np.repeat(m[..., None], 3, -1)
        elif m.ndim != 3 or m.shape[-1] != 3:
            raise ConfigError(f"{f}: expected a [H, W] depth or [H, W, 3] normals map, got shape {m.shape}")
        out.append(np.clip(np.nan_to_num(m), -1, 1).astype(np.float32))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous(), torch.tensor(normals)


def _flip(x: torch.Tensor, gen: torch.Generator, normals: torch.Tensor | None = None) -> torch.Tensor:
    """Mirror a random half of the rows of ``x [N, 3, H, W]`` left-right; rows flagged in ``normals [N]`` (bool) are
    normal maps, whose x component changes sign with the mirror."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    out = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if normals is not None:
        sign = torch.ones_like(out[:, :1, :1, :1]).repeat(1, 3, 1, 1)
        sign[flip & normals, 0] = -1.0
        out = out * sign
    return out


def sample_rows(sizes, weights, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` row indices into the concatenation of sources of ``sizes`` rows: uniform over all rows when ``weights``
    is ``None``, else a source drawn by its weight for each index, then a row of it uniformly.

    >>> g = torch.Generator().manual_seed(0)
    >>> idx = sample_rows([3, 2, 5], [0, 1, 0], 6, g)
    >>> bool(((idx >= 3) & (idx < 5)).all())
    True
    """
    total = int(sum(sizes))
    if weights is None:
        return torch.randint(total, (n,), generator=gen)
    if len(weights) != len(sizes) or min(weights) < 0 or sum(weights) <= 0:
        raise ConfigError(f"vae.source_weights {list(weights)}: give one weight >= 0 per source ({len(sizes)}: the "
                          "images, then each data.vae_maps folder), not all 0")
    sizes_t = torch.tensor([int(v) for v in sizes])
    starts = torch.cumsum(sizes_t, 0) - sizes_t
    src = torch.multinomial(torch.tensor([float(w) for w in weights]), n, replacement=True, generator=gen)
    return starts[src] + (torch.rand(n, generator=gen) * sizes_t[src]).long().clamp(max=sizes_t[src] - 1)


def _random_crop(x: torch.Tensor, crop, gen: torch.Generator) -> torch.Tensor:
    """One random ``crop = [h, w]`` window per image (``None``: ``x`` unchanged)."""
    if not crop:
        return x
    h, w = int(crop[0]), int(crop[1])
    H, W = x.shape[-2:]
    if h > H or w > W:
        raise ConfigError(f"vae.crop {h}x{w} is larger than the images ({H}x{W})")
    ys = torch.randint(0, H - h + 1, (len(x),), generator=gen).tolist()
    xs = torch.randint(0, W - w + 1, (len(x),), generator=gen).tolist()
    return torch.stack([img[:, y:y + h, x0:x0 + w] for img, y, x0 in zip(x, ys, xs)])


def _lr_schedule(st):
    """Linear warm-up over ``warmup_steps``, then cosine decay to 5 % of ``lr`` at ``steps``."""
    def lr_at(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, st.warmup_steps))
        cos = 0.5 * (1.0 + math.cos(math.pi * min(step, st.steps) / max(1, st.steps)))
        return st.lr * warm * (0.05 + 0.95 * cos)
    return lr_at


# ---- model construction --------------------------------------------------------------------------------------
def build_modules(cfg, seed: int):
    """Fresh (randomly initialised) VAE, UNet, CLIP text encoder and offline tokenizer files."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    va = cfg.vae_arch
    n = len(va.block_out_channels)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=va.latent_channels,
                        block_out_channels=tuple(va.block_out_channels), layers_per_block=va.layers_per_block,
                        norm_num_groups=va.norm_num_groups, down_block_types=("DownEncoderBlock2D",) * n,
                        up_block_types=("UpDecoderBlock2D",) * n, scaling_factor=1.0)
    ua = cfg.unet_arch
    m = len(ua.block_out_channels)
    unet = UNet2DConditionModel(
        in_channels=va.latent_channels, out_channels=va.latent_channels,
        block_out_channels=tuple(ua.block_out_channels), layers_per_block=ua.layers_per_block,
        attention_head_dim=tuple(ua.attention_head_dim), cross_attention_dim=ua.cross_attention_dim,
        norm_num_groups=ua.norm_num_groups, use_linear_projection=True,
        down_block_types=("CrossAttnDownBlock2D",) * (m - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (m - 1))
    tok_dir = Path(cfg.output_dir) / ".tokenizer_src"
    vocab, merges = write_tokenizer_vocab(tok_dir)
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
    ta = cfg.text_arch
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id, hidden_size=ta.hidden_size, intermediate_size=ta.intermediate_size,
        num_hidden_layers=ta.num_hidden_layers, num_attention_heads=ta.num_attention_heads,
        max_position_embeddings=77, projection_dim=ua.cross_attention_dim, hidden_act="gelu"))
    return vae, unet, text_encoder, tokenizer, tok_dir


# ---- stages --------------------------------------------------------------------------------------------------
def train_vae(vae, images: torch.Tensor, st, seed: int, log_period: int = 50, sizes=None,
              normals: torch.Tensor | None = None) -> list[float]:
    """Stage 1: L1 reconstruction + ``kl_weight`` * KL (mean over latent elements). Returns the losses.

    ``images [N, 3, H, W]`` is the pool; ``sizes``: its rows per source (for ``st.source_weights``; default one
    source); ``normals [N]`` (bool): rows that are normal maps (their x flips sign with a mirror)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=st.lr, weight_decay=0.0)
    lr_at = _lr_schedule(st)
    sizes = list(sizes) if sizes is not None else [len(images)]
    vae.train()
    losses = []
    for step in tqdm(range(st.steps), desc="pretrain vae", unit="step", mininterval=5):
        idx = sample_rows(sizes, st.source_weights, st.batch_size, gen)
        x = _flip(_random_crop(images[idx], st.crop, gen), gen, None if normals is None else normals[idx])
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        kl = post.kl().mean() / z[0].numel()
        loss = (rec - x).abs().mean() + st.kl_weight * kl
        _step(vae, opt, loss, lr_at(step), losses, "vae", log_period)
    vae.eval()
    return losses


def _step(model, opt, loss: torch.Tensor, lr: float, losses: list[float], name: str, log_period: int) -> None:
    """Backward, clip the gradient norm to 1, set ``lr``, step; record the loss and log every ``log_period``."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.step()
    losses.append(float(loss.detach()))
    if log_period and len(losses) % log_period == 0:
        logger.info("%s step %d: loss %.4f", name, len(losses), float(np.mean(losses[-log_period:])))


@torch.no_grad()
def encode_dataset(vae, images: torch.Tensor, batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image and of its mirror: ``[2N, C, h, w]`` each (unscaled)."""
    means, stds = [], []
    for flip in (False, True):
        for i in range(0, len(images), batch):
            x = images[i:i + batch]
            post = vae.encode(x.flip(-1) if flip else x).latent_dist
            means.append(post.mean)
            stds.append(post.std)
    return torch.cat(means), torch.cat(stds)


def train_unet(unet, means: torch.Tensor, stds: torch.Tensor, scaling: float, text_embedding: torch.Tensor,
               scheduler, st, seed: int, log_period: int = 50) -> list[float]:
    """Stage 2: v-prediction DDPM on scaled latents, uniform timesteps, empty-prompt conditioning."""
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.AdamW(unet.parameters(), lr=st.lr, weight_decay=1e-2)
    lr_at = _lr_schedule(st)
    unet.train()
    losses = []
    T = scheduler.config.num_train_timesteps
    for step in tqdm(range(st.steps), desc="pretrain unet", unit="step", mininterval=5):
        idx = torch.randint(len(means), (st.batch_size,), generator=gen)
        z0 = (means[idx] + stds[idx] * torch.randn(means[idx].shape, generator=gen)) * scaling
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(0, T, (st.batch_size,), generator=gen)
        zt = scheduler.add_noise(z0, noise, t)
        target = scheduler.get_velocity(z0, noise, t)
        pred = unet(zt, t, encoder_hidden_states=text_embedding.expand(st.batch_size, -1, -1)).sample
        loss = torch.nn.functional.mse_loss(pred, target)
        _step(unet, opt, loss, lr_at(step), losses, "unet", log_period)
    unet.eval()
    return losses


# ---- driver --------------------------------------------------------------------------------------------------
def pretrain_base(cfg) -> dict[str, Any]:
    """Run both stages and write the SD2-layout checkpoint to ``cfg.output_dir``. Returns a summary."""
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel, CLIPTokenizer

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    vae, unet, text_encoder, tokenizer, tok_dir = build_modules(cfg, int(cfg.seed))
    roots = [cfg.data.root, *cfg.data.extra_roots]
    images = [load_images(r, cfg.data.resize, cfg.data.max_images) for r in roots]
    if len({tuple(x.shape[1:]) for x in images}) > 1:
        raise ConfigError(f"data.root / data.extra_roots: image sizes differ ({[tuple(x.shape[2:]) for x in images]}); "
                          "set data.resize")
    images = torch.cat(images)
    logger.info("pretrain: %d images of %dx%d from %s", len(images), images.shape[2], images.shape[3],
                ", ".join(map(str, roots)))
    summary: dict[str, Any] = {"images": len(images)}
    if cfg.vae_from:
        src = Path(cfg.vae_from)
        vae = AutoencoderKL.from_pretrained(src / "vae")
        text_encoder = CLIPTextModel.from_pretrained(src / "text_encoder", use_safetensors=True)
        tokenizer = CLIPTokenizer.from_pretrained(src / "tokenizer")
        summary["vae_from"] = str(src)
    else:
        maps = [_read_maps(f, cfg.data.max_images) for f in cfg.data.vae_maps]
        sources = [images] + [m for m, _ in maps]
        normals = torch.cat([torch.zeros(len(images), dtype=torch.bool)] + [n for _, n in maps])
        summary["vae_losses"] = train_vae(vae, torch.cat(sources), cfg.vae, int(cfg.seed), cfg.log_period,
                                          sizes=[len(x) for x in sources], normals=normals)
        del sources, maps
    vae.eval().requires_grad_(False)
    means, stds = encode_dataset(vae, images)
    if not cfg.vae_from:
        vae.register_to_config(scaling_factor=round(float(1.0 / means.std()), 5))
    scaling = float(vae.config.scaling_factor)
    summary["scaling_factor"] = scaling
    scheduler = DDPMScheduler(**{k: v for k, v in SD2_SCHEDULER_CONFIG.items() if k not in ("set_alpha_to_one",)})
    # the empty-prompt embedding exactly as the Marigold trainer / pipelines compute it
    embedding = encode_empty_prompt(tokenizer, text_encoder.eval())
    if cfg.unet.steps > 0:
        summary["unet_losses"] = train_unet(unet, means, stds, scaling, embedding, scheduler, cfg.unet,
                                            int(cfg.seed), cfg.log_period)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=DDIMScheduler(**SD2_SCHEDULER_CONFIG), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True)
    if not cfg.vae_from:
        finish_tokenizer_folder(out / "tokenizer", tok_dir / "vocab.json", tok_dir / "merges.txt", False)
    shutil.rmtree(tok_dir, ignore_errors=True)
    record = {k: (v[-1] if isinstance(v, list) and v else v) for k, v in summary.items()}
    (out / "pretrain_summary.json").write_text(json.dumps(record, indent=1))
    logger.info("pretrain: wrote %s (%s)", out, record)
    return summary

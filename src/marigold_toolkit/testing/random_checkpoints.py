"""Randomly initialised checkpoints in exactly the public Marigold layouts (test fixtures, like diffusers'
``testing_utils``).

Used by the tests (``size="tiny"``: seconds on a CPU) and by the benchmarks (``size="full"``: the real SD2
architecture, whose speed does not depend on the weights). The six public layouts are written by diffusers' own
Marigold pipelines' ``save_pretrained``, so ``model_index.json`` has the same fields as the public checkpoints;
:func:`build_random_task_checkpoint` writes one for any registered task (a task of your own included) with this
package's :func:`~marigold_toolkit.checkpoints.model_index.write_model_index`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..checkpoints.model_index import MarigoldSpec, write_model_index
from ..checkpoints.tiny_decoder import new_tiny_decoder, save_tiny_decoder
from ..checkpoints.sd2 import SD2_SCHEDULER_CONFIG, finish_tokenizer_folder, write_tokenizer_vocab
from ..tasks import Task

_APPEARANCE = {
    "target_names": ["albedo", "material"],
    "albedo": {"prediction_space": "srgb", "up_to_scale": False},
    "material": {"prediction_space": "stack", "sub_target_names": ["roughness", "metallicity", None]},
    "roughness": {"prediction_space": "linear", "up_to_scale": False},
    "metallicity": {"prediction_space": "linear", "up_to_scale": False},
}
_LIGHTING = {
    "target_names": ["albedo", "shading", "residual"],
    "albedo": {"prediction_space": "linear", "up_to_scale": False},
    "shading": {"prediction_space": "linear", "up_to_scale": True},
    "residual": {"prediction_space": "linear", "up_to_scale": True},
}

#: The six public layouts, and a disparity variant of depth-v1-1 (``prediction_type: "disparity"``, which
#: diffusers' MarigoldDepthPipeline accepts; no public checkpoint predicts disparity yet): pipeline class,
#: scheduler and the pipeline config in model_index.json.
LAYOUTS: dict[str, dict[str, Any]] = {
    "depth-v1-0": dict(
        pipeline="MarigoldDepthPipeline", scheduler="DDIMScheduler",
        scheduler_kwargs=dict(timestep_spacing="leading", rescale_betas_zero_snr=False),
        config=dict(prediction_type="depth", scale_invariant=True, shift_invariant=True,
                    default_denoising_steps=10, default_processing_resolution=768),
    ),
    "depth-lcm-v1-0": dict(
        pipeline="MarigoldDepthPipeline", scheduler="LCMScheduler", scheduler_kwargs=dict(),
        config=dict(prediction_type="depth", scale_invariant=True, shift_invariant=True,
                    default_denoising_steps=1, default_processing_resolution=768),
    ),
    "depth-v1-1": dict(
        pipeline="MarigoldDepthPipeline", scheduler="DDIMScheduler",
        scheduler_kwargs=dict(timestep_spacing="trailing", rescale_betas_zero_snr=True),
        config=dict(prediction_type="depth", scale_invariant=True, shift_invariant=True,
                    default_denoising_steps=4, default_processing_resolution=768),
    ),
    "normals-v1-1": dict(
        pipeline="MarigoldNormalsPipeline", scheduler="DDIMScheduler",
        scheduler_kwargs=dict(timestep_spacing="trailing", rescale_betas_zero_snr=True),
        config=dict(prediction_type="normals", use_full_z_range=True,
                    default_denoising_steps=4, default_processing_resolution=768),
    ),
    "iid-appearance-v1-1": dict(
        pipeline="MarigoldIntrinsicsPipeline", scheduler="DDIMScheduler",
        scheduler_kwargs=dict(timestep_spacing="trailing", rescale_betas_zero_snr=True),
        config=dict(prediction_type="intrinsics", target_properties=_APPEARANCE,
                    default_denoising_steps=4, default_processing_resolution=768),
    ),
    "iid-lighting-v1-1": dict(
        pipeline="MarigoldIntrinsicsPipeline", scheduler="DDIMScheduler",
        scheduler_kwargs=dict(timestep_spacing="trailing", rescale_betas_zero_snr=True),
        config=dict(prediction_type="intrinsics", target_properties=_LIGHTING,
                    default_denoising_steps=4, default_processing_resolution=768),
    ),
    "depth-disparity-v1-1": dict(
        pipeline="MarigoldDepthPipeline", scheduler="DDIMScheduler",
        scheduler_kwargs=dict(timestep_spacing="trailing", rescale_betas_zero_snr=True),
        config=dict(prediction_type="disparity", scale_invariant=True, shift_invariant=True,
                    default_denoising_steps=4, default_processing_resolution=768),
    ),
}


def n_targets_of(layout: str) -> int:
    props = LAYOUTS[layout]["config"].get("target_properties")
    return len(props["target_names"]) if props else 1


def architecture_config(size: str, n_targets: int) -> tuple[dict, dict, dict]:
    latent = 4
    if size == "tiny":
        unet = dict(
            sample_size=8, in_channels=latent * (1 + n_targets), out_channels=latent * n_targets,
            block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, attention_head_dim=(2, 4),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), use_linear_projection=True, norm_num_groups=32,
        )
        vae = dict(
            in_channels=3, out_channels=3, latent_channels=latent, block_out_channels=(8, 16, 16, 16),
            layers_per_block=1, norm_num_groups=8, sample_size=64, scaling_factor=0.18215,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        )
        text = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                    max_position_embeddings=77, projection_dim=32, hidden_act="gelu")
    elif size == "full":  # Stable Diffusion 2 (768-v) architecture
        unet = dict(
            sample_size=96, in_channels=latent * (1 + n_targets), out_channels=latent * n_targets,
            block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=1024,
            attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        )
        vae = dict(
            in_channels=3, out_channels=3, latent_channels=latent, block_out_channels=(128, 256, 512, 512),
            layers_per_block=2, sample_size=768, scaling_factor=0.18215,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        )
        text = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                    max_position_embeddings=77, projection_dim=512, hidden_act="gelu")
    else:
        raise ValueError(f"unknown size {size!r}; use 'tiny' or 'full'")
    return unet, vae, text


def _random_modules(out_dir: Path, size: str, seed: int, n_targets: int, **unet_overrides):
    """Random UNet, VAE, CLIP text encoder and an offline tokenizer, every parameter perturbed by N(0, 0.02)
    (so none is exactly zero). Returns the modules and the tokenizer source files."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet_cfg, vae_cfg, text_cfg = architecture_config(size, n_targets)
    unet = UNet2DConditionModel(**dict(unet_cfg, **unet_overrides))
    vae = AutoencoderKL(**vae_cfg)
    vocab_file, merges_file = write_tokenizer_vocab(out_dir / "_tokenizer_src")
    tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id, **text_cfg))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in (unet, vae, text_encoder):
            for p in module.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return unet, vae, text_encoder, tokenizer, (vocab_file, merges_file)


def _finish_tokenizer(out_dir: Path, sources: tuple[Path, Path], json_only: bool) -> None:
    finish_tokenizer_folder(out_dir / "tokenizer", sources[0], sources[1], json_only)
    tmp_tok = sources[0].parent
    for f in tmp_tok.iterdir():
        f.unlink()
    tmp_tok.rmdir()


def build_random_checkpoint(
    out_dir: str | Path,
    layout: str = "depth-v1-1",
    size: str = "tiny",
    seed: int = 0,
    variant: str | None = None,
    tokenizer_json_only: bool = False,
) -> Path:
    """Write a random checkpoint of ``layout`` (one of :data:`LAYOUTS`) to ``out_dir`` and return its path.

    Args:
        size: ``"tiny"`` (a few MB, for tests) or ``"full"`` (the SD2 architecture, for benchmarks).
        seed: weights are initialised, then perturbed with N(0, 0.02) noise so no parameter is exactly zero.
        variant: also save weights under this variant name (e.g. ``"fp16"`` in half precision).
        tokenizer_json_only: write the tokenizer only as ``tokenizer.json`` (what transformers 5 saves) instead of
            ``vocab.json`` + ``merges.txt`` (what the public checkpoints carry).
    """
    import diffusers

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; one of {sorted(LAYOUTS)}")
    spec = LAYOUTS[layout]
    out_dir = Path(out_dir)
    unet, vae, text_encoder, tokenizer, tok_src = _random_modules(out_dir, size, seed, n_targets_of(layout))
    scheduler_cls = getattr(diffusers, spec["scheduler"])
    scheduler = scheduler_cls(**SD2_SCHEDULER_CONFIG, **spec["scheduler_kwargs"])
    pipeline_cls = getattr(diffusers, spec["pipeline"])
    pipe = pipeline_cls(unet=unet, vae=vae, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer,
                        **spec["config"])
    pipe.save_pretrained(out_dir, safe_serialization=True)
    if variant is not None:  # only the variant weight files; configs stay those of the float32 save
        pipe.to(torch.float16 if variant == "fp16" else torch.float32)
        with tempfile.TemporaryDirectory() as tmp:
            pipe.save_pretrained(tmp, safe_serialization=True, variant=variant)
            for f in Path(tmp).glob(f"*/*.{variant}.safetensors"):
                shutil.copy(f, out_dir / f.parent.name / f.name)
    _finish_tokenizer(out_dir, tok_src, tokenizer_json_only)
    return out_dir


def build_random_sd2_base(out_dir: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """A random Stable Diffusion 2 style text-to-image checkpoint (4-channel UNet, v-prediction DDIM scheduler)
    in diffusers' ``StableDiffusionPipeline`` layout: the starting point of Marigold fine-tuning in tests."""
    return _save_stable_diffusion_layout(Path(out_dir), size, seed, 1, {}, in_channels=4, out_channels=4)


def _save_stable_diffusion_layout(out_dir: Path, size: str, seed: int, n_targets: int,
                                  scheduler_kwargs: dict[str, Any], **unet_channels: int) -> Path:
    """Random modules saved as diffusers' ``StableDiffusionPipeline`` (DDIM, SD2 settings + ``scheduler_kwargs``)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    unet, vae, text_encoder, tokenizer, tok_src = _random_modules(out_dir, size, seed, n_targets, **unet_channels)
    scheduler = DDIMScheduler(**SD2_SCHEDULER_CONFIG, **scheduler_kwargs)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    _finish_tokenizer(out_dir, tok_src, False)
    return out_dir


def build_random_task_checkpoint(
    out_dir: str | Path,
    task: Task,
    size: str = "tiny",
    seed: int = 0,
    scheduler: str = "DDIMScheduler",
    scheduler_kwargs: dict[str, Any] | None = None,
    default_denoising_steps: int = 1,
    default_processing_resolution: int = 768,
) -> Path:
    """A random checkpoint for ``task`` (any registered :class:`~marigold_toolkit.tasks.base.Task`, configured
    with its targets): components saved by diffusers, ``model_index.json`` by
    :func:`~marigold_toolkit.checkpoints.model_index.write_model_index`. Returns ``out_dir``."""
    import diffusers

    out_dir = Path(out_dir)
    unet, vae, text_encoder, tokenizer, tok_src = _random_modules(out_dir, size, seed, task.n_targets)
    kwargs = dict(timestep_spacing="trailing", rescale_betas_zero_snr=True) if scheduler_kwargs is None \
        else scheduler_kwargs
    sched = getattr(diffusers, scheduler)(**SD2_SCHEDULER_CONFIG, **kwargs)
    for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        module.save_pretrained(out_dir / name, safe_serialization=True)
    sched.save_pretrained(out_dir / "scheduler")
    tokenizer.save_pretrained(out_dir / "tokenizer")
    _finish_tokenizer(out_dir, tok_src, False)
    write_model_index(out_dir, MarigoldSpec(
        path=out_dir, source=str(out_dir), task=task, default_denoising_steps=default_denoising_steps,
        default_processing_resolution=default_processing_resolution, scheduler_class=scheduler))
    return out_dir


def build_random_e2e_ft_checkpoint(out_dir: str | Path, n_targets: int = 1, size: str = "tiny", seed: int = 0) -> Path:
    """A random checkpoint in the published E2E-FT layout (``GonzaloMG/marigold-e2e-ft-depth``, ``-normals``):
    diffusers' ``StableDiffusionPipeline`` folder (so ``model_index.json`` names no task) holding a Marigold UNet
    (``4 (1 + n_targets)`` input channels) and a DDIM scheduler with trailing spacing and v-prediction."""
    return _save_stable_diffusion_layout(Path(out_dir), size, seed, n_targets, {"timestep_spacing": "trailing"})


def build_random_rollingdepth_checkpoint(out_dir: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """A random checkpoint in RollingDepth's layout (``prs-eth/rollingdepth-v1-0``): a Marigold depth UNet
    (8 input channels), VAE, CLIP text encoder and tokenizer, a DDIM scheduler (trailing spacing), and a
    ``model_index.json`` naming ``RollingDepthPipeline`` with no Marigold fields (as ``DiffusionPipeline``
    saves that class)."""
    from diffusers import DDIMScheduler

    out_dir = Path(out_dir)
    unet, vae, text_encoder, tokenizer, tok_src = _random_modules(out_dir, size, seed, 1)
    for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        module.save_pretrained(out_dir / name, safe_serialization=True)
    DDIMScheduler(**SD2_SCHEDULER_CONFIG, timestep_spacing="trailing").save_pretrained(out_dir / "scheduler")
    tokenizer.save_pretrained(out_dir / "tokenizer")
    _finish_tokenizer(out_dir, tok_src, False)
    index = {"_class_name": "RollingDepthPipeline", "_diffusers_version": "0.30.0",
             "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (out_dir / "model_index.json").write_text(json.dumps(index, indent=2))
    return out_dir


def build_random_tiny_decoder(folder: str | Path, latent_channels: int = 4, size: str = "tiny", seed: int = 0) -> Path:
    """A randomly initialised tiny decoder (diffusers' ``AutoencoderTiny`` layout) for a checkpoint's latents:
    ``size="tiny"`` (8 channels per level, one block each; for tests) or ``"taesd"`` (TAESD's decoder
    architecture, 64 channels, (3, 3, 3, 1) blocks; for benchmarks: its speed does not depend on the weights)."""
    arch = {"tiny": (8, (1, 1, 1, 1)), "taesd": (64, (3, 3, 3, 1))}
    if size not in arch:
        raise ValueError(f"unknown tiny decoder size {size!r}; use one of {sorted(arch)}")
    torch.manual_seed(seed)
    width, blocks = arch[size]
    return save_tiny_decoder(new_tiny_decoder(latent_channels, width, blocks), folder)

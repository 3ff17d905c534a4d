"""Load the inference components of a Marigold checkpoint.

Only the UNet, the VAE and the scheduler are kept. The text encoder is loaded once, turned into the constant
empty-prompt embedding ``[1, 2, hidden]`` and released: inference never holds it in memory.
Weights are read from safetensors where the checkpoint has them, otherwise through ``torch.load(weights_only=True)``
inside diffusers/transformers; no remote code is ever executed.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.machine import BF16_FLAGS, FP16_FLAGS, CpuInfo, cpu_info
from .model_index import SUPPORTED_SCHEDULERS, MarigoldSpec, read_spec
from .registry import lookup_model
from .resolve import CheckpointError, resolve_checkpoint_path

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """``"float16"``/``"fp16"``/``torch.float16`` -> ``torch.float16`` (``None`` -> float32)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"unsupported dtype {dtype}; use one of {list(DTYPES)}")
        return dtype
    aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
    key = aliases.get(str(dtype).lower(), str(dtype).lower())
    if key not in DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; use one of {list(DTYPES)}")
    return DTYPES[key]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` picks cuda, then mps, then cpu. An unavailable device is a clear error."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device '{device}' requested but MPS is not available")
    return dev


def _has_weights(folder: Path, variant: str | None) -> bool:
    suffix = f".{variant}.safetensors" if variant else ".safetensors"
    return any(p.name.endswith(suffix) for p in folder.glob("*.safetensors"))


def _pick_variant(folder: Path, variant: str | None) -> str | None:
    """Use ``variant`` for a component only if it ships such files; otherwise the default weights."""
    if variant and _has_weights(folder, variant):
        return variant
    if variant:
        logger.info("%s: no '%s' variant weights, using the default weights", folder, variant)
    return None


def _use_safetensors(folder: Path) -> bool | None:
    return True if any(folder.glob("*.safetensors")) else None


@dataclass
class MarigoldComponents:
    """The modules inference needs. ``empty_text_embedding`` is ``[1, 2, hidden]`` in ``dtype``."""

    spec: MarigoldSpec
    unet: torch.nn.Module
    vae: torch.nn.Module
    scheduler: object
    empty_text_embedding: torch.Tensor
    dtype: torch.dtype
    device: torch.device


def load_scheduler(path: Path, class_name: str):
    import diffusers

    if class_name not in SUPPORTED_SCHEDULERS:
        raise CheckpointError(f"{path}: unsupported scheduler {class_name!r}")
    return getattr(diffusers, class_name).from_pretrained(path, subfolder="scheduler")


@torch.no_grad()
def compute_empty_text_embedding(path: Path, dtype: torch.dtype = torch.float32, variant: str | None = None):
    """Encode the empty prompt with the checkpoint's own tokenizer and text encoder.

    ``padding="do_not_pad"`` gives the two tokens BOS, EOS, hence an embedding of shape ``[1, 2, hidden]``.
    The text encoder is deleted before returning.
    """
    from transformers import AutoTokenizer, CLIPTextModel

    tok_dir, te_dir = path / "tokenizer", path / "text_encoder"
    if not tok_dir.is_dir() or not te_dir.is_dir():
        raise CheckpointError(f"{path}: 'tokenizer/' and 'text_encoder/' are needed to build the empty-text embedding")
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{tok_dir}: cannot load the tokenizer ({exc})") from exc
    text_encoder = CLIPTextModel.from_pretrained(
        te_dir, torch_dtype=dtype, variant=_pick_variant(te_dir, variant), use_safetensors=_use_safetensors(te_dir)
    )
    embedding = encode_empty_prompt(tokenizer, text_encoder)
    del text_encoder, tokenizer
    gc.collect()
    return embedding


def vae_stride(vae) -> int:
    """Pixels per latent of a diffusers ``AutoencoderKL`` (its config): 2 per downsampling block, 8 for SD2."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def enable_vae_tiling(vae, tile_size: int | None = None, overlap: float = 0.25) -> None:
    """Switch on diffusers' tiled ``AutoencoderKL`` encode/decode: inputs larger than ``tile_size`` pixels (or
    latents larger than ``tile_size / 8``) are processed in overlapping tiles blended linearly, so memory stays
    bounded for very large inputs (e.g. a 4000x3000 photo at native resolution) at the cost of small differences
    near tile seams.

    Args:
        vae: a diffusers ``AutoencoderKL``.
        tile_size: tile edge in pixels, a multiple of the VAE's downscaling factor; default: the VAE config's
            ``sample_size`` (768 for the SD2-based checkpoints; diffusers' own default).
        overlap: fraction of a tile shared with its neighbour (diffusers' default 0.25).
    """
    stride = vae_stride(vae)
    if not 0 <= overlap < 1:
        raise ValueError(f"vae tile overlap must be in [0, 1), not {overlap}")
    if tile_size is not None:
        # tiles start every int(tile * (1 - overlap)) pixels / latents; unless those steps agree and are multiples of
        # the stride, edge tiles can be thinner than the encoder's downsampling (a conv error) or misaligned
        def fits(t: int) -> bool:
            step_px, step_latent = int(t * (1 - overlap)), int(t // stride * (1 - overlap))
            return t % stride == 0 and step_px >= stride and step_px == step_latent * stride

        if not fits(tile_size):
            unit = next((t for t in range(stride, 65 * stride, stride) if fits(t)), stride)
            raise ValueError(f"vae tile size {tile_size} px does not fit the VAE's stride {stride} at overlap "
                             f"{overlap:g}; use a multiple of {unit} px such as 512 or 768")
    vae.enable_tiling()
    if tile_size is None:
        return
    vae.tile_sample_min_size = int(tile_size)
    vae.tile_latent_min_size = int(tile_size) // stride
    vae.tile_overlap_factor = float(overlap)


@torch.no_grad()
def encode_empty_prompt(tokenizer, text_encoder) -> torch.Tensor:
    """The empty prompt through ``text_encoder``: BOS, EOS unpadded -> ``[1, 2, hidden]`` (a detached copy)."""
    max_length = min(int(tokenizer.model_max_length), int(text_encoder.config.max_position_embeddings))
    ids = tokenizer("", padding="do_not_pad", max_length=max_length, truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids.to(text_encoder.device))[0].detach().clone()


def slow_half_precision_warning(dtype: torch.dtype, device: torch.device, cpu: CpuInfo | None = None) -> str | None:
    """A warning when float16/bfloat16 will run far slower than float32: on a CPU without native support for that
    dtype (bfloat16: AVX-512-BF16 or AMX-BF16; float16: AVX-512-FP16 or AMX-FP16; ``cpu``: default this machine's
    flags, see :mod:`marigold_toolkit.core.machine`)."""
    if dtype == torch.float32 or device.type != "cpu":
        return None
    cpu = cpu or cpu_info()
    native, flags = (cpu.native_bf16, BF16_FLAGS) if dtype == torch.bfloat16 else (cpu.native_fp16, FP16_FLAGS)
    if native:
        return None
    name = str(dtype).replace("torch.", "")
    return (f"{name} on this CPU ({cpu.model}, none of {' '.join(flags)}) runs emulated and is typically far "
            f"slower than float32; use dtype float32 here, or --fast to pick the best dtype for this machine")


def load_spec(model: str | Path, variant: str | None = None, revision: str | None = None,
              task: str | None = None) -> MarigoldSpec:
    """What ``model`` (hub id, alias or folder) predicts and how, from its configs only (no weights are read): the
    spec :func:`load_components` loads the weights for. Arguments as there."""
    path = resolve_checkpoint_path(str(model), variant=variant, revision=revision)
    entry = lookup_model(str(model))
    return read_spec(path, source=str(model), task=task or (entry.task if entry else None),
                     initial_noise=entry.initial_noise if entry else None)


def load_components(
    model: str | Path,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    variant: str | None = None,
    revision: str | None = None,
    task: str | None = None,
) -> MarigoldComponents:
    """Load UNet, VAE, scheduler and the empty-text embedding of ``model`` (hub id, alias or folder).

    Args:
        model: ``"prs-eth/marigold-depth-v1-1"``, an alias such as ``"depth-v1-1"``, or a local folder.
        dtype: float32 (default), float16 or bfloat16 for all modules.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``None`` for automatic.
        variant: weight-file variant, e.g. ``"fp16"`` (falls back to default files per component).
        task: the task, where the checkpoint's layout does not tell it (default: the registry alias's, if any).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch_dtype = parse_dtype(dtype)
    dev = resolve_device(device)
    spec = load_spec(model, variant=variant, revision=revision, task=task)
    path = spec.path
    # the text encoder first, so that its memory is released before the UNet and VAE load and is not kept beside them
    embedding = compute_empty_text_embedding(path, dtype=torch_dtype, variant=variant)
    try:
        unet = UNet2DConditionModel.from_pretrained(
            path / "unet", torch_dtype=torch_dtype, variant=_pick_variant(path / "unet", variant),
            use_safetensors=_use_safetensors(path / "unet"),
        )
        vae = AutoencoderKL.from_pretrained(
            path / "vae", torch_dtype=torch_dtype, variant=_pick_variant(path / "vae", variant),
            use_safetensors=_use_safetensors(path / "vae"),
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load weights ({exc})") from exc
    scheduler = load_scheduler(path, spec.scheduler_class)
    unet.requires_grad_(False).eval().to(dev)
    vae.requires_grad_(False).eval().to(dev)
    logger.info("loaded %s (%s, targets %s) on %s as %s", spec.source, spec.task, spec.target_names, dev, torch_dtype)
    warning = slow_half_precision_warning(torch_dtype, dev)
    if warning:
        logger.warning(warning)
    return MarigoldComponents(spec, unet, vae, scheduler, embedding.to(dev), torch_dtype, dev)


__all__ = ["MarigoldComponents", "load_components", "load_spec", "compute_empty_text_embedding", "parse_dtype",
           "resolve_device", "enable_vae_tiling", "vae_stride"]

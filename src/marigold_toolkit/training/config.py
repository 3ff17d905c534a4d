"""Training configuration: YAML files with ``base_config`` inheritance, a typed schema and command-line overrides.

A config file may name a ``base_config`` (a path relative to itself); the chain is merged base-first, then the
overrides (``key.sub=value`` strings) are applied. Every key is checked against :class:`TrainConfig`, so a typo is
a clear error before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..tasks import TaskError, get_task


class ConfigError(ValueError):
    """A config file, key or value is invalid. The message names the file or key."""


@dataclass
class DatasetConfig:
    name: str = MISSING  # a key of marigold_toolkit.data.TRAIN_DATASETS
    root: str = MISSING
    split: Optional[str] = None
    prob: float = 1.0  # probability that a micro-batch is drawn from this dataset
    kwargs: dict = field(default_factory=dict)  # extra constructor arguments (e.g. resize)


@dataclass
class ModelConfig:
    base: str = "stabilityai/stable-diffusion-2"  # SD2-layout folder/hub id, or an existing Marigold checkpoint
    variant: Optional[str] = None
    mixed_precision: str = "no"  # no | fp16 | bf16 (Accelerate autocast; weights stay float32)
    gradient_checkpointing: bool = False


@dataclass
class PipelineConfig:
    """Written to ``model_index.json`` of every saved checkpoint: the defaults, and the task's own fields (each
    task reads those it has, see :meth:`~marigold_toolkit.tasks.base.Task.from_config`)."""

    default_denoising_steps: int = 4
    default_processing_resolution: int = 768
    prediction_type: Optional[str] = None  # the task's prediction space (depth: depth | disparity); None = default
    scale_invariant: bool = True
    shift_invariant: bool = True
    use_full_z_range: bool = True
    target_properties: Optional[dict] = None


@dataclass
class NoiseConfig:
    enabled: bool = True
    strength: float = 0.9
    annealed: bool = True
    downscale_strategy: str = "original"


@dataclass
class DiffusionConfig:
    version: str = "v1.1"  # v1.1: zero-SNR + trailing; v1.0: the CVPR scheduler
    mode: str = "diffusion"  # diffusion (v-prediction DDPM) | e2e (one step, task loss through the decoder)
    e2e_timestep: int = 999
    multi_res_noise: NoiseConfig = field(default_factory=NoiseConfig)


@dataclass
class LRScheduleConfig:
    total_iter: int = 25000
    final_ratio: float = 0.01
    warmup_steps: int = 100


@dataclass
class OptimConfig:
    lr: float = 3.0e-5
    micro_batch_size: int = 2
    effective_batch_size: int = 32
    max_iter: int = 30000
    lr_scheduler: LRScheduleConfig = field(default_factory=LRScheduleConfig)
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0


@dataclass
class DataConfig:
    train: list = field(default_factory=list)  # list of DatasetConfig
    val: list = field(default_factory=list)  # list of DatasetConfig (prob ignored)
    num_workers: int = 2
    augment: bool = True
    # memory (MB) for frozen-VAE latents of inputs seen before (training/latent_cache.py); 0: encode every time
    cache_latents_mb: float = 0.0


@dataclass
class ValidationConfig:
    period: int = 500  # optimizer steps; 0 disables
    max_samples: Optional[int] = None
    num_inference_steps: int = 1
    ensemble_size: int = 1
    processing_resolution: int = 0
    seed: int = 2024


@dataclass
class CheckpointConfig:
    period: int = 50  # optimizer steps between resumable checkpoints
    keep_last: int = 2
    backup_period: int = 2000  # kept forever; 0 disables


@dataclass
class LoggingConfig:
    period: int = 10
    tensorboard: bool = True


@dataclass
class TrainConfig:
    base_config: Optional[str] = None
    task: str = "depth"  # a registered task: depth | normals | intrinsics | your own
    targets: list = field(default_factory=lambda: ["depth"])
    seed: int = 2024
    output_dir: str = "runs/marigold"
    use_mask: bool = True  # mask invalid GT in the latent loss (depth, IID appearance)
    model: ModelConfig = field(default_factory=ModelConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


def _load_chain(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: base_config cycle")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # noqa: BLE001 - YAML errors of any kind
        raise ConfigError(f"{path}: cannot parse YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = cfg.get("base_config")
    if base:
        parent = _load_chain((path.parent / str(base)), seen + (path,))
        cfg = OmegaConf.merge(parent, cfg)
    return cfg


def load_structured(path: str | Path, schema: type, overrides: list[str] | None = None,
                    post=None) -> DictConfig:
    """Load ``path`` with its ``base_config`` chain, merge it into the dataclass ``schema``, apply ``key=value``
    overrides, run ``post(cfg)`` (e.g. typing list items) and resolve interpolations.

    Raises:
        ConfigError: missing file, YAML error, unknown key or wrong type (naming it).
    """
    raw = _load_chain(Path(path))
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), raw)
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"override {bad[0]!r} must look like key=value")
            for item in overrides:
                key, _, text = item.partition("=")
                value = OmegaConf.from_dotlist([f"v={text}"]).v  # YAML-typed value
                if OmegaConf.select(cfg, key, default="__missing__") == "__missing__" and "." in key:
                    parent = OmegaConf.select(cfg, key.rsplit(".", 1)[0])
                    if parent is None or not isinstance(parent, DictConfig):
                        raise ConfigError(f"override {item!r}: no such key '{key}'")
                OmegaConf.update(cfg, key, value, merge=True)
        if post is not None:
            post(cfg)
        OmegaConf.resolve(cfg)
    except (OmegaConfBaseException, TypeError) as exc:
        msg = str(exc).splitlines()[0]
        key = getattr(exc, "full_key", None)
        raise ConfigError(f"{path}: {msg}" + (f" (key '{key}')" if key else "")) from None
    return cfg


def _type_datasets(cfg: DictConfig) -> None:
    cfg.data.train = [OmegaConf.merge(OmegaConf.structured(DatasetConfig), d) for d in cfg.data.train]
    cfg.data.val = [OmegaConf.merge(OmegaConf.structured(DatasetConfig), d) for d in cfg.data.val]


def load_config(path: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """Load ``path`` with its ``base_config`` chain, validate against :class:`TrainConfig`, apply overrides.

    Raises:
        ConfigError: missing file, YAML error, unknown key, wrong type or invalid value (naming it).
    """
    cfg = load_structured(path, TrainConfig, overrides, post=_type_datasets)
    validate(cfg, str(path))
    return cfg


def validate(cfg: DictConfig, where: str = "config") -> None:
    """Value checks that the schema's types cannot express."""
    def fail(msg: str):
        raise ConfigError(f"{where}: {msg}")

    if not cfg.targets:
        fail("targets must not be empty")
    try:
        get_task(cfg.task).check_targets(list(cfg.targets))
    except TaskError as exc:
        fail(str(exc))
    if cfg.diffusion.version not in ("v1.1", "v1.0"):
        fail(f"diffusion.version must be v1.1 or v1.0, got {cfg.diffusion.version!r}")
    if cfg.diffusion.mode not in ("diffusion", "e2e"):
        fail(f"diffusion.mode must be diffusion or e2e, got {cfg.diffusion.mode!r}")
    if cfg.diffusion.mode == "e2e" and cfg.diffusion.e2e_timestep != 999:
        fail("diffusion.e2e_timestep must be 999: an end-to-end model is saved to run in one step from t = 999")
    if cfg.diffusion.mode == "e2e" and cfg.validation.num_inference_steps != 1:
        fail("validation.num_inference_steps must be 1 in e2e mode: the model is trained for one step")
    o = cfg.optim
    if o.micro_batch_size < 1 or o.effective_batch_size < o.micro_batch_size:
        fail("optim.effective_batch_size must be >= optim.micro_batch_size >= 1")
    if o.effective_batch_size % o.micro_batch_size:
        fail("optim.effective_batch_size must be a multiple of optim.micro_batch_size")
    if o.max_iter < 1 or o.lr <= 0:
        fail("optim.max_iter and optim.lr must be positive")
    if not cfg.data.train:
        fail("data.train lists no dataset")
    probs = [float(d.prob) for d in cfg.data.train]
    if any(p < 0 for p in probs) or sum(probs) <= 0:
        fail("data.train probabilities must be >= 0 and not all 0")
    if cfg.model.mixed_precision not in ("no", "fp16", "bf16"):
        fail(f"model.mixed_precision must be no, fp16 or bf16, got {cfg.model.mixed_precision!r}")
    if cfg.checkpoint.period < 1:
        fail("checkpoint.period must be >= 1")


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]

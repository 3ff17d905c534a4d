"""A checkpoint's pipeline description, ``model_index.json``: the one place that reads and writes it.

Everything task-specific (task, target names, invariances, target properties) is read from the checkpoint's own
``model_index.json`` and component configs, never from its name: the task registry
(:func:`~marigold_toolkit.tasks.registry.task_for_model_index`) picks the task from the pipeline class, and the
task reads its own fields. :func:`build_model_index` writes the same fields back, so ``read_spec`` of a folder
written by :func:`write_model_index` gives the spec that was written (tested on every public layout).
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write_bytes
from ..tasks import Task, TaskError, get_task, task_for_model_index
from .resolve import CheckpointError

REQUIRED_COMPONENTS = ("unet", "vae", "scheduler")
TEXT_COMPONENTS = ("text_encoder", "tokenizer")
#: the class of every non-scheduler component, as diffusers' Marigold pipelines save them
COMPONENT_CLASSES = {
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}

# Only these scheduler classes can be instantiated from a checkpoint (no arbitrary attribute lookup).
SUPPORTED_SCHEDULERS = ("DDIMScheduler", "LCMScheduler", "DDPMScheduler")

#: our own ``model_index.json`` block; diffusers drops keys starting with ``_`` when it builds a pipeline
TOOLKIT_KEY = "_marigold_toolkit"
#: initial latents of a prediction: Gaussian noise (diffusion estimators) or zeros (end-to-end fine-tuned models)
INITIAL_NOISE = ("gaussian", "zeros")
#: ``_class_name`` of a Stable Diffusion layout: an E2E-FT checkpoint when its UNet has Marigold's channels
STABLE_DIFFUSION_CLASS = "StableDiffusionPipeline"
#: published pipeline classes that are recognised but not run, and why (a clear error instead of loading a part
#: of the checkpoint as something it may not be)
UNSUPPORTED_PIPELINES = {
    "MarigoldDepthHRPipeline": (
        "Marigold-HR (prs-eth/marigold-depth-hr-v1-1) is not supported: its second 'boosting' UNet is conditioned "
        "and tiled as only the hub's own pipeline.py defines (remote code, which this package does not run), and "
        "no public description fixes those semantics; see README 'Marigold-HR' for what is known. For training-free "
        "tiling of a depth model use --hr"),
}


@dataclass
class MarigoldSpec:
    """What a Marigold checkpoint predicts and how, read from ``model_index.json``.

    Attributes:
        path: local folder holding the diffusers-layout checkpoint.
        source: what the user asked for (hub id, alias or folder).
        task: the :class:`~marigold_toolkit.tasks.base.Task`, configured from the checkpoint (target names and
            the task's own fields, e.g. depth invariances or intrinsics target properties).
        prediction_type: the pipeline's ``prediction_type`` field (``"depth"``, ``"disparity"``, ...).
        default_denoising_steps, default_processing_resolution: the checkpoint's recommended settings.
        scheduler_class: class name of the inference scheduler.
        initial_noise: ``"gaussian"`` (a diffusion estimator) or ``"zeros"`` (an end-to-end fine-tuned model, run
            in one deterministic step from a zero latent; read from our ``_marigold_toolkit`` block, or implied
            by the E2E-FT layout).
        model_index: the raw ``model_index.json`` content.
    """

    path: Path
    source: str
    task: Task
    prediction_type: str | None = None
    default_denoising_steps: int | None = None
    default_processing_resolution: int | None = None
    scheduler_class: str = "DDIMScheduler"
    initial_noise: str = "gaussian"
    model_index: dict[str, Any] = field(default_factory=dict)

    @property
    def target_names(self) -> list[str]:
        """Names of the predicted modalities, in UNet output order."""
        return self.task.target_names

    @property
    def n_targets(self) -> int:
        return self.task.n_targets


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: missing; is this a diffusers-layout Marigold checkpoint?") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def read_spec(path: Path, source: str | None = None, task: str | None = None,
              initial_noise: str | None = None) -> MarigoldSpec:
    """Read ``model_index.json`` and the component configs of a local checkpoint folder.

    ``task`` names the task where the pipeline class does not tell it (the E2E-FT checkpoints are saved as
    ``StableDiffusionPipeline``); it must agree with a class that does. ``initial_noise`` overrides the
    checkpoint's (e.g. a registry alias's setting).

    Raises:
        CheckpointError: missing or malformed files, an unknown task, channels that do not fit the targets,
            an unsupported scheduler.
    """
    path = Path(path)
    index = _read_json(path / "model_index.json")
    if index.get("_class_name") in UNSUPPORTED_PIPELINES:
        raise CheckpointError(f"{path}: {UNSUPPORTED_PIPELINES[index['_class_name']]}")
    for comp in REQUIRED_COMPONENTS:
        if not (path / comp).is_dir():
            raise CheckpointError(f"{path}: component folder '{comp}/' is missing")
    unet_cfg = _read_json(path / "unet" / "config.json")
    vae_cfg = _read_json(path / "vae" / "config.json")
    where = str(path / "model_index.json")
    try:
        try:
            task_cls = task_for_model_index(index, str(path))
        except TaskError:
            if task is None:
                raise
            task_cls = get_task(task)
        if task is not None and task_cls.name != task:
            raise TaskError(f"{path}: the checkpoint is a {task_cls.name} pipeline, not {task}")
        spec_task = task_cls.from_model_index(index, where)  # `task` stays the caller's hint
    except TaskError as exc:
        raise CheckpointError(f"{exc}" + ("" if task else "; pass the task (--task) for a checkpoint saved "
                                          "in another layout")) from exc
    own = index.get(TOOLKIT_KEY) or {}
    noise = initial_noise or own.get("initial_noise")
    if noise is None:  # an E2E-FT checkpoint in its published Stable Diffusion layout
        noise = "zeros" if index.get("_class_name") == STABLE_DIFFUSION_CLASS else "gaussian"
    if noise not in INITIAL_NOISE:
        raise CheckpointError(f"{where}: initial_noise {noise!r} is not one of {INITIAL_NOISE}")

    latent_channels = int(vae_cfg.get("latent_channels", 4))
    out_channels = int(unet_cfg.get("out_channels", 4))
    in_channels = int(unet_cfg.get("in_channels", 4))
    expected_out = latent_channels * spec_task.n_targets
    if out_channels != expected_out or in_channels != latent_channels + expected_out:
        raise CheckpointError(
            f"{path}/unet/config.json: in/out channels {in_channels}/{out_channels} do not match "
            f"{spec_task.n_targets} target(s) {spec_task.target_names} with {latent_channels} latent channels "
            f"(expected {latent_channels + expected_out}/{expected_out})"
        )

    sched = index.get("scheduler")
    scheduler_class = sched[1] if isinstance(sched, (list, tuple)) and len(sched) == 2 else None
    if scheduler_class is None:
        scheduler_class = _read_json(path / "scheduler" / "scheduler_config.json").get("_class_name")
    if scheduler_class not in SUPPORTED_SCHEDULERS:
        raise CheckpointError(
            f"{path}: scheduler {scheduler_class!r} is not supported (supported: {', '.join(SUPPORTED_SCHEDULERS)})"
        )

    def opt_int(key: str) -> int | None:
        v = index.get(key)
        return int(v) if v is not None else None

    return MarigoldSpec(
        path=path,
        source=source or str(path),
        task=spec_task,
        prediction_type=index.get("prediction_type"),
        default_denoising_steps=opt_int("default_denoising_steps"),
        default_processing_resolution=opt_int("default_processing_resolution"),
        scheduler_class=scheduler_class,
        initial_noise=noise,
        model_index=index,
    )


def build_model_index(spec: MarigoldSpec) -> dict[str, Any]:
    """The ``model_index.json`` of ``spec``: the fields diffusers' Marigold pipelines save (pipeline class,
    prediction type, the task's own fields, the defaults, the component classes)."""
    task = spec.task
    index: dict[str, Any] = {
        "_class_name": task.pipeline_classes[0],
        "_diffusers_version": importlib.metadata.version("diffusers"),
        "prediction_type": spec.prediction_type or task.prediction_types[0],
        **task.model_index_fields(),
        "default_denoising_steps": spec.default_denoising_steps,
        "default_processing_resolution": spec.default_processing_resolution,
        "scheduler": ["diffusers", spec.scheduler_class],
    }
    index.update(COMPONENT_CLASSES)
    if spec.initial_noise != "gaussian":
        index[TOOLKIT_KEY] = {"initial_noise": spec.initial_noise}
    return index


def write_model_index(folder: str | Path, spec: MarigoldSpec) -> Path:
    """Write :func:`build_model_index` of ``spec`` to ``folder/model_index.json`` (atomically); returns the path."""
    path = Path(folder) / "model_index.json"
    atomic_write_bytes(path, (json.dumps(build_model_index(spec), indent=2, sort_keys=True) + "\n").encode())
    return path

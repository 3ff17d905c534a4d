"""Resolve a Marigold checkpoint (hub id, alias or local folder) and read its pipeline description.

Everything task-specific (task, target names, defaults, invariances) is read from the checkpoint's own
``model_index.json`` and component configs, never from its name.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry import resolve_alias

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
REQUIRED_COMPONENTS = ("unet", "vae", "scheduler")
TEXT_COMPONENTS = ("text_encoder", "tokenizer")

# `_class_name` values seen in Marigold checkpoints -> task. Older community/legacy names included.
_CLASS_TO_TASK = {
    "MarigoldDepthPipeline": "depth",
    "MarigoldPipeline": "depth",
    "MarigoldNormalsPipeline": "normals",
    "MarigoldIntrinsicsPipeline": "intrinsics",
    "MarigoldIIDPipeline": "intrinsics",
}
_PREDICTION_TYPE_TO_TASK = {"depth": "depth", "disparity": "depth", "normals": "normals", "intrinsics": "intrinsics"}

# Only these scheduler classes can be instantiated from a checkpoint (no arbitrary attribute lookup).
SUPPORTED_SCHEDULERS = ("DDIMScheduler", "LCMScheduler", "DDPMScheduler")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be found, downloaded or understood. The message is meant for end users."""


@dataclass
class MarigoldSpec:
    """What a Marigold checkpoint predicts and how, read from ``model_index.json``.

    Attributes:
        path: local folder holding the diffusers-layout checkpoint.
        source: what the user asked for (hub id, alias or folder).
        task: ``"depth"``, ``"normals"`` or ``"intrinsics"``.
        target_names: names of the predicted modalities, in UNet output order
            (``["depth"]``, ``["normals"]`` or e.g. ``["albedo", "material"]``).
        target_properties: intrinsics metadata (``prediction_space``, ``up_to_scale``, ``sub_target_names``).
        prediction_type: the pipeline's ``prediction_type`` field (``"depth"``, ``"disparity"``, ...).
        scale_invariant, shift_invariant: depth invariances (affine-invariant when both are true).
        use_full_z_range: normals decoding flag.
        default_denoising_steps, default_processing_resolution: the checkpoint's recommended settings.
        scheduler_class: class name of the inference scheduler.
        model_index: the raw ``model_index.json`` content.
    """

    path: Path
    source: str
    task: str
    target_names: list[str]
    target_properties: dict[str, Any] = field(default_factory=dict)
    prediction_type: str | None = None
    scale_invariant: bool = True
    shift_invariant: bool = True
    use_full_z_range: bool = True
    default_denoising_steps: int | None = None
    default_processing_resolution: int | None = None
    scheduler_class: str = "DDIMScheduler"
    model_index: dict[str, Any] = field(default_factory=dict)

    @property
    def n_targets(self) -> int:
        return len(self.target_names)


def _is_local(source: str) -> bool:
    return os.path.isdir(os.path.expanduser(source))


def _variant_patterns(variant: str | None) -> list[str]:
    patterns = ["*.json", "*.txt", "tokenizer/*", "*.model"]
    weights = "*.safetensors" if variant is None else f"*.{variant}.safetensors"
    patterns += [weights]
    if variant is not None:
        patterns += ["*.safetensors"]  # fall back to plain weights for components without the variant
    return patterns


def resolve_checkpoint_path(source: str, variant: str | None = None, revision: str | None = None) -> Path:
    """Return a local folder for ``source``: a folder path, a registry alias or a Hugging Face hub id.

    Hub ids go through ``huggingface_hub.snapshot_download`` (which uses the local cache and respects
    ``HF_HUB_OFFLINE``); only safetensors weights and configs are fetched.

    Raises:
        CheckpointError: the folder does not exist, or the hub id is neither cached nor downloadable.
    """
    if _is_local(source):  # a folder wins over a registry alias of the same name
        return Path(os.path.expanduser(source)).resolve()
    source = resolve_alias(source)
    if _is_local(source):  # an alias of a bundled model (a folder inside the package)
        return Path(source).resolve()
    if not _HUB_ID.fullmatch(source):
        raise CheckpointError(
            f"model '{source}': no such folder, and not a Hugging Face hub id of the form 'org/name'"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - dependency of diffusers
        raise CheckpointError("huggingface_hub is required to load models by hub id") from exc
    try:
        path = snapshot_download(source, revision=revision, allow_patterns=_variant_patterns(variant))
    except Exception as exc:  # noqa: BLE001 - every hub failure gets the same actionable message
        raise CheckpointError(
            f"model '{source}' is not in the local Hugging Face cache and could not be downloaded "
            f"({type(exc).__name__}). On a machine with hub access run "
            f"`huggingface-cli download {source} --local-dir ./{source.split('/')[-1]}` (or `hf download`), "
            f"copy the folder here and pass its path, e.g. `--model ./{source.split('/')[-1]}`."
        ) from exc
    return Path(path)


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


def _infer_task(index: dict[str, Any], unet_cfg: dict[str, Any], where: Path) -> str:
    cls = index.get("_class_name")
    if cls in _CLASS_TO_TASK:
        return _CLASS_TO_TASK[cls]
    ptype = index.get("prediction_type")
    if ptype in _PREDICTION_TYPE_TO_TASK:
        return _PREDICTION_TYPE_TO_TASK[ptype]
    if index.get("target_properties"):
        return "intrinsics"
    if "use_full_z_range" in index:
        return "normals"
    if "scale_invariant" in index or "shift_invariant" in index:
        return "depth"
    raise CheckpointError(
        f"{where}: cannot tell the task (class {cls!r}, prediction_type {ptype!r}); expected a Marigold "
        f"depth, normals or intrinsics pipeline"
    )


def read_spec(path: Path, source: str | None = None) -> MarigoldSpec:
    """Read ``model_index.json`` and component configs of a local checkpoint folder."""
    path = Path(path)
    index = _read_json(path / "model_index.json")
    for comp in REQUIRED_COMPONENTS:
        if not (path / comp).is_dir():
            raise CheckpointError(f"{path}: component folder '{comp}/' is missing")
    unet_cfg = _read_json(path / "unet" / "config.json")
    vae_cfg = _read_json(path / "vae" / "config.json")
    task = _infer_task(index, unet_cfg, path)

    target_properties = index.get("target_properties") or {}
    if task == "depth":
        target_names = ["depth"]
    elif task == "normals":
        target_names = ["normals"]
    else:
        target_names = list(target_properties.get("target_names") or [])
        if not target_names:
            raise CheckpointError(f"{path}/model_index.json: intrinsics checkpoint without target_properties.target_names")

    latent_channels = int(vae_cfg.get("latent_channels", 4))
    out_channels = int(unet_cfg.get("out_channels", 4))
    in_channels = int(unet_cfg.get("in_channels", 4))
    expected_out = latent_channels * len(target_names)
    if out_channels != expected_out or in_channels != latent_channels + expected_out:
        raise CheckpointError(
            f"{path}/unet/config.json: in/out channels {in_channels}/{out_channels} do not match "
            f"{len(target_names)} target(s) {target_names} with {latent_channels} latent channels "
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
        task=task,
        target_names=target_names,
        target_properties=dict(target_properties),
        prediction_type=index.get("prediction_type"),
        scale_invariant=bool(index.get("scale_invariant", True)),
        shift_invariant=bool(index.get("shift_invariant", True)),
        use_full_z_range=bool(index.get("use_full_z_range", True)),
        default_denoising_steps=opt_int("default_denoising_steps"),
        default_processing_resolution=opt_int("default_processing_resolution"),
        scheduler_class=scheduler_class,
        model_index=index,
    )

"""Intrinsic image decomposition: ``T`` targets (e.g. albedo + material, or albedo + shading + residual), each a
3-channel image in [0, 1] with its own VAE latent. ``target_properties`` describes each target's space.

Checkpoints: ``MarigoldIntrinsicsPipeline`` (and the legacy ``MarigoldIIDPipeline``), ``prediction_type``
``intrinsics``, ``model_index.json`` field ``target_properties`` (``target_names`` plus per-target
``prediction_space``, ``up_to_scale``, ``sub_target_names``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...core.checks import check_shape, shape_matches
from ...core.image import resize_prediction
from ...core.metrics import lpips, lpips_enabled
from ..base import Task, TaskError
from ..registry import register_task
from .metrics import UP_TO_SCALE_TARGETS, intrinsics_metrics, linear_to_srgb, prepare_iid_pair, srgb_to_linear


def intrinsic_to_rgb(target: np.ndarray, properties: Mapping[str, Any] | None = None) -> np.ndarray:
    """``[H, W, 3]`` intrinsic target in [0, 1] -> displayable sRGB uint8.

    ``properties`` are the target's entries of ``target_properties``: linear targets get gamma 1/2.2, and
    up-to-scale ones (shading, residual) are first divided by their maximum.

    >>> intrinsic_to_rgb(np.full((1, 1, 3), 0.5), {"prediction_space": "linear"}).tolist()
    [[[186, 186, 186]]]
    """
    x = np.asarray(target, dtype=np.float32)
    check_shape(x, "H W 3", "intrinsic target")
    props = properties or {}
    if props.get("prediction_space") == "linear":
        if props.get("up_to_scale", False):
            x = x / max(float(x.max()), 1e-6)
        x = np.clip(x, 0.0, 1.0) ** (1 / 2.2)
    return (np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


@register_task
class IntrinsicsTask(Task):
    """Intrinsic decomposition into the checkpoint's targets."""

    name = "intrinsics"
    pipeline_classes = ("MarigoldIntrinsicsPipeline", "MarigoldIIDPipeline")
    prediction_types = ("intrinsics",)
    index_fields = ("target_properties",)
    channels = 3
    reductions = ("median", "mean")
    metric_keys = ("psnr", "ssim")
    validation_metric = "psnr"
    per_target_metrics = True
    folder_fallback = True  # a folder training set of other target folders is an intrinsic decomposition

    def __init__(self, target_names: Sequence[str] | None = None,
                 target_properties: Mapping[str, Any] | None = None):
        props = dict(target_properties or {})
        names = list(target_names) if target_names is not None else list(props.get("target_names") or [])
        if not names:
            raise TaskError("intrinsics: no target names (target_properties.target_names)")
        super().__init__(names)
        if props.get("target_names") not in (None, self.target_names):
            raise TaskError(f"intrinsics: target_properties.target_names {props['target_names']} differ from the "
                            f"targets {self.target_names}")
        props["target_names"] = list(self.target_names)
        self.target_properties = props

    # -- checkpoint
    @classmethod
    def from_model_index(cls, index: Mapping[str, Any], where: str = "model_index.json") -> IntrinsicsTask:
        props = index.get("target_properties") or {}
        if not props.get("target_names"):
            raise TaskError(f"{where}: intrinsics checkpoint without target_properties.target_names")
        return cls(target_properties=props)

    def model_index_fields(self) -> dict[str, Any]:
        return {"target_properties": dict(self.target_properties)}

    @classmethod
    def check_targets(cls, targets: Sequence[str]) -> None:
        if not targets or len(set(targets)) != len(targets):
            raise TaskError(f"targets must be a non-empty list of distinct names, got {list(targets)}")

    @classmethod
    def from_config(cls, targets: Sequence[str], pipeline: Mapping[str, Any]) -> IntrinsicsTask:
        cls.check_targets(targets)
        return cls(targets, pipeline.get("target_properties"))

    def sub_targets(self, name: str) -> list[str | None]:
        """Channel names of a ``"stack"`` target (e.g. material -> [roughness, metallicity, None])."""
        props = self.target_properties.get(name, {})
        if props.get("prediction_space") == "stack":
            return list(props.get("sub_target_names") or [])
        return []

    def up_to_scale_targets(self) -> tuple[str, ...]:
        """The targets ``target_properties`` marks ``up_to_scale`` (e.g. shading, residual)."""
        return tuple(t for t in self.target_names if self.target_properties.get(t, {}).get("up_to_scale"))

    # -- codec
    def decode(self, image: torch.Tensor) -> torch.Tensor:
        return (image.clip(-1.0, 1.0) + 1.0) / 2.0

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """One target ``[B, 3, H, W]`` in [0, 1] -> VAE input in [-1, 1]."""
        check_shape(target, "B 3 H W", "intrinsics target")
        return target.clip(0.0, 1.0) * 2.0 - 1.0

    # -- scoring
    def score(self, preds: Mapping[str, np.ndarray], gt: Any, mask: np.ndarray | None = None,
              up_to_scale: Iterable[str] = UP_TO_SCALE_TARGETS, linear_space: Iterable[str] = (),
              srgb_space: Iterable[str] = (), masks: Mapping[str, np.ndarray] | None = None,
              with_lpips: bool = False) -> tuple[dict[str, float], None]:
        """PSNR/SSIM per target (``"<target>/psnr"``, ...), in the authors' order: optional colour-space
        conversion of both images (``linear_space``: sRGB -> linear, e.g. material; ``srgb_space``: linear ->
        sRGB, e.g. Hypersim albedo), then for ``up_to_scale`` targets a least-squares scale and the quantile
        mapping, then the metrics. ``masks`` (target -> ``[H, W]`` or ``[H, W, C]`` bool) override ``mask`` per
        target; ``with_lpips`` adds ``<target>/lpips``."""
        up_to_scale, linear_space, srgb_space = set(up_to_scale), set(linear_space), set(srgb_space)
        out = {}
        for name, g in dict(gt).items():
            m = masks.get(name, mask) if masks else mask
            if m is not None and np.ndim(m) == 3 and np.shape(m)[2] == 1:
                m = np.broadcast_to(m, g.shape)
            pred = resize_prediction(preds[name], g.shape[:2])
            if name in linear_space:
                pred, g = srgb_to_linear(pred), srgb_to_linear(g)
            elif name in srgb_space:
                pred, g = linear_to_srgb(pred), linear_to_srgb(g)
            p, g = prepare_iid_pair(pred, g, name, m, name in up_to_scale)
            for k, v in intrinsics_metrics(p, g, m).items():
                out[f"{name}/{k}"] = v
            if with_lpips:
                out[f"{name}/lpips"] = lpips(p, g, m)
        return out, None

    # -- folder evaluation
    @classmethod
    def for_ground_truth_folder(cls, gt_dir: Path) -> IntrinsicsTask:
        """The targets are the sub-folders of ``gt_dir`` (``GT/albedo/<stem>.npy``, ...)."""
        gt_dir = Path(gt_dir)
        targets = sorted(p.name for p in gt_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not targets:
            raise ValueError(f"--ground-truth {gt_dir}: intrinsics needs one sub-folder per target (e.g. albedo/)")
        return cls(targets)

    def ground_truth_file(self, gt_dir: Path, target: str, stem: str) -> Path:
        return Path(gt_dir) / target / f"{stem}.npy"

    def check_folder_pair(self, target: str, gt: np.ndarray, pred: np.ndarray) -> None:
        if not shape_matches(gt, "H W 3"):
            raise ValueError(f"{target}: ground truth must be HxWx3, got {gt.shape}")

    def folder_protocol(self, targets: Sequence[str], options: Mapping[str, Any]) -> dict[str, Any]:
        return {"up_to_scale": tuple(options.get("up_to_scale", UP_TO_SCALE_TARGETS)),
                "with_lpips": lpips_enabled()}

    def folder_settings(self, targets: Sequence[str], protocol: Mapping[str, Any]) -> dict[str, Any]:
        return {"targets": list(targets), "up_to_scale": list(protocol["up_to_scale"])}

    # -- files
    def visualize(self, target: str, array: np.ndarray) -> np.ndarray:
        return intrinsic_to_rgb(array, self.target_properties.get(target))

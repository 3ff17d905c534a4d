"""The :class:`Task` interface: everything that differs between depth, surface normals, intrinsic decomposition
(or a task of your own) in one object.

The rest of the package never asks "which task is this?"; it asks the task:

* **checkpoint**: which ``model_index.json`` pipeline classes and prediction types mean this task, which
  task-specific fields it reads and writes there (:meth:`Task.from_model_index`, :meth:`Task.model_index_fields`);
* **latent codec**: how a prediction goes into and comes out of the frozen VAE (:meth:`Task.encode`,
  :meth:`Task.decode`, :meth:`Task.finalize`);
* **ensembling** and uncertainty (:meth:`Task.ensemble`);
* **training**: targets in prediction units from a training sample (:meth:`Task.training_targets`), whether
  invalid pixels are masked in the latent loss, the pixel loss of end-to-end fine-tuning (:meth:`Task.e2e_loss`),
  the validation score, and the per-sample processing of the folder training layout
  (:meth:`Task.read_target_file`, :meth:`Task.training_sample`);
* **scoring** against ground truth and the metric keys (:meth:`Task.score`, :attr:`Task.metric_keys`), error
  maps for plots, and the folder-evaluation ground-truth layout;
* **files**: the names and contents of what ``marigold predict`` writes (:meth:`Task.output_files`,
  :meth:`Task.write_outputs`) and the visualisation of a target (:meth:`Task.visualize`).

Defaults in this class fit a task whose targets are images in [0, 1] (per-pixel median ensembling, L1 pixel loss,
bilinear resizing, grey/RGB visualisation), so a new task often only names itself, its pipeline class, its codec
and its metrics. Register it with :func:`~marigold_toolkit.tasks.registry.register_task`.

Shapes: ``T`` targets, ``C`` = :attr:`Task.channels` channels per decoded target, ``E`` ensemble members.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..core.augment import draw_flip
from ..core.checks import check_map, check_shape, shape_matches
from ..core.image import hflip, resize_prediction, resize_raster, rgb_uint8_to_tensor, to_chw
from ..io.dataset_files import DataSource, read_npy, read_png_unit
from ..io.files import save_npy, save_png
from ..visualize import uncertainty_heatmap


class TaskError(ValueError):
    """A task cannot be found, configured or applied to the given data; the message is meant for end users."""


@dataclass
class ErrorMap:
    """A per-pixel error map of one image for the evaluation plots: ``error`` ``[H, W]`` (NaN = not scored), its
    colour-bar ``label``, the prediction as shown (``[H, W]`` or ``[H, W, 3]`` in [0, 1]) and its title."""

    error: np.ndarray
    label: str
    shown: np.ndarray
    title: str = "prediction"


@dataclass
class ImageContext:
    """What a task's extra outputs of one input may use (:meth:`Task.write_extras`): the input image as read
    (``H x W x 3``), its path (e.g. for EXIF), and the outputs of every model run on it in the same call (e.g. a
    normals prediction next to the depth)."""

    image: np.ndarray
    path: Path | None = None
    outputs: Sequence[Any] = field(default_factory=list)


def reduce_members(stack: torch.Tensor, reduction: str, with_uncertainty: bool):
    """Median/mean over dim 0 keeping it, with MAD (median) or std (mean) as the uncertainty."""
    if reduction == "median":
        merged = torch.median(stack, dim=0, keepdim=True).values
        unc = torch.median(torch.abs(stack - merged), dim=0, keepdim=True).values if with_uncertainty else None
    elif reduction == "mean":
        merged = torch.mean(stack, dim=0, keepdim=True)
        unc = torch.std(stack, dim=0, keepdim=True) if with_uncertainty else None
    else:
        raise ValueError(f"unknown reduction {reduction!r}; use 'median' or 'mean'")
    return merged, unc


def ensembling_kwargs(reduction: str | None = None, method: str | None = None) -> dict[str, str] | None:
    """The ``ensembling_kwargs`` of :meth:`Task.ensemble` naming a reduction and/or a method (unchecked; ``None``
    when neither is given; :meth:`Task.ensembling_options` checks them against a task).

    >>> ensembling_kwargs(method="least-squares")
    {'method': 'least-squares'}
    >>> ensembling_kwargs() is None
    True
    """
    kwargs = {k: v for k, v in (("reduction", reduction), ("method", method)) if v is not None}
    return kwargs or None


def ensemble_pixelwise(
    members: torch.Tensor, output_uncertainty: bool = False, reduction: str = "median"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Merge ``[E, T, C, H, W]`` predictions per pixel and channel into ``[T, C, H, W]`` (+ uncertainty of the
    same shape: MAD for the median, std for the mean).

    Example:
        >>> x = torch.tensor([0.1, 0.5, 0.2]).view(3, 1, 1, 1, 1).expand(3, 1, 3, 1, 1)
        >>> m, u = ensemble_pixelwise(x, True)
        >>> m.flatten().tolist(), [round(v, 3) for v in u.flatten().tolist()]
        ([0.20000000298023224, 0.20000000298023224, 0.20000000298023224], [0.1, 0.1, 0.1])
    """
    check_shape(members, "E T C H W", "members")
    merged, unc = reduce_members(members, reduction, output_uncertainty)
    return merged.squeeze(0), (unc.squeeze(0) if unc is not None else None)


def chw_to_hwc(t: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` tensor -> float32 ``[H, W]`` (C = 1) or ``[H, W, C]`` numpy array."""
    arr = t.detach().float().cpu().permute(1, 2, 0).numpy()
    return np.ascontiguousarray(arr[..., 0] if arr.shape[-1] == 1 else arr, dtype=np.float32)


def as_target_dict(values: Any, target_names: Sequence[str]) -> dict[str, Any]:
    """A mapping target name -> value, from a mapping or (for a single-target task) the value itself."""
    if isinstance(values, Mapping):
        return dict(values)
    if len(target_names) != 1:
        raise TaskError(f"expected a mapping with the targets {list(target_names)}, got {type(values).__name__}")
    return {target_names[0]: values}


class Task(ABC):
    """One dense-prediction task (see the module docstring for what it owns).

    An instance is configured for one checkpoint (its target names and task-specific ``model_index.json``
    fields); class attributes describe the task itself.
    """

    #: the task's registry name (``marigold predict --task``, ``marigold train`` config ``task``)
    name: ClassVar[str] = ""
    #: ``model_index.json`` ``_class_name`` values that mean this task; the first is written by our trainer
    pipeline_classes: ClassVar[tuple[str, ...]] = ()
    #: ``model_index.json`` ``prediction_type`` values that mean this task; the first is written
    prediction_types: ClassVar[tuple[str, ...]] = ()
    #: task-specific ``model_index.json`` fields (read, written, and used to recognise legacy checkpoints)
    index_fields: ClassVar[tuple[str, ...]] = ()
    #: channels of one decoded target
    channels: ClassVar[int] = 3
    #: ensembling reductions (the first one is the default)
    reductions: ClassVar[tuple[str, ...]] = ("median", "mean")
    #: ensembling methods, ``ensembling_kwargs["method"]`` (the first one is the default); empty: only one way
    ensembling_methods: ClassVar[tuple[str, ...]] = ()
    #: the method the fast tier (``fast=True``) ensembles with when the caller names none (``None``: the default)
    fast_ensembling_method: ClassVar[str | None] = None
    #: per-image metric keys of :meth:`score` (multi-target tasks prefix them with ``"<target>/"``)
    metric_keys: ClassVar[tuple[str, ...]] = ()
    #: the dataset means of the folder-evaluation report (``None``: every metric)
    report_keys: ClassVar[tuple[str, ...] | None] = None
    #: the metric logged during training validation (averaged over targets for multi-target tasks)
    validation_metric: ClassVar[str] = ""
    #: whether ``use_mask`` masks invalid ground truth in the latent training loss
    mask_latent_loss: ClassVar[bool] = True
    #: file extensions of a target in the folder training layout, in lookup order
    target_file_extensions: ClassVar[tuple[str, ...]] = (".npy", ".png")
    #: the extra options :meth:`training_sample` takes (the folder dataset's keyword arguments)
    training_option_names: ClassVar[tuple[str, ...]] = ()
    #: image files written per target next to ``<stem>_<target>.npy`` (suffix after ``<stem>_<target>``)
    image_suffixes: ClassVar[tuple[str, ...]] = (".png",)
    #: whether the folder training layout falls back to this task when no task claims the target folders
    folder_fallback: ClassVar[bool] = False
    #: whether :meth:`score` reports every metric per target as ``"<target>/<metric>"``
    per_target_metrics: ClassVar[bool] = False
    #: ``marigold predict`` options that make this task write extra files (:meth:`extra_files`)
    extra_options: ClassVar[tuple[str, ...]] = ()
    #: whether ``marigold video`` runs it (temporally consistent depth)
    supports_video: ClassVar[bool] = False
    #: the per-sequence metrics of :meth:`score_video` a video benchmark's ``report.md`` shows
    video_report_keys: ClassVar[tuple[str, ...]] = ()
    #: the range of a target's values; 16-bit encodings (label shards, server answers) map it to 0..65535
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    #: the range of an uncertainty map's values (the built-in ensembles' spreads and mean angles / pi; 16-bit
    #: encodings clip above it)
    uncertainty_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def __init__(self, target_names: Sequence[str] | None = None):
        names = [self.name] if target_names is None else [str(t) for t in target_names]
        if not names or len(set(names)) != len(names):
            raise TaskError(f"{self.name}: target names must be a non-empty list of distinct names, got {names}")
        self.target_names = names

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target_names={self.target_names})"

    def __str__(self) -> str:
        return self.name

    @property
    def n_targets(self) -> int:
        return len(self.target_names)

    @property
    def default_reduction(self) -> str:
        return self.reductions[0]

    @property
    def uncertainty_channels(self) -> int:
        """Channels of one target's uncertainty map (default: one per target channel)."""
        return self.channels

    # -- checkpoint ---------------------------------------------------------------------------------------------
    @classmethod
    def from_model_index(cls, index: Mapping[str, Any], where: str = "model_index.json") -> Task:
        """The task as configured by a checkpoint's ``model_index.json`` (default: one target named after the
        task, no fields)."""
        return cls()

    def model_index_fields(self) -> dict[str, Any]:
        """The task-specific fields this task writes into ``model_index.json`` (inverse of
        :meth:`from_model_index`)."""
        return {}

    @classmethod
    def check_targets(cls, targets: Sequence[str]) -> None:
        """Raise :class:`TaskError` unless ``targets`` suit this task (default: exactly ``[name]``)."""
        if list(targets) != [cls.name]:
            raise TaskError(f"targets must be [{cls.name}] for task {cls.name}, got {list(targets)}")

    @classmethod
    def from_config(cls, targets: Sequence[str], pipeline: Mapping[str, Any]) -> Task:
        """The task of a training config: its ``targets`` and ``pipeline`` section (the fields written to the
        saved checkpoints' ``model_index.json``)."""
        cls.check_targets(targets)
        return cls(targets)

    # -- latent codec -------------------------------------------------------------------------------------------
    @abstractmethod
    def decode(self, image: torch.Tensor) -> torch.Tensor:
        """VAE decoder output ``[B, 3, H, W]`` in about [-1, 1] -> prediction ``[B, C, H, W]``."""

    @abstractmethod
    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """Ground truth ``[B, C, H, W]`` in prediction units -> VAE input ``[B, 3, H, W]`` in [-1, 1]."""

    def finalize(self, prediction: torch.Tensor) -> torch.Tensor:
        """Post-process ``[T, C, H, W]`` after resizing to the output size (default: clip to [0, 1])."""
        return prediction.clip(0.0, 1.0)

    # -- deviation between two ways of computing the same prediction (fast tier, tiny decoders) ------------------
    #: the :meth:`deviation` key a fast path's tolerance is stated in
    deviation_key = "mean_abs"

    def deviation(self, pred: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
        """How far ``pred`` is from ``ref``, two codec-decoded predictions of the same inputs ``[N, C, H, W]``
        (e.g. a tiny decoder's and the full decoder's): default mean and max absolute difference."""
        check_shape(pred, "N C H W", "pred")
        diff = (pred.double() - ref.double()).abs()
        return {"mean_abs": float(diff.mean()), "max_abs": float(diff.max())}

    # -- high-resolution tiling ---------------------------------------------------------------------------------
    @property
    def supports_tiling(self) -> bool:
        """Whether the task defines :meth:`align_tile` (high-resolution tiling)."""
        return type(self).align_tile is not Task.align_tile

    def align_tile(self, target: str, tile: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
        """Bring one target of a tile predicted on its own (``[h, w]`` or ``[h, w, C]``) onto the global
        prediction ``reference`` over the same pixels, for blending tiles into a high-resolution prediction.

        Returns:
            ``(aligned tile, factor)``: the factor scales the tile's uncertainty.

        Raises:
            TaskError: the task defines no tiling (the default).
        """
        raise TaskError(f"{self.name}: high-resolution tiling is not defined for this task")

    # -- ensembling ---------------------------------------------------------------------------------------------
    def check_reduction(self, reduction: str) -> None:
        if reduction not in self.reductions:
            raise TaskError(f"{self.name}: reduction must be one of {self.reductions}, got {reduction!r}")

    def check_ensembling_method(self, method: str) -> None:
        if not self.ensembling_methods:
            raise TaskError(f"{self.name}: ensembling has no method to choose (got {method!r})")
        if method not in self.ensembling_methods:
            raise TaskError(f"{self.name}: ensembling method must be one of {self.ensembling_methods}, "
                            f"got {method!r}")

    def ensembling_options(self, reduction: str | None = None, method: str | None = None) -> dict[str, str] | None:
        """The ``ensembling_kwargs`` of ``--reduction`` and ``--ensembling-method``, checked against this task
        (:class:`TaskError` names the bad one); ``None`` when neither is given.

        >>> from marigold_toolkit.tasks import get_task
        >>> get_task("depth")().ensembling_options(method="least-squares")
        {'method': 'least-squares'}
        >>> get_task("normals")().ensembling_options(reduction="mean")
        {'reduction': 'mean'}
        """
        if reduction is not None:
            self.check_reduction(reduction)
        if method is not None:
            self.check_ensembling_method(method)
        return ensembling_kwargs(reduction, method)

    def resolve_ensembling(self, ensembling_kwargs: Mapping[str, Any] | None, ensemble_size: int,
                           fast: bool = False) -> dict[str, Any]:
        """``ensembling_kwargs`` checked against this task, plus ``fast_ensembling_method`` when ``fast`` (the
        fast tier), the ensemble has several members and no ``method`` is named."""
        ens_kwargs = dict(ensembling_kwargs or {})
        self.check_reduction(ens_kwargs.get("reduction", self.default_reduction))
        if "method" in ens_kwargs:
            self.check_ensembling_method(ens_kwargs["method"])
        elif fast and ensemble_size > 1 and self.fast_ensembling_method:
            ens_kwargs["method"] = self.fast_ensembling_method
        return ens_kwargs

    def ensemble(
        self, members: torch.Tensor, output_uncertainty: bool, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[E, T, C, H, W]`` -> (``[T, C, H, W]``, ``[T, U, H, W]`` or ``None``); default: per-pixel median
        (or mean) with MAD (or std) uncertainty. ``kwargs``: ``reduction``."""
        reduction = kwargs.pop("reduction", self.default_reduction)
        self.check_reduction(reduction)
        if kwargs:
            raise TaskError(f"{self.name} ensembling takes only 'reduction', got {sorted(kwargs)}")
        return ensemble_pixelwise(members, output_uncertainty, reduction)

    # -- training -----------------------------------------------------------------------------------------------
    def training_targets(self, batch: Mapping[str, Any], valid_mask: torch.Tensor | None,
                         device: torch.device) -> dict[str, torch.Tensor]:
        """The targets of a training micro-batch in prediction units, ``name -> [B, C, H, W]`` on ``device``
        (default: the batch's own tensors)."""
        return {name: batch[name].to(device) for name in self.target_names}

    def e2e_loss(self, decoded: torch.Tensor, batch: Mapping[str, Any], device: torch.device) -> torch.Tensor:
        """Pixel-space loss of one-step end-to-end fine-tuning: ``decoded`` ``[B, T, C, H, W]`` (codec-decoded
        prediction) against the batch's targets. Default: mean absolute error per target over the valid mask,
        averaged over targets."""
        mask = _batch_mask(batch, device)
        losses = []
        for i, name in enumerate(self.target_names):
            err = (decoded[:, i] - batch[name].to(device)).abs().mean(dim=1)
            losses.append(err[mask].mean() if mask is not None and mask.any() else err.mean())
        return torch.stack(losses).mean()

    def validation_score(self, targets: Mapping[str, np.ndarray], sample: Mapping[str, Any]) -> float:
        """:attr:`validation_metric` of a prediction (``targets``, as :class:`MarigoldOutput` holds them) of one
        training sample (the sample contract of :mod:`marigold_toolkit.data.base`); raises
        :class:`~marigold_toolkit.core.metrics.EmptyMaskError` when nothing can be scored."""
        gts = {name: chw_to_hwc(sample[name]) for name in self.target_names}
        metrics, _ = self.score(targets, gts, _sample_mask(sample))
        return self.mean_metric(metrics, self.validation_metric)

    @staticmethod
    def mean_metric(metrics: Mapping[str, float], key: str) -> float:
        """The mean of ``key`` and of every ``"<target>/<key>"`` in ``metrics``."""
        values = [v for k, v in metrics.items() if k == key or k.endswith("/" + key)]
        if not values:
            raise KeyError(f"no metric {key!r} among {sorted(metrics)}")
        return float(np.mean(values))

    # -- training data: the folder layout -----------------------------------------------------------------------
    @classmethod
    def claims_folders(cls, folders: Sequence[str]) -> list[str] | None:
        """The targets of this task among the target folders of a folder training set, or ``None`` when none is
        this task's (default: the folder named like the task). :attr:`folder_fallback` tasks are asked only
        when no other task claims anything, and then take every folder."""
        if cls.folder_fallback:
            return list(folders) or None
        return [cls.name] if cls.name in folders else None

    def read_target_file(self, source: DataSource, rel_path: str, target: str) -> np.ndarray:
        """One target of the folder training layout -> ``[H, W]`` or ``[H, W, C]`` float32 in prediction units;
        raises ``ValueError`` for content that does not fit. Default: ``.npy`` as stored, PNG 8-bit / 255 or
        16-bit grey / 65535; values outside [0, 1] by more than 1e-3 are an error (smaller excursions clipped)."""
        arr = read_npy(source, rel_path) if rel_path.endswith(".npy") else read_png_unit(source, rel_path)
        arr = np.asarray(arr)
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{target} has dtype {arr.dtype}")
        arr = arr.astype(np.float32)
        if self.channels == 1 and arr.ndim == 3 and (arr.shape[2] == 1 or rel_path.endswith(".png")):
            if not np.array_equal(arr[..., :1].repeat(arr.shape[2], axis=2), arr):
                raise ValueError(f"{target}: expected a single-channel (grey) image, got {arr.shape[2]} channels")
            arr = arr[..., 0]
        if self.channels == 3 and arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        vals = arr[np.isfinite(arr)]
        if vals.size and (vals.min() < -1e-3 or vals.max() > 1 + 1e-3):
            raise ValueError(f"{target} values span [{vals.min():.4g}, {vals.max():.4g}], expected [0, 1] "
                             "(see the folder layout)")
        return arr

    def check_target_shape(self, target: str, arr: np.ndarray, hw: tuple[int, int]) -> None:
        """Raise ``ValueError`` unless ``arr`` is one target of an ``hw``-sized image (``[H, W]`` for one
        channel, ``[H, W, C]`` otherwise)."""
        check_map(arr, hw, None if self.channels == 1 else self.channels, f"{target} map")

    def training_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the extra options of :meth:`training_sample` (default: only :attr:`training_option_names`)."""
        unknown = sorted(set(options) - set(self.training_option_names))
        if unknown:
            raise TaskError(f"{self.name} training data takes no option {', '.join(map(repr, unknown))}"
                            f" (options: {', '.join(self.training_option_names) or 'none'})")
        return dict(options)

    def training_sample(self, rgb: np.ndarray, targets: Mapping[str, np.ndarray], mask: torch.Tensor | None,
                        rng: np.random.Generator, augment: bool, resize: tuple[int, int] | None,
                        **options: Any) -> dict[str, Any]:
        """One decoded training sample (uint8 ``rgb`` ``[H, W, 3]``, ``targets`` from :meth:`read_target_file`,
        optional bool ``mask`` ``[1, H, W]``) -> the sample contract of :mod:`marigold_toolkit.data.base`.

        Default: targets clipped to [0, 1], invalid where not finite; horizontal flip (p = 0.5, one draw of
        ``rng``) when ``augment``; bilinear resize of image and targets (mask: nearest-exact)."""
        hw = rgb.shape[:2]
        valid = torch.ones((1, *hw), dtype=torch.bool) if mask is None else mask.clone()
        sample: dict[str, Any] = {"rgb": rgb_uint8_to_tensor(rgb)}
        for name in self.target_names:
            arr = np.asarray(targets[name], dtype=np.float32)
            finite = np.isfinite(arr)
            sample[name] = to_chw(np.clip(np.where(finite, arr, 0.0), 0.0, 1.0))
            valid &= torch.from_numpy(finite if finite.ndim == 2 else finite.all(axis=2))[None]
        sample["valid_mask"] = valid
        if augment and draw_flip(rng):
            sample = hflip(sample)
        if resize is not None:
            for key in ("rgb", *self.target_names):
                sample[key] = resize_raster(sample[key], resize, "bilinear")
            sample["valid_mask"] = resize_raster(sample["valid_mask"], resize, "nearest-exact")
        return sample

    # -- scoring ------------------------------------------------------------------------------------------------
    @abstractmethod
    def score(self, preds: Mapping[str, np.ndarray], gt: Any, mask: np.ndarray | None = None,
              **options: Any) -> tuple[dict[str, float], Any]:
        """Per-image metrics of ``preds`` (target name -> array as predicted, any resolution) against ``gt``
        (the ground truth at evaluation resolution: a mapping target name -> array, or the array itself for a
        single-target task) over the bool ``[H, W]`` ``mask`` (``None``: the task's own validity rule).

        Returns ``(metrics, aux)``: :attr:`metric_keys` -> float, and whatever :meth:`error_map` needs (the aligned
        prediction for depth, else ``None``). Raises :class:`~marigold_toolkit.core.metrics.EmptyMaskError` when
        no pixel can be scored."""

    def score_video(self, preds: Mapping[str, np.ndarray], gt: Any, mask: np.ndarray | None = None,
                    **options: Any) -> tuple[dict[str, float], Any]:
        """Per-sequence metrics of a video prediction ``preds`` (target name -> ``[T, h, w, ...]``, any frame size)
        against the ground truth ``gt`` (``[T, H, W, ...]``) over the bool ``[T, H, W]`` ``mask``, with one
        alignment for the whole sequence where the task aligns (``options``: the video benchmark's protocol).
        Returns ``(metrics, aux)`` like :meth:`score`. Default: not defined (:class:`TaskError`)."""
        raise TaskError(f"{self.name}: video evaluation is not defined for this task")

    def main_metric_key(self) -> str:
        """The per-image metric of the evaluation histogram (:attr:`validation_metric`, of the first target)."""
        key = self.validation_metric
        return f"{self.target_names[0]}/{key}" if self.per_target_metrics else key

    def error_map(self, gt: Any, mask: np.ndarray, preds: Mapping[str, np.ndarray], aux: Any) -> ErrorMap:
        """Per-pixel error of the first target for the evaluation plots (default: mean absolute error)."""
        name = self.target_names[0]
        g = as_target_dict(gt, self.target_names)[name]
        pred = resize_prediction(preds[name], np.shape(g)[:2])
        err = np.abs(pred - g)
        err = err.mean(axis=-1) if err.ndim == 3 else err
        return ErrorMap(err, f"{name} absolute error", np.clip(pred, 0, 1))

    # -- folder evaluation ----------------------------------------------------------------------------------------
    @classmethod
    def for_ground_truth_folder(cls, gt_dir: Path) -> Task:
        """The task configured for folder-mode scoring against the ground truth in ``gt_dir`` (default: its
        default targets); raises ``ValueError`` when the folder does not fit the task's layout."""
        return cls()

    @classmethod
    def for_folders(cls, gt_dir: Path, pred_dir: Path) -> Task:
        """The task configured for folder-mode scoring of the predictions in ``pred_dir`` against the ground truth
        in ``gt_dir`` (default: :meth:`for_ground_truth_folder`; depth reads disparity files as disparity)."""
        return cls.for_ground_truth_folder(gt_dir)

    def evaluation_alignment(self, alignment: str | None) -> str | None:
        """The alignment a benchmark's protocol ``alignment`` means for this model (default: as it is; a
        disparity model fits the depth benchmarks' least squares in disparity space)."""
        return alignment

    def ground_truth_file(self, gt_dir: Path, target: str, stem: str) -> Path:
        """Where folder mode reads the ground truth of ``target`` for ``stem`` (default ``GT/<stem>.npy``)."""
        return Path(gt_dir) / f"{stem}.npy"

    def check_folder_pair(self, target: str, gt: np.ndarray, pred: np.ndarray) -> None:
        """Raise ``ValueError`` when a folder-mode ground truth / prediction pair has the wrong layout (default:
        ``H x W`` for one channel, ``H x W x C`` otherwise, for both)."""
        pattern = "H W" if self.channels == 1 else f"H W {self.channels}"
        for what, arr in (("ground truth", gt), ("prediction", pred)):
            if not shape_matches(arr, pattern):
                raise ValueError(f"{target}: {what} must be {pattern.replace(' ', 'x')}, got {arr.shape}")

    def folder_protocol(self, targets: Sequence[str], options: Mapping[str, Any]) -> dict[str, Any]:
        """The :meth:`score` options of folder mode, from the command line's evaluation ``options``
        (``alignment``, ``min_depth``, ``max_depth``, ``up_to_scale``; each task takes what applies to it);
        raises ``ValueError`` for values that do not fit. Default: none."""
        return {}

    def folder_settings(self, targets: Sequence[str], protocol: Mapping[str, Any]) -> dict[str, Any]:
        """What the folder-mode report records of ``protocol`` under ``settings`` (default: all of it)."""
        return dict(protocol)

    # -- files ----------------------------------------------------------------------------------------------------
    @staticmethod
    def array_file(stem: str, target: str) -> str:
        """The float32 array file of one predicted target: ``<stem>_<target>.npy``."""
        return f"{stem}_{target}.npy"

    def output_files(self, stem: str, with_uncertainty: bool) -> list[str]:
        """The file names ``marigold predict`` writes for one input: per target ``<stem>_<target>.npy`` and its
        :attr:`image_suffixes`, plus ``_uncertainty.npy`` / ``_uncertainty.png`` when ensembling."""
        names: list[str] = []
        for t in self.target_names:
            names += [self.array_file(stem, t)] + [f"{stem}_{t}{s}" for s in self.image_suffixes]
            if with_uncertainty:
                names += [f"{stem}_{t}_uncertainty.npy", f"{stem}_{t}_uncertainty.png"]
        return names

    def target_images(self, target: str, array: np.ndarray) -> dict[str, np.ndarray]:
        """The images written next to a target's array, by suffix (:attr:`image_suffixes`): uint8 RGB or uint16
        grey arrays. Default: the visualisation as ``.png``."""
        return {".png": self.visualize(target, array)}

    def write_outputs(self, out_dir: str | Path, stem: str, output: Any) -> list[Path]:
        """Write every file of :meth:`output_files` for ``output`` (a
        :class:`~marigold_toolkit.pipeline.outputs.MarigoldOutput`) atomically; returns the paths."""
        out_dir = Path(out_dir)
        written = []
        for name, arr in output.targets.items():
            path = out_dir / self.array_file(stem, name)
            save_npy(path, arr)
            written.append(path)
            for suffix, image in self.target_images(name, arr).items():
                path = out_dir / f"{stem}_{name}{suffix}"
                save_png(path, image)
                written.append(path)
            if output.uncertainty is not None:
                unc = output.uncertainty[name]
                base = out_dir / f"{stem}_{name}_uncertainty"
                save_npy(base.with_name(base.name + ".npy"), unc)
                save_png(base.with_name(base.name + ".png"), uncertainty_heatmap(unc))
                written += [base.with_name(base.name + ".npy"), base.with_name(base.name + ".png")]
        return written

    def extra_files(self, stem: str, options: Mapping[str, Any]) -> list[str]:
        """The extra files ``marigold predict`` options (``options``: the flags named in
        :attr:`extra_options`, e.g. ``export``, ``sparse_depth``) make this task write for input ``stem``
        (default: none)."""
        return []

    def extra_options_problem(self, options: Mapping[str, Any]) -> str | None:
        """A one-line usage problem of the extra-output ``options`` for this model (checked before any input is
        read, e.g. a conversion the prediction does not allow), or ``None`` (default)."""
        return None

    def write_extras(self, out_dir: str | Path, stem: str, output: Any, options: Mapping[str, Any],
                     context: Any) -> list[Path]:
        """Write :meth:`extra_files` for ``output``; ``context`` holds the input image, its path and the outputs
        of the other models run on it (:class:`ImageContext`)."""
        return []

    def visualize(self, target: str, array: np.ndarray) -> np.ndarray:
        """A target as a uint8 RGB image ``[H, W, 3]`` (default: values in [0, 1] as grey or RGB)."""
        x = np.asarray(array, dtype=np.float32)
        if x.ndim == 2:
            x = np.repeat(x[..., None], 3, axis=2)
        return (np.clip(x[..., :3], 0.0, 1.0) * 255).astype(np.uint8)


def _batch_mask(batch: Mapping[str, Any], device: torch.device) -> torch.Tensor | None:
    """``[B, H, W]`` bool valid mask of a training micro-batch on ``device``, or ``None``."""
    mask = batch.get("valid_mask")
    return mask.to(device)[:, 0] if torch.is_tensor(mask) else None


def _sample_mask(sample: Mapping[str, Any]) -> np.ndarray | None:
    """``[H, W]`` bool valid mask of one training sample, or ``None``."""
    mask = sample.get("valid_mask")
    return mask[0].numpy().astype(bool) if torch.is_tensor(mask) else None


__all__ = ["Task", "TaskError", "ErrorMap", "ImageContext", "ensemble_pixelwise", "reduce_members", "chw_to_hwc", "as_target_dict"]

"""Depth: affine-invariant depth in [0, 1] (0 = near, 1 = far), or disparity (1 = near, 0 = far), one VAE latent
repeated over RGB.

Checkpoints: ``MarigoldDepthPipeline`` (and the legacy ``MarigoldPipeline``), ``model_index.json`` fields
``prediction_type`` (``depth`` or ``disparity``: the prediction space, :mod:`.spaces`) and ``scale_invariant`` /
``shift_invariant``. A disparity model's target is named ``disparity`` (``<stem>_disparity.npy``,
``out.targets["disparity"]``); its ground truth is still depth in metres.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ...core.arrays import ArrayLike
from ...core.arrays import quantile as quantiles
from ...core.augment import draw_flip
from ...core.checks import check_shape, shape_matches
from ...core.image import hflip, resize_prediction, resize_raster, rgb_uint8_to_tensor, to_chw
from ...io.dataset_files import DataSource, read_exr_rgb, read_npy, read_png_depth
from ...io.files import quantize_uint16
from ...visualize import apply_colormap
from ..base import ErrorMap, Task, TaskError, _batch_mask, _sample_mask
from ..registry import register_task
from .alignment import align_depth, align_depth_least_squares
from .ensemble import ENSEMBLE_METHODS, ensemble_depth
from .export import conversion_problem, extra_file_names, write_depth_extras
from .metrics import DEPTH_METRIC_KEYS, depth_metrics
from .spaces import PREDICTION_SPACES, to_depth_order
from .temporal import sequence_metrics


# -- visualisation ----------------------------------------------------------------------------------------------
def colorize_depth(depth: np.ndarray, cmap: str = "Spectral", vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """``[H, W]`` depth -> uint8 RGB ``[H, W, 3]`` with matplotlib's ``cmap`` (Spectral: near red, far blue)."""
    depth = np.asarray(depth, dtype=np.float32)
    check_shape(depth, "H W", "depth")
    if vmax <= vmin:
        raise ValueError(f"invalid range [{vmin}, {vmax}]")
    return apply_colormap((depth - vmin) / (vmax - vmin), cmap)


def depth_to_uint16(depth: np.ndarray) -> np.ndarray:
    """``[H, W]`` depth in [0, 1] -> uint16 (x 65535), as the authors' 16-bit PNG export.

    >>> depth_to_uint16(np.array([[0.0, 0.5, 1.0]])).tolist()
    [[0, 32767, 65535]]
    """
    depth = np.asarray(depth, dtype=np.float32)
    check_shape(depth, "H W", "depth")
    return quantize_uint16(depth, (0.0, 1.0))


# -- ground truth -----------------------------------------------------------------------------------------------
def depth_range_mask(depth: ArrayLike, min_depth: float, max_depth: float) -> ArrayLike:
    """``(depth > min_depth) & (depth < max_depth)``, both strict; NaN is invalid (numpy or torch).

    >>> depth_range_mask(np.array([0.0, 1.0, np.nan, 5.0]), 0.0, 5.0).tolist()
    [False, True, False, False]
    """
    return (depth > min_depth) & (depth < max_depth)


def normalize_depth(
    depth: torch.Tensor,
    valid_mask: torch.Tensor | None = None,
    quantile: float = 0.02,
    clip: bool = True,
    invalid_value: float | None = None,
) -> torch.Tensor:
    """Per-image scale/shift normalisation of linear depth to [-1, 1] (the authors' ``ScaleShiftDepthNormalizer``).

    For each image, over its valid pixels (``valid_mask & isfinite(depth) & (depth > 0)``, as the authors'
    ``mask & (depth > 0)`` plus a finiteness guard): ``lo, hi`` = the ``q`` and ``1 - q`` quantiles and
    ``d' = (d - lo) / (hi - lo) * 2 - 1``, clipped to [-1, 1] when ``clip``. Near = -1, far = +1 (depth, not
    disparity).

    Invalid pixels: with ``invalid_value=None`` (default, the authors' behaviour) they go through the same
    affine map and clipping as valid ones, so the usual invalid depth 0 becomes -1 and a too-far/inf depth +1;
    NaN depth becomes -1. Their latent cells are excluded by
    :func:`~marigold_toolkit.training.loss.latent_valid_mask` anyway, but the values still enter the VAE. With a
    number, invalid pixels are set to that value instead.

    Degenerate images (no valid pixel, one valid pixel, or ``hi == lo``, e.g. constant depth) have no relative
    depth: all their pixels become 0 (then ``invalid_value`` applies to invalid ones). No NaN or inf is
    produced.

    Args:
        depth: ``[B, 1, H, W]`` linear depth (metres or any unit).
        valid_mask: ``[B, 1, H, W]`` (bool, or nonzero = valid); ``None`` = all pixels with finite depth > 0.
        quantile: lower quantile ``q`` (upper is ``1 - q``); 0 gives min/max.
        clip: clip to [-1, 1] (``True`` in every Marigold config).
        invalid_value: ``None`` (authors' behaviour, see above) or the value given to invalid pixels.

    Returns:
        ``[B, 1, H, W]`` float32 (float64 for float64 input).
    """
    check_shape(depth, "B 1 H W", "depth")
    if not 0.0 <= quantile < 0.5:
        raise ValueError(f"quantile must be in [0, 0.5), got {quantile}")
    d = depth if depth.dtype == torch.float64 else depth.to(torch.float32)
    valid = torch.isfinite(d) & (d > 0)
    if valid_mask is not None:
        if valid_mask.shape != depth.shape:
            raise ValueError(f"valid_mask {tuple(valid_mask.shape)} must match depth {tuple(depth.shape)}")
        valid &= valid_mask.to(d.device) != 0
    q = torch.tensor([quantile, 1.0 - quantile], dtype=d.dtype, device=d.device)
    out = torch.zeros_like(d)
    for i in range(d.shape[0]):
        vals = d[i][valid[i]]
        if vals.numel() < 2:
            continue  # degenerate: stays 0
        lo, hi = quantiles(vals, q)
        scale = hi - lo
        ok = scale > 0
        mapped = (d[i] - lo) / torch.where(ok, scale, torch.ones_like(scale)) * 2.0 - 1.0
        out[i] = torch.where(ok, mapped, torch.zeros_like(mapped))
    if clip:
        out = out.clamp(-1.0, 1.0)
    out = torch.nan_to_num(out, nan=-1.0, posinf=1.0, neginf=-1.0)
    if invalid_value is not None:
        out = torch.where(valid, out, torch.full_like(out, float(invalid_value)))
    return out


def read_depth_file(source: DataSource, rel_path: str) -> np.ndarray:
    """Depth of the folder training layout -> float32 ``[H, W]`` metres: ``.npy`` in metres (``[H, W]``, or with
    a singleton channel), ``.png`` 16-bit grey in millimetres, ``.exr`` in metres (first channel)."""
    if rel_path.endswith(".npy"):
        depth = np.asarray(read_npy(source, rel_path))
        if depth.ndim == 3 and 1 in (depth.shape[0], depth.shape[2]):
            depth = np.squeeze(depth)
        if not np.issubdtype(depth.dtype, np.number):
            raise ValueError(f"depth has dtype {depth.dtype}")
        return depth.astype(np.float32)
    if rel_path.endswith(".png"):
        with source.open(rel_path) as f, Image.open(f) as img:
            mode = img.mode
        if mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            raise ValueError(f"depth PNG must be 16-bit grey (millimetres), got PIL mode {mode}")
        return read_png_depth(source, rel_path, 1000.0)
    return np.asarray(read_exr_rgb(source, rel_path))[..., 0].astype(np.float32)


def depth_to_disparity(depth: torch.Tensor) -> torch.Tensor:
    """``1 / d`` where ``d`` is finite and positive, 0 elsewhere (invalid stays invalid for :func:`normalize_depth`,
    which counts only positive values).

    >>> depth_to_disparity(torch.tensor([2.0, 0.0, float("inf"), float("nan")])).tolist()
    [0.5, 0.0, 0.0, 0.0]
    """
    ok = torch.isfinite(depth) & (depth > 0)
    return torch.where(ok, 1.0 / torch.where(ok, depth, torch.ones_like(depth)), torch.zeros_like(depth))


def _gt_depth(gt: Any) -> Any:
    """The ground-truth depth of a sample: the array itself, or the ``depth`` (else only) entry of a mapping."""
    if isinstance(gt, Mapping):
        if "depth" in gt:
            return gt["depth"]
        if len(gt) == 1:
            return next(iter(gt.values()))
        raise TaskError(f"depth ground truth: expected an array or a mapping with 'depth', got keys {sorted(gt)}")
    return gt


# -- end-to-end loss ----------------------------------------------------------------------------------------------
def affine_invariant_l1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 after a per-image least-squares scale and shift of ``pred`` to ``gt`` over ``mask`` (``[B, H, W]``).

    The fit is solved in closed form without gradient, as in E2E-FT's scale-and-shift-invariant loss.
    """
    losses = []
    for p, g, m in zip(pred, gt, mask):
        pv, gv = p[m], g[m]
        if pv.numel() < 2:
            continue
        with torch.no_grad():
            a = torch.stack([pv, torch.ones_like(pv)], dim=1).double()
            sol = torch.linalg.lstsq(a, gv.double()[:, None]).solution[:, 0].to(pv)
        losses.append((pv * sol[0] + sol[1] - gv).abs().mean())
    return torch.stack(losses).mean() if losses else pred.sum() * 0


@register_task
class DepthTask(Task):
    """Affine-invariant depth (or, with ``scale_invariant=False``, metric depth merged without alignment), in the
    prediction space ``prediction_space``: ``"depth"`` (default) or ``"disparity"`` (inverse depth; the target is
    then named ``disparity``, training targets are the normalised inverse depth, and scoring, tiling, the metric
    fit and the 3D export read the prediction as disparity)."""

    name = "depth"
    pipeline_classes = ("MarigoldDepthPipeline", "MarigoldPipeline", "RollingDepthPipeline")
    prediction_types = PREDICTION_SPACES
    index_fields = ("scale_invariant", "shift_invariant")
    channels = 1
    reductions = ("median", "mean")
    ensembling_methods = ENSEMBLE_METHODS
    # continuous in the members, so half precision moves an ensemble by as little as it moves one member
    fast_ensembling_method = "least-squares"
    metric_keys = DEPTH_METRIC_KEYS
    report_keys = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3")
    validation_metric = "abs_rel"
    target_file_extensions = (".npy", ".png", ".exr")
    training_option_names = ("min_depth", "max_depth")
    image_suffixes = (".png", "_colored.png")
    supports_video = True
    video_report_keys = ("abs_rel", "delta1", "tae")
    extra_options = ("export", "sparse_depth", "output_space")

    def __init__(self, target_names: Sequence[str] | None = None, scale_invariant: bool = True,
                 shift_invariant: bool = True, prediction_space: str = "depth"):
        if prediction_space not in PREDICTION_SPACES:
            raise TaskError(f"depth: prediction space {prediction_space!r} is not one of "
                            f"{', '.join(PREDICTION_SPACES)}")
        super().__init__([prediction_space] if target_names is None else target_names)
        if self.target_names != [prediction_space]:
            raise TaskError(f"depth: a {prediction_space} model's target is [{prediction_space}], got "
                            f"{self.target_names}")
        self.prediction_space = prediction_space
        self.scale_invariant = bool(scale_invariant)
        self.shift_invariant = bool(shift_invariant)

    def __repr__(self) -> str:
        return (f"DepthTask(prediction_space={self.prediction_space!r}, scale_invariant={self.scale_invariant}, "
                f"shift_invariant={self.shift_invariant})")

    @property
    def predicts_disparity(self) -> bool:
        """Whether the prediction is a disparity (inverse depth) rather than a depth."""
        return self.prediction_space == "disparity"

    @property
    def own_alignment(self) -> str:
        """Least squares in the prediction's own space: ``least_squares`` (depth) or ``least_squares_disparity``."""
        return "least_squares" if self.prediction_space == "depth" else "least_squares_disparity"

    # -- checkpoint
    @classmethod
    def from_model_index(cls, index: Mapping[str, Any], where: str = "model_index.json") -> DepthTask:
        """Invariances and ``prediction_type`` (absent: ``depth``, as the legacy and E2E-FT layouts; ``disparity``
        for RollingDepth's layout, whose model predicts inverse depth and whose index names no prediction type)."""
        implied = "disparity" if index.get("_class_name") == "RollingDepthPipeline" else "depth"
        space = index.get("prediction_type") or implied
        if space not in PREDICTION_SPACES:
            raise TaskError(f"{where}: prediction_type {space!r} is not a depth prediction space "
                            f"({', '.join(PREDICTION_SPACES)})")
        return cls(scale_invariant=bool(index.get("scale_invariant", True)),
                   shift_invariant=bool(index.get("shift_invariant", True)), prediction_space=space)

    def model_index_fields(self) -> dict[str, Any]:
        return {"prediction_type": self.prediction_space, "scale_invariant": self.scale_invariant,
                "shift_invariant": self.shift_invariant}

    @classmethod
    def check_targets(cls, targets: Sequence[str]) -> None:
        """``[depth]`` (the ground truth; the prediction space comes from ``prediction_type``) or ``[disparity]``."""
        if list(targets) not in ([s] for s in PREDICTION_SPACES):
            raise TaskError(f"targets must be [depth] (or [disparity]) for task depth, got {list(targets)}")

    @classmethod
    def from_config(cls, targets: Sequence[str], pipeline: Mapping[str, Any]) -> DepthTask:
        """``pipeline.prediction_type`` (``depth`` | ``disparity``; default: ``disparity`` for targets
        ``[disparity]``, else ``depth``), ``scale_invariant``, ``shift_invariant``."""
        cls.check_targets(targets)
        space = pipeline.get("prediction_type") or next(iter(targets))
        if space not in PREDICTION_SPACES:
            raise TaskError(f"pipeline.prediction_type {space!r} is not one of {', '.join(PREDICTION_SPACES)}")
        if list(targets) == ["disparity"] and space != "disparity":
            raise TaskError(f"targets [disparity] but pipeline.prediction_type {space!r}")
        return cls(None, pipeline.get("scale_invariant", True), pipeline.get("shift_invariant", True),
                   prediction_space=space)

    # -- codec
    def decode(self, image: torch.Tensor) -> torch.Tensor:
        """Mean over the 3 decoded channels, clipped to [-1, 1], mapped to [0, 1]: ``[B,3,H,W] -> [B,1,H,W]``."""
        depth = image.mean(dim=1, keepdim=True).clip(-1.0, 1.0)
        return (depth + 1.0) / 2.0

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """Normalised depth ``[B, 1, H, W]`` in [-1, 1] -> 3-channel VAE input."""
        check_shape(target, "B 1 H W", "depth target")
        return target.clip(-1.0, 1.0).repeat(1, 3, 1, 1)

    deviation_key = "absrel"

    def deviation(self, pred: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
        """AbsRel between two depth predictions in [0, 1], ``mean(|pred - ref| / max(ref, 1e-3))`` (the floor keeps
        the near plane, where ``ref`` is 0, from dividing by zero), with the mean and max absolute difference."""
        out = super().deviation(pred, ref)
        p, r = pred.double(), ref.double()
        out["absrel"] = float(((p - r).abs() / r.abs().clamp(min=1e-3)).mean())
        return out

    # -- ensembling
    def ensemble(self, members: torch.Tensor, output_uncertainty: bool, **kwargs: Any):
        """Affine alignment (BFGS, or ``method="least-squares"``) and median of the members
        (:func:`~.ensemble.ensemble_depth`); ``kwargs``: ``reduction``, ``regularizer_strength``, ``max_iter``,
        ``tol``, ``max_res``, ``method``."""
        self.check_reduction(kwargs.get("reduction", "median"))
        return ensemble_depth(members[:, 0], self.scale_invariant, self.shift_invariant, output_uncertainty,
                              **kwargs)

    # -- high-resolution tiling
    def align_tile(self, target: str, tile: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
        """Least-squares scale and shift (scale only for a scale-invariant model) of the tile's depth to the global
        prediction over the tile (:func:`~.alignment.align_depth_least_squares`). A fit that flips or flattens the tile (scale <= 0,
        e.g. a constant tile) keeps the global prediction there."""
        if not self.scale_invariant and not self.shift_invariant:
            return tile, 1.0  # metric depth: tiles need no alignment
        if self.shift_invariant:
            aligned, scale, _ = align_depth_least_squares(tile, reference, np.ones(tile.shape, dtype=bool))
        else:  # scale only
            t64 = np.asarray(tile, dtype=np.float64)
            scale = float((t64 * reference).sum() / max((t64 * t64).sum(), 1e-12))
            aligned = (t64 * scale).astype(np.float32)
        if not (np.isfinite(scale) and scale > 0):
            return np.asarray(reference, dtype=np.float32).copy(), 0.0
        return aligned, scale

    # -- training
    def training_targets(self, batch, valid_mask, device):
        """The ground-truth depth (``batch["depth"]``, metres) in the prediction space, normalised per image to
        [-1, 1] by its 2 %/98 % quantiles over the valid pixels (:func:`normalize_depth`): depth, or for a
        disparity model the inverse depth (:func:`depth_to_disparity`; near = +1)."""
        depth = batch["depth"].to(device)
        values = depth if self.prediction_space == "depth" else depth_to_disparity(depth)
        return {self.target_names[0]: normalize_depth(values, valid_mask)}

    def e2e_loss(self, decoded: torch.Tensor, batch: Mapping[str, Any], device: torch.device) -> torch.Tensor:
        """Affine-invariant L1 (:func:`affine_invariant_l1`) over the valid pixels with positive depth, against
        the depth or (disparity model) the inverse depth."""
        gt = batch["depth"].to(device)[:, 0]
        mask = _batch_mask(batch, device)
        valid = (gt > 0) if mask is None else (mask & (gt > 0))
        if self.prediction_space == "disparity":
            gt = depth_to_disparity(gt)
        return affine_invariant_l1(decoded[:, 0, 0], gt, valid)

    def validation_score(self, targets: Mapping[str, np.ndarray], sample: Mapping[str, Any]) -> float:
        """AbsRel after least-squares alignment in the prediction's own space, clipped to the sample's own depth
        range."""
        gt = sample["depth"][0].numpy()
        mask = _sample_mask(sample)
        m = mask if mask is not None else gt > 0
        lo = float(gt[m].min()) if m.any() else 1e-6
        hi = float(gt[m].max()) if m.any() else math.inf
        metrics, _ = self.score(targets, gt, m, alignment=self.own_alignment, min_depth=max(lo, 1e-6),
                                max_depth=hi)
        return metrics["abs_rel"]

    def read_target_file(self, source: DataSource, rel_path: str, target: str) -> np.ndarray:
        return read_depth_file(source, rel_path)

    def training_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        opts = super().training_options(options)
        lo, hi = float(opts.get("min_depth", 0.0)), float(opts.get("max_depth", math.inf))
        if not hi > lo:
            raise TaskError(f"max_depth {hi} must be larger than min_depth {lo}")
        return {"min_depth": lo, "max_depth": hi}

    def training_sample(self, rgb: np.ndarray, targets: Mapping[str, np.ndarray], mask: torch.Tensor | None,
                        rng: np.random.Generator, augment: bool, resize: tuple[int, int] | None,
                        min_depth: float = 0.0, max_depth: float = math.inf) -> dict[str, Any]:
        """Depth in metres (invalid pixels keep their stored value); horizontal flip; image and depth resized
        with nearest-exact (as the authors); ``valid_mask`` = ``mask`` and ``min_depth < d < max_depth``."""
        sample: dict[str, Any] = {"rgb": rgb_uint8_to_tensor(rgb), "depth": to_chw(targets["depth"])}
        if mask is not None:
            sample["valid_mask"] = mask
        if augment and draw_flip(rng):
            sample = hflip(sample)
        sample["rgb"] = resize_raster(sample["rgb"], resize, "nearest-exact")
        sample["depth"] = resize_raster(sample["depth"], resize, "nearest-exact")
        valid = depth_range_mask(sample["depth"], min_depth, max_depth)
        if mask is not None:
            valid = resize_raster(sample["valid_mask"], resize, "nearest-exact") & valid
        sample["valid_mask"] = valid
        return sample

    # -- scoring
    def score(self, preds: Mapping[str, np.ndarray], gt: Any, mask: np.ndarray | None = None,
              alignment: str | None = "least_squares", min_depth: float | None = None,
              max_depth: float | None = None, max_res: int | None = None) -> tuple[dict[str, float], np.ndarray]:
        """The authors' order: resize the prediction to the ground truth (bilinear, antialiased) -> align
        (``alignment``; fit at most at ``max_res``) -> clip to ``[min_depth, max_depth]`` (default
        ``[1e-6, inf]``) -> metrics over ``mask``. Without a mask the valid pixels are the finite ground truth in
        ``(min_depth or 0, max_depth or inf)``. ``aux`` is the aligned prediction (depth).

        ``gt`` is depth in metres (the array, or a mapping holding it) whatever the prediction space;
        ``alignment`` names the space of the fit, whatever the model predicts (``least_squares_disparity`` reads
        the prediction as disparity; :attr:`own_alignment` is the model's own)."""
        g = np.asarray(_gt_depth(gt), dtype=np.float32)
        if mask is None:
            mask = np.isfinite(g) & depth_range_mask(np.nan_to_num(g, nan=0.0), min_depth or 0.0,
                                                     math.inf if max_depth is None else max_depth)
        g = np.nan_to_num(g, nan=0.0)
        lo = 1e-6 if min_depth is None else min_depth
        hi = math.inf if max_depth is None else max_depth
        pred = resize_prediction(preds[self.target_names[0]], g.shape[:2])
        if pred.ndim == 3:
            pred = pred.mean(axis=2)
        aligned = np.asarray(align_depth(pred, g, mask, alignment, lo, hi, max_res=max_res), dtype=np.float32)
        return depth_metrics(aligned, g, mask), aligned

    def score_video(self, preds: Mapping[str, np.ndarray], gt: Any, mask: np.ndarray | None = None,
                    alignment: str | None = "least_squares", min_depth: float | None = None,
                    max_depth: float | None = None, intrinsics: np.ndarray | None = None,
                    poses: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
        """A depth video ``[T, h, w]`` (each frame resized to the ground truth like :meth:`score`) against the
        depth ``gt [T, H, W]`` in metres: one ``alignment`` fit for the whole sequence, clip to
        ``[min_depth, max_depth]``, metrics per frame averaged over the frames, TAE with ``intrinsics`` and
        camera-to-world ``poses`` (:func:`~.temporal.sequence_metrics`). Without a mask the valid pixels are the
        finite ground truth in ``(min_depth or 0, max_depth or inf)``. ``aux`` is the aligned depth video."""
        g = np.asarray(_gt_depth(gt), dtype=np.float32)
        check_shape(g, "T H W", "ground-truth depth video")
        pred = np.asarray(preds[self.target_names[0]], dtype=np.float32)
        if pred.ndim != 3 or pred.shape[0] != g.shape[0]:
            raise ValueError(f"prediction {pred.shape} is not a video of the ground truth's {g.shape[0]} frames")
        if pred.shape[1:] != g.shape[1:]:
            pred = np.stack([resize_prediction(f, g.shape[1:]) for f in pred])
        if mask is None:
            mask = np.isfinite(g) & depth_range_mask(np.nan_to_num(g, nan=0.0), min_depth or 0.0,
                                                     math.inf if max_depth is None else max_depth)
        return sequence_metrics(pred, g, mask, alignment, min_depth, max_depth, intrinsics, poses)

    def error_map(self, gt: Any, mask: np.ndarray, preds: Mapping[str, np.ndarray], aux: Any) -> ErrorMap:
        g = _gt_depth(gt)
        err = np.where(mask, np.abs(aux - g) / np.maximum(g, 1e-6), np.nan)
        return ErrorMap(err, "absolute relative error", aux, "prediction (aligned)")

    # -- folder evaluation
    def check_folder_pair(self, target: str, gt: np.ndarray, pred: np.ndarray) -> None:
        if not shape_matches(gt, "H W"):
            raise ValueError(f"ground truth must be HxW, got {gt.shape}")

    @classmethod
    def for_folders(cls, gt_dir, pred_dir) -> DepthTask:
        """A disparity scorer when ``pred_dir`` holds ``<stem>_disparity.npy`` files and no ``<stem>_depth.npy``
        (e.g. a disparity model's ``marigold predict`` output), else the depth scorer."""
        names = [p.name for p in Path(pred_dir).glob("*.npy")]
        if not any(n.endswith("_depth.npy") for n in names) and any(n.endswith("_disparity.npy") for n in names):
            return cls(prediction_space="disparity")
        return cls.for_ground_truth_folder(gt_dir)

    def folder_protocol(self, targets: Sequence[str], options: Mapping[str, Any]) -> dict[str, Any]:
        """Alignment (default: least squares in the prediction's own space) and the depth range."""
        lo, hi = options.get("min_depth"), options.get("max_depth")
        if lo is not None and hi is not None and hi <= lo:
            raise ValueError(f"--max-depth {hi} must be larger than --min-depth {lo}")
        return {"alignment": options.get("alignment") or self.own_alignment, "min_depth": lo, "max_depth": hi}

    def evaluation_alignment(self, alignment: str | None) -> str | None:
        """A depth benchmark's least-squares protocol fits in depth space, written for depth models; a disparity
        model is fitted in its own space (``least_squares`` -> ``least_squares_disparity``)."""
        if self.prediction_space == "disparity" and alignment in ("least_squares", "least_square"):
            return "least_squares_disparity"
        return alignment

    # -- files
    def extra_files(self, stem: str, options: Mapping[str, Any]) -> list[str]:
        """``--sparse-depth`` -> ``<stem>_depth_metric.npy|json``; ``--output-space`` (the other space) ->
        ``<stem>_<space>.npy|.png|_colored.png``; ``--export ply,glb,exr`` -> ``<stem>_points.ply``,
        ``<stem>_mesh.glb``, ``<stem>_depth.exr`` (``<stem>_<target>.exr`` without a metric fit) (:mod:`.export`)."""
        return extra_file_names(stem, self.target_names[0], options, self.prediction_space)

    def extra_options_problem(self, options: Mapping[str, Any]) -> str | None:
        """``--output-space`` of an affine-invariant prediction without ``--sparse-depth`` (the shift is unknown;
        :func:`~.export.conversion_problem`)."""
        try:
            return conversion_problem(self.prediction_space, self.shift_invariant, options)
        except ValueError as exc:
            return str(exc)

    def write_extras(self, out_dir, stem: str, output: Any, options: Mapping[str, Any], context: Any) -> list:
        name = self.target_names[0]
        return write_depth_extras(out_dir, stem, name, output.targets[name], options, context,
                                  space=self.prediction_space, shift_invariant=self.shift_invariant,
                                  images=self.target_images)

    def target_images(self, target: str, array: np.ndarray) -> dict[str, np.ndarray]:
        """``<stem>_<target>.png`` (16-bit, x 65535, the values as they are) and ``<stem>_<target>_colored.png``
        (Spectral, near red: a disparity's colour map is reversed); ``target`` is ``depth`` or ``disparity``."""
        return {".png": depth_to_uint16(array), "_colored.png": self.visualize(target, array)}

    def visualize(self, target: str, array: np.ndarray) -> np.ndarray:
        """Spectral, near red, for a depth or a disparity (``target`` names the space)."""
        space = target if target in PREDICTION_SPACES else self.prediction_space
        return colorize_depth(to_depth_order(array, space))

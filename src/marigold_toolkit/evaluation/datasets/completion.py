"""Depth-completion benchmarks of Marigold-DC, in the layout the authors' ``script/dataset_processing.py`` writes
(prs-eth/Marigold-DC, ``DATASETS.md``)::

    <root>/rgb/<name>.png          the input image
    <root>/sparse/<name>.npy       H x W float sparse depth in metres, 0 = no point (the guidance)
    <root>/gt/<name>.npy           H x W float ground-truth depth in metres, 0 = invalid
    <root>/intrinsics/<name>.txt   camera intrinsics (not used for scoring)

Samples are the ``gt/*.npy`` names in sorted order (the authors' evaluation pairs sorted file lists); ``split=``
may name a text file listing names instead. Scoring is the ``depth_completion`` task's: MAE and RMSE in metres over
``gt > 0``, per image, averaged. Inference completes each image's sparse depth with the depth model
(:func:`~marigold_toolkit.pipeline.completion.complete_depth`) with the authors' settings: 50 DDIM steps
(trailing), ensemble 10, seed 2024, native resolution except NYUv2 and DDAD at 768.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np

from ...io.dataset_files import SplitEntry, read_npy, read_rgb_uint8
from ...pipeline.completion import complete_depth
from ...tasks.depth.completion import METRIC_TARGET
from .base import Benchmark, EvalSample, InferenceDefaults

_RGB_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _defaults(res: int) -> InferenceDefaults:
    return InferenceDefaults(processing_resolution=res, num_inference_steps=50, ensemble_size=10, seed=2024)


class DepthCompletionBenchmark(Benchmark):
    """A Marigold-DC evaluation set in the authors' processed layout (module docstring)."""

    task = "depth_completion"
    model_task = "depth"
    alignment = "none"
    min_columns = 1
    task_ensembling = False  # the members are metric depths, merged by their median
    #: sparse points per image in the authors' preprocessing (documentation; the files hold them)
    points: int | None = None

    def read_split(self, path: Path) -> list[SplitEntry]:
        if Path(path).is_file():
            return super().read_split(path)
        gt = self.root / "gt"
        if not gt.is_dir():
            raise FileNotFoundError(f"{gt}: benchmark '{self.name}' needs rgb/, sparse/ and gt/ folders under "
                                    f"{self.root} (the layout of the Marigold-DC authors' dataset_processing.py)")
        names = sorted(p.stem for p in gt.glob("*.npy"))
        if not names:
            raise FileNotFoundError(f"{gt}: no ground-truth .npy files for benchmark '{self.name}'")
        return [SplitEntry(n, (n,), i + 1) for i, n in enumerate(names)]

    def parse_line(self, cols, line_no):
        name = Path(cols[0]).stem
        return SplitEntry(name, (name,), line_no)

    def _rgb_path(self, name: str) -> str:
        for ext in _RGB_EXTENSIONS:
            if (self.root / "rgb" / f"{name}{ext}").is_file():
                return f"rgb/{name}{ext}"
        raise FileNotFoundError(f"{self.root / 'rgb' / name}.png: no image for sample {name!r}")

    def load(self, entry: SplitEntry) -> EvalSample:
        name = entry.paths[0]
        rgb = read_rgb_uint8(self.source, self._rgb_path(name))
        gt = np.squeeze(np.asarray(read_npy(self.source, f"gt/{name}.npy"))).astype(np.float32)
        sparse = np.squeeze(np.asarray(read_npy(self.source, f"sparse/{name}.npy"))).astype(np.float32)
        for what, arr in (("ground truth", gt), ("sparse depth", sparse)):
            if arr.shape != rgb.shape[:2]:
                raise ValueError(f"{self.name} sample {name}: {what} is {arr.shape} but the image is "
                                 f"{rgb.shape[0]}x{rgb.shape[1]}")
        valid = np.isfinite(gt) & (gt > 0)
        return EvalSample(stem=name, rgb=rgb, gt={METRIC_TARGET: np.where(valid, gt, 0.0).astype(np.float32)},
                          valid_mask=valid, meta={"sparse": np.nan_to_num(sparse, nan=0.0), "line": entry.line_no})

    def predict(self, predictor, sample: EvalSample, settings) -> dict[str, np.ndarray]:
        """Marigold-DC with the sample's sparse depth."""
        out = complete_depth(predictor, sample.rgb, sample.meta["sparse"], settings.num_inference_steps or 50,
                             settings.ensemble_size, settings.processing_resolution, seed=settings.seed)
        return {METRIC_TARGET: out.depth}


class NYUv2DC(DepthCompletionBenchmark):
    """NYU Depth v2 test split (654), 320x240 centre-cropped to 304x228, 500 random points; processed at 768
    (the authors upscale so that the latent is not too small; guidance stays at 304x228)."""

    name, num_samples, points = "nyu_v2_dc", 654, 500
    inference = _defaults(768)


class ScanNetDC(DepthCompletionBenchmark):
    """ScanNet, DeCoTR's 745 test frames, RGB resized to 640x480, 500 random points."""

    name, num_samples, points = "scannet_dc", 745, 500
    inference = _defaults(0)


class IBimsDC(DepthCompletionBenchmark):
    """iBims-1 (100 images, 640x480), 1000 random points of the valid mask (invalid, transparent, missing)."""

    name, num_samples, points = "ibims_dc", 100, 1000
    inference = _defaults(0)


class VOID150(DepthCompletionBenchmark):
    """VOID, the 800 frames of the 8 test sequences (640x480) with its 150-point sparse depth."""

    name, num_samples, points = "void150", 800, 150
    inference = _defaults(0)


class VOID500(VOID150):
    """VOID with its 500-point sparse depth."""

    name, points = "void500", 500


class VOID1500(VOID150):
    """VOID with its 1500-point sparse depth."""

    name, points = "void1500", 1500


class KITTIDC(DepthCompletionBenchmark):
    """KITTI depth completion, the official 1000-frame validation selection (1216x352), sparse LiDAR filtered
    with the local-window method of VPP4DC."""

    name, num_samples = "kitti_dc", 1000
    inference = _defaults(0)


class DDADDC(DepthCompletionBenchmark):
    """DDAD val (3950 front-camera frames, 1936x1216, VPP4DC's preprocessing, sparse LiDAR filtered), processed
    at 768."""

    name, num_samples = "ddad_dc", 3950
    inference = _defaults(768)


COMPLETION_BENCHMARKS: tuple[type[DepthCompletionBenchmark], ...] = (
    NYUv2DC, ScanNetDC, IBimsDC, VOID150, VOID500, VOID1500, KITTIDC, DDADDC)

__all__ = ["COMPLETION_BENCHMARKS", "DepthCompletionBenchmark", *(c.__name__ for c in COMPLETION_BENCHMARKS)]

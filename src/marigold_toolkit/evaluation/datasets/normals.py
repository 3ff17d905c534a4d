"""Surface-normal benchmarks of the Marigold protocol: the DSINE evaluation collection in the layout of the
authors' normals evaluation download (``evaluation_dataset.zip``), which stores every ground truth as
``*_normal.npy``.

Each sample is an 8-bit image ``*_img.png`` and a ``[H, W, 3]`` float array ``*_normal.npy`` of the same
size. Pixels whose GT vector has zero length are invalid (so are non-finite ones); there is no other mask or
crop. The authors' evaluation reads the arrays as they are and compares them with the predictions, which are
in Marigold's camera frame (X right, Y up, Z towards the viewer), so no axis is flipped here
(``axis_signs = (1, 1, 1)``; set it on a subclass for data stored in another convention, e.g. ``(1, -1, 1)``
for DSINE's original right/down/towards-camera PNGs). Valid GT vectors are rescaled to unit length (the
cosine error does not depend on it); invalid ones are set to 0.

Inference defaults follow ``script/normals/eval/*.sh``: 4 denoising steps, ensemble 10, processing
resolution 640 (NYUv2, ScanNet, iBims-1) or 768 (DIODE, OASIS), seed 4321 (NYUv2, iBims-1) or 1234 (others).
"""

from __future__ import annotations

import numpy as np

from ...io.dataset_files import SplitEntry, read_npy, read_rgb_uint8
from .base import Benchmark, EvalSample, InferenceDefaults


def _defaults(res: int, seed: int) -> InferenceDefaults:
    return InferenceDefaults(
        processing_resolution=res,
        num_inference_steps=4,
        ensemble_size=10,
        seed=seed,
        resample_method="bilinear",
    )


class NormalsBenchmark(Benchmark):
    """Common normals decoding. Split lines: ``<image path> <normal .npy path>`` relative to the root."""

    task = "normals"
    alignment = "none"
    axis_signs: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def load(self, entry: SplitEntry) -> EvalSample:
        rgb_path, normal_path = entry.paths[0], entry.paths[1]
        rgb = read_rgb_uint8(self.source, rgb_path)
        gt = np.asarray(read_npy(self.source, normal_path))
        if gt.ndim != 3 or gt.shape[2] != 3:
            raise ValueError(f"{normal_path}: expected an [H, W, 3] normal map, got shape {gt.shape}")
        gt = gt.astype(np.float32)
        if self.axis_signs != (1.0, 1.0, 1.0):
            gt = gt * np.asarray(self.axis_signs, dtype=np.float32)
        if rgb.shape[:2] != gt.shape[:2]:
            raise ValueError(
                f"{self.name} sample {entry.stem}: image is {rgb.shape[0]}x{rgb.shape[1]} but normals are "
                f"{gt.shape[0]}x{gt.shape[1]}"
            )
        finite = np.isfinite(gt).all(axis=2)
        with np.errstate(invalid="ignore", over="ignore"):
            norm = np.linalg.norm(np.where(finite[..., None], gt, 0.0), axis=2)
        valid = finite & (norm > 0)
        out = np.zeros_like(gt)
        out[valid] = gt[valid] / norm[valid][:, None]
        meta = {"rgb_path": rgb_path, "normal_path": normal_path, "line": entry.line_no}
        return EvalSample(stem=entry.stem, rgb=rgb, gt=out, valid_mask=valid, meta=meta)


class NYUv2Normals(NormalsBenchmark):
    """NYUv2 test split with GeoNet normals (654 images, 640x480). Root: ``nyuv2/test`` of the download.

    Split file (default ``<root>/nyuv2_test.txt``, the authors' ``data_split/nyu_normals/nyuv2_test.txt``):
    ``000000_img.png 000000_normal.npy`` per line.
    """

    name = "nyu_v2_normals"
    split_file = "nyuv2_test.txt"
    split_source = "data_split/nyu_normals/nyuv2_test.txt"
    num_samples = 654
    inference = _defaults(640, 4321)


class ScanNetNormals(NormalsBenchmark):
    """ScanNet normals test split (300 images, 640x480). Root: ``scannet`` of the download.

    Split file (default ``<root>/scannet_test.txt``, the authors'
    ``data_split/scannet_normals/scannet_test.txt``):
    ``scene0001_01/001170_img.png scene0001_01/001170_normal.npy`` per line.
    """

    name = "scannet_normals"
    split_file = "scannet_test.txt"
    split_source = "data_split/scannet_normals/scannet_test.txt"
    num_samples = 300
    inference = _defaults(640, 1234)


class IBimsNormals(NormalsBenchmark):
    """iBims-1 (100 images, 640x480). Root: ``ibims/ibims`` of the download.

    Split file (default ``<root>/ibims_test.txt``, the authors' ``data_split/ibims_normals/ibims_test.txt``):
    ``corridor_01_img.png corridor_01_normal.npy`` per line.
    """

    name = "ibims_normals"
    split_file = "ibims_test.txt"
    split_source = "data_split/ibims_normals/ibims_test.txt"
    num_samples = 100
    inference = _defaults(640, 4321)


class DIODENormals(NormalsBenchmark):
    """DIODE validation normals, indoor + outdoor (771 images, 1024x768). Root: ``diode/val`` of the download.

    Split file (default ``<root>/diode_test.txt``, the authors' ``data_split/diode_normals/diode_test.txt``):
    ``outdoor/scene_00024/scan_00201/00024_00201_outdoor_070_030.png
    outdoor/scene_00024/scan_00201/00024_00201_outdoor_070_030_normal.npy`` per line.
    """

    name = "diode_normals"
    split_file = "diode_test.txt"
    split_source = "data_split/diode_normals/diode_test.txt"
    num_samples = 771
    inference = _defaults(768, 1234)


class OASISNormals(NormalsBenchmark):
    """OASIS validation images with normals (9999 images, various sizes). Root: ``oasis/val`` of the download.

    Split file (default ``<root>/oasis_test.txt``, the authors' ``data_split/oasis_normals/oasis_test.txt``):
    ``268584_ALI_img.png 268584_ALI_normal.npy`` per line.
    """

    name = "oasis_normals"
    split_file = "oasis_test.txt"
    split_source = "data_split/oasis_normals/oasis_test.txt"
    num_samples = 9999
    inference = _defaults(768, 1234)

"""Depth benchmarks of the Marigold protocol, read in the authors' published formats.

Every loader yields ground truth in metres (``[H, W]`` float32) and a validity mask that already holds the
dataset's depth range (``min_depth < d < max_depth``, both strict, NaN invalid) and evaluation crop, except
DIODE, whose mask is its ``*_depth_mask.npy`` file alone. Paths in the split files are relative to the data
root, which is the extracted folder or the authors' ``.tar`` archive itself.

Inference defaults follow the authors' v1-1 scripts (``script/depth/eval/*.sh``): 1 denoising step, ensemble
10 (each script's default; their all-in-one script uses 1), seed 1234, bilinear resampling back to the input
size.
"""

from __future__ import annotations

import numpy as np

from ...io.dataset_files import SplitEntry, read_npy, read_png_depth, read_rgb_uint8, stem_from_relpath
from ...tasks.depth import depth_range_mask
from .base import Benchmark, EvalSample, InferenceDefaults

_V11_DEPTH = {"num_inference_steps": 1, "ensemble_size": 10, "seed": 1234, "resample_method": "bilinear"}


class DepthBenchmark(Benchmark):
    """Common depth decoding: RGB + GT depth + range mask + optional evaluation crop."""

    task = "depth"
    alignment = "least_squares"
    #: column index of the GT depth path in a split line
    depth_column: int = 1

    def decode_depth(self, entry: SplitEntry) -> np.ndarray:
        raise NotImplementedError

    def eval_crop(self, shape: tuple[int, int]) -> np.ndarray | None:
        """Boolean ``[H, W]`` evaluation region (True = scored) or None for the whole image."""
        return None

    def prepare(self, rgb: np.ndarray, gt: np.ndarray, meta: dict) -> tuple[np.ndarray, np.ndarray]:
        """Hook for crops that apply to the image and GT themselves (KITTI's benchmark crop)."""
        return rgb, gt

    def valid_mask(self, gt: np.ndarray, entry: SplitEntry) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            mask = depth_range_mask(gt, self.min_depth, self.max_depth)
        crop = self.eval_crop(gt.shape)
        if crop is not None:
            mask &= crop
        return mask

    def scoring_options(self, sample: EvalSample, alignment: str | None = None) -> dict:
        """Alignment (``alignment`` or the benchmark's, fit at most at ``alignment_max_res``), then clipping to
        the dataset's depth range."""
        return {"mask": sample.valid_mask, "alignment": alignment or self.alignment, "min_depth": self.min_depth,
                "max_depth": self.max_depth, "max_res": self.alignment_max_res}

    def load(self, entry: SplitEntry) -> EvalSample:
        rgb_path, depth_path = entry.paths[0], entry.paths[self.depth_column]
        rgb = read_rgb_uint8(self.source, rgb_path)
        gt = self.decode_depth(entry)
        meta = {"rgb_path": rgb_path, "depth_path": depth_path, "line": entry.line_no, **entry.extra}
        rgb, gt = self.prepare(rgb, gt, meta)
        if rgb.shape[:2] != gt.shape:
            raise ValueError(
                f"{self.name} sample {entry.stem}: image is {rgb.shape[0]}x{rgb.shape[1]} but depth is "
                f"{gt.shape[0]}x{gt.shape[1]}"
            )
        mask = self.valid_mask(gt, entry)
        return EvalSample(stem=entry.stem, rgb=rgb, gt=gt, valid_mask=mask, meta=meta)


class NYUv2Depth(DepthBenchmark):
    """NYU Depth v2, labelled test split (654 images, 640x480), as in the authors'
    ``nyu_labeled_extracted.tar``.

    Files: ``test/<scene>/rgb_XXXX.png`` (8-bit RGB), ``test/<scene>/depth_XXXX.png`` (uint16, millimetres,
    0 = no measurement), ``test/<scene>/filled_XXXX.png`` (in-painted depth; not evaluated).

    Split file (default ``<root>/filename_list_test.txt``, the authors'
    ``data_split/nyu_depth/labeled/filename_list_test.txt``): one sample per line,
    ``<rgb path> <raw depth path> <filled depth path>``, e.g.
    ``test/kitchen_0004/rgb_0001.png test/kitchen_0004/depth_0001.png test/kitchen_0004/filled_0001.png``.

    GT = raw depth / 1000 (metres); valid = 1e-3 < d < 10 and the Eigen crop rows 45:471, cols 41:601.
    """

    name = "nyu_v2"
    split_file = "filename_list_test.txt"
    split_source = "data_split/nyu_depth/labeled/filename_list_test.txt"
    num_samples = 654
    min_depth = 1e-3
    max_depth = 10.0
    inference = InferenceDefaults(processing_resolution=0, **_V11_DEPTH)
    #: Eigen evaluation crop on the 480x640 frame: (row start, row stop, col start, col stop)
    eigen_crop = (45, 471, 41, 601)

    def parse_line(self, cols, line_no):
        extra = {"filled_path": cols[2]} if len(cols) > 2 else {}
        return SplitEntry(stem_from_relpath(cols[0]), tuple(cols[:2]), line_no, extra)

    def decode_depth(self, entry):
        return read_png_depth(self.source, entry.paths[1], 1000.0)

    def eval_crop(self, shape):
        r0, r1, c0, c1 = self.eigen_crop
        crop = np.zeros(shape, dtype=bool)
        crop[r0:r1, c0:c1] = True
        return crop


class KITTIEigenDepth(DepthBenchmark):
    """KITTI, Eigen test split with projected-LiDAR ground truth (697 lines, 652 with GT), as in the authors'
    ``kitti_eigen_split_test.tar``.

    Files: ``<date>/<drive>_sync/image_02/data/<frame>.png`` (RGB, about 375x1242) and
    ``<drive>_sync/proj_depth/groundtruth/image_02/<frame>.png`` (uint16, depth*256, 0 = no point).

    Split file (default ``<root>/eigen_test_files_with_gt.txt``, the authors'
    ``data_split/kitti_depth/eigen_test_files_with_gt.txt``): ``<rgb path> <gt path or None> <focal px>``,
    e.g.
    ``2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
    2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377``.
    Lines whose GT column is ``None`` are dropped (697 -> 652).

    GT = PNG / 256 (metres). Image and GT are cut to the KITTI benchmark size 352x1216 (top = H - 352,
    left = (W - 1216) // 2); valid = 1e-5 < d < 80 and the Eigen crop on the cut frame: rows
    int(0.3324324 H):int(0.91351351 H), cols int(0.0359477 W):int(0.96405229 W) (``crop="garg"`` selects
    Garg's rows 0.40810811-0.99189189 instead; the protocol uses Eigen).
    """

    name = "kitti_eigen"
    split_file = "eigen_test_files_with_gt.txt"
    split_source = "data_split/kitti_depth/eigen_test_files_with_gt.txt"
    num_samples = 652
    min_depth = 1e-5
    max_depth = 80.0
    inference = InferenceDefaults(processing_resolution=0, **_V11_DEPTH)
    kb_crop_hw = (352, 1216)
    crop = "eigen"  # eigen | garg | None

    def parse_line(self, cols, line_no):
        if len(cols) < 2 or cols[1] == "None":
            return None
        extra = {}
        if len(cols) > 2:
            try:
                extra["focal_length"] = float(cols[2])
            except ValueError:
                extra["focal_length"] = None
        return SplitEntry(stem_from_relpath(cols[0]), tuple(cols[:2]), line_no, extra)

    def decode_depth(self, entry):
        return read_png_depth(self.source, entry.paths[1], 256.0)

    def kb_crop_box(self, height: int, width: int) -> tuple[int, int]:
        ch, cw = self.kb_crop_hw
        if height < ch or width < cw:
            raise ValueError(
                f"{self.name}: frame {height}x{width} is smaller than the benchmark crop {ch}x{cw}"
            )
        return int(height - ch), int((width - cw) / 2)

    def prepare(self, rgb, gt, meta):
        if rgb.shape[:2] != gt.shape:
            return rgb, gt  # reported by load()
        h, w = gt.shape
        top, left = self.kb_crop_box(h, w)
        ch, cw = self.kb_crop_hw
        meta["original_hw"] = (h, w)
        meta["kb_crop"] = (top, left)
        return rgb[top : top + ch, left : left + cw].copy(), gt[top : top + ch, left : left + cw].copy()

    def eval_crop(self, shape):
        if self.crop is None:
            return None
        h, w = shape
        crop = np.zeros(shape, dtype=bool)
        if self.crop == "eigen":
            crop[int(0.3324324 * h) : int(0.91351351 * h), int(0.0359477 * w) : int(0.96405229 * w)] = True
        elif self.crop == "garg":
            crop[int(0.40810811 * h) : int(0.99189189 * h), int(0.03594771 * w) : int(0.96405229 * w)] = True
        else:
            raise ValueError(f"unknown KITTI evaluation crop {self.crop!r} (eigen | garg | None)")
        return crop


class ETH3DDepth(DepthBenchmark):
    """ETH3D high-resolution multi-view DSLR frames (454 images, 6048x4032), as in the authors' ``eth3d.tar``.

    Files: ``rgb/<scene>/images/dslr_images/DSC_XXXX.JPG`` and
    ``depth/<scene>_dslr_depth/<scene>/ground_truth_depth/dslr_images/DSC_XXXX.JPG``; despite its name the
    depth file is ETH3D's raw format: 4032*6048 float32 values in row-major order (read little-endian, which
    is what the authors' ``np.frombuffer`` gives on x86), ``inf`` where there is no ground truth.

    Split file (default ``<root>/eth3d_filename_list.txt``, the authors'
    ``data_split/eth3d_depth/eth3d_filename_list.txt``): ``<rgb path> <depth path>`` per line.

    GT: ``inf`` -> 0 (metres as stored); valid = 1e-5 < d < inf. No crop. Inference at processing
    resolution 756; the least-squares fit runs at most at 1024 px (``alignment_max_res``).

    ``depth_shape`` is the stored raster size; a file whose size matches the RGB frame instead is reshaped to
    the RGB frame (so reduced copies work).
    """

    name = "eth3d"
    split_file = "eth3d_filename_list.txt"
    split_source = "data_split/eth3d_depth/eth3d_filename_list.txt"
    num_samples = 454
    min_depth = 1e-5
    max_depth = float("inf")
    alignment_max_res = 1024
    inference = InferenceDefaults(processing_resolution=756, **_V11_DEPTH)
    depth_shape: tuple[int, int] = (4032, 6048)

    def _decode(self, rel_path: str, rgb_hw: tuple[int, int]) -> np.ndarray:
        data = self.source.read_bytes(rel_path)
        if len(data) % 4:
            raise ValueError(f"{rel_path}: {len(data)} bytes is not a whole number of float32 values")
        depth = np.frombuffer(data, dtype="<f4").astype(np.float32)
        n = depth.size
        if n == self.depth_shape[0] * self.depth_shape[1]:
            shape = self.depth_shape
        elif n == rgb_hw[0] * rgb_hw[1]:
            shape = rgb_hw
        else:
            raise ValueError(
                f"{rel_path}: {n} depth values fit neither "
                f"{self.depth_shape[0]}x{self.depth_shape[1]} nor the "
                f"image's {rgb_hw[0]}x{rgb_hw[1]}"
            )
        depth = depth.reshape(shape)
        depth[depth == np.inf] = 0.0
        return depth

    def load(self, entry):
        rgb_path, depth_path = entry.paths[0], entry.paths[1]
        rgb = read_rgb_uint8(self.source, rgb_path)
        gt = self._decode(depth_path, rgb.shape[:2])
        if rgb.shape[:2] != gt.shape:
            raise ValueError(
                f"{self.name} sample {entry.stem}: image is {rgb.shape[0]}x{rgb.shape[1]} but depth is "
                f"{gt.shape[0]}x{gt.shape[1]}"
            )
        mask = self.valid_mask(gt, entry)
        meta = {"rgb_path": rgb_path, "depth_path": depth_path, "line": entry.line_no}
        return EvalSample(stem=entry.stem, rgb=rgb, gt=gt, valid_mask=mask, meta=meta)


class ScanNetDepth(DepthBenchmark):
    """ScanNet validation frames sampled by the authors (800 images), as in ``scannet_val_sampled_800_1.tar``.

    Files: ``<scene>/color/XXXXXX.jpg`` (RGB at the depth resolution, 640x480) and
    ``<scene>/depth/XXXXXX.png``
    (uint16, millimetres, 0 = no measurement).

    Split file (default ``<root>/scannet_val_sampled_list_800_1.txt``, the authors'
    ``data_split/scannet_depth/scannet_val_sampled_list_800_1.txt``): ``<rgb path> <depth path>``, e.g.
    ``scene0406_02/color/000300.jpg scene0406_02/depth/000300.png``.

    GT = PNG / 1000 (metres); valid = 1e-3 < d < 10. No crop.
    """

    name = "scannet"
    split_file = "scannet_val_sampled_list_800_1.txt"
    split_source = "data_split/scannet_depth/scannet_val_sampled_list_800_1.txt"
    num_samples = 800
    min_depth = 1e-3
    max_depth = 10.0
    inference = InferenceDefaults(processing_resolution=0, **_V11_DEPTH)

    def decode_depth(self, entry):
        return read_png_depth(self.source, entry.paths[1], 1000.0)


class DIODEDepth(DepthBenchmark):
    """DIODE validation set, indoor + outdoor (771 images, 1024x768), as in the authors' ``diode_val.tar``.

    Files: ``{indoors,outdoor}/scene_X/scan_Y/<id>.png`` (RGB), ``<id>_depth.npy`` (float32 metres,
    ``[H, W, 1]``) and ``<id>_depth_mask.npy`` (``[H, W]``, nonzero = valid).

    Split file (default ``<root>/diode_val_all_filename_list.txt``, the authors'
    ``data_split/diode_depth/diode_val_all_filename_list.txt``): ``<rgb path> <depth path> <mask path>``.

    The valid mask is the mask file alone (``mask != 0``): ``min_depth``/``max_depth`` (0.6 / 350 m) only clip
    the aligned prediction, as in the authors' evaluation. Inference at processing resolution 640.
    """

    name = "diode"
    split_file = "diode_val_all_filename_list.txt"
    split_source = "data_split/diode_depth/diode_val_all_filename_list.txt"
    num_samples = 771
    min_depth = 0.6
    max_depth = 350.0
    min_columns = 3
    inference = InferenceDefaults(processing_resolution=640, **_V11_DEPTH)

    def parse_line(self, cols, line_no):
        return SplitEntry(stem_from_relpath(cols[0]), tuple(cols[:3]), line_no, {"mask_path": cols[2]})

    def decode_depth(self, entry):
        depth = np.asarray(read_npy(self.source, entry.paths[1]))
        depth = np.squeeze(depth)
        if depth.ndim != 2:
            raise ValueError(
                f"{entry.paths[1]}: expected an [H, W] or [H, W, 1] depth array, got {depth.shape}"
            )
        return depth.astype(np.float32)

    def valid_mask(self, gt, entry):
        mask = np.squeeze(np.asarray(read_npy(self.source, entry.paths[2])))
        if mask.shape != gt.shape:
            raise ValueError(f"{entry.paths[2]}: mask shape {mask.shape} differs from depth shape {gt.shape}")
        return mask.astype(bool)

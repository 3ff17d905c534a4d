"""Depth training sets in the authors' published layouts: Hypersim (preprocessed) and Virtual KITTI 2.

Both yield ``depth`` in metres (raw: invalid pixels keep their stored value, 0 for Hypersim) and ``valid_mask``
= ``min_depth < depth < max_depth``. Augmentation: horizontal flip with p = 0.5 (``config/train_marigold_depth.yaml``
``augmentation.lr_flip_p``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import check_hw
from ..io.dataset_files import SplitEntry, read_png_depth, read_rgb_uint8, stem_from_relpath
from ..tasks.depth import DepthTask
from .base import CorruptSampleError, TrainDataset

_TASK = DepthTask()


class DepthTrainDataset(TrainDataset):
    """RGB + 16-bit depth PNG pairs. Split lines: ``<rgb path> <depth path>`` relative to the root."""

    task = "depth"
    targets = ("depth",)
    min_depth: float = 0.0
    max_depth: float = float("inf")
    #: PNG value per metre
    depth_scale: float = 1000.0

    def parse_line(self, cols, line_no):
        return SplitEntry(stem_from_relpath(cols[0]), (cols[0], cols[1]), line_no)

    def crop(self, arr: np.ndarray, rel_path: str) -> np.ndarray:
        """Hook for a fixed crop of RGB and depth (vKITTI's KITTI benchmark crop)."""
        return arr

    def _load_entry(self, entry: SplitEntry, rng: np.random.Generator) -> dict[str, Any]:
        rgb_path, depth_path = entry.paths
        rgb = self.decode(rgb_path, read_rgb_uint8)
        depth = self.decode(depth_path, read_png_depth, self.depth_scale)
        self.check_shape(depth, rgb.shape[:2], None, depth_path, "depth map")
        rgb = self.crop(rgb, rgb_path)
        depth = self.crop(depth, depth_path)

        return _TASK.training_sample(rgb, {"depth": depth}, None, rng, self.augment, self.resize,
                                     min_depth=self.min_depth, max_depth=self.max_depth)


class HypersimDepth(DepthTrainDataset):
    """Hypersim, preprocessed by the authors' ``script/depth/dataset_preprocess/hypersim/preprocess_hypersim.py``.

    Root: the preprocessed ``train`` folder or its tar (the authors' config reads
    ``hypersim/hypersim_processed_train.tar``, members ``./<scene>/...``). Files per frame:
    ``<scene>/rgb_cam_XX_frNNNN.png`` (8-bit RGB, tone-mapped: 90th-percentile brightness -> 0.8, gamma 1/2.2) and
    ``<scene>/depth_plane_cam_XX_frNNNN.png`` (uint16 planar depth in millimetres, converted from Hypersim's ray
    distance with focal 886.81 px; 0 where ``render_entity_id == -1``).

    Split file (default ``<root>/filename_list_train_filtered.txt``, the authors'
    ``data_split/hypersim_depth/filename_list_train_filtered.txt``, 53,885 lines; the preprocessing script itself
    writes the unfiltered ``filename_list_train.txt``, used when the filtered file is absent):
    ``ai_001_001/rgb_cam_00_fr0000.png ai_001_001/depth_plane_cam_00_fr0000.png``.

    depth = PNG / 1000 m; valid = 1e-5 < d < 65. Both rasters are resized to 480x640 with NEAREST_EXACT
    (``resize_to_hw`` in ``config/dataset_depth/dataset_train.yaml``; RGB included, as the authors).
    """

    name = "hypersim_depth"
    split_files = ("filename_list_train_filtered.txt", "filename_list_train.txt")
    split_source = "data_split/hypersim_depth/filename_list_train_filtered.txt"
    num_samples = 53885
    min_depth = 1e-5
    max_depth = 65.0
    depth_scale = 1000.0
    default_resize = (480, 640)


class VirtualKITTIDepth(DepthTrainDataset):
    """Virtual KITTI 2 as the authors read it (``src/dataset/vkitti_dataset.py``).

    Root: a folder (or the authors' ``vkitti/vkitti.tar``) holding the official ``vkitti_2.0.3_rgb`` and
    ``vkitti_2.0.3_depth`` trees renamed ``rgb/`` and ``depth/``:
    ``rgb/Scene02/clone/frames/rgb/Camera_0/rgb_00000.jpg`` and
    ``depth/Scene02/clone/frames/depth/Camera_0/depth_00000.png`` (uint16, centimetres; 65535 = 655.35 m, the
    saturated far range, e.g. sky).

    Split file (default ``<root>/vkitti_train.txt``, the authors' ``data_split/vkitti_depth/vkitti_train.txt``,
    20,148 lines: Scenes 02/06/18/20 x clone/morning/overcast/sunset/15-deg-left/15-deg-right x Camera_0/1):
    ``<rgb path> <depth path>``; lines whose depth column is ``None`` are dropped (as the authors).

    depth = PNG / 100 m; valid = 1e-5 < d < 80. Image and depth are cut to the KITTI benchmark size
    (``crop_hw`` = 352x1216: the bottom 352 rows, the centred 1216 columns, ``left = (W - 1216) // 2``) and not
    resized (``resize`` default None = native after the crop). No evaluation crop (``valid_mask_crop: null``).
    """

    name = "vkitti_depth"
    split_files = ("vkitti_train.txt",)
    split_source = "data_split/vkitti_depth/vkitti_train.txt"
    num_samples = 20148
    min_depth = 1e-5
    max_depth = 80.0
    depth_scale = 100.0
    default_resize = None

    def __init__(self, root, split=None, resize=None, augment=True, kitti_bm_crop: bool = True,
                 crop_hw: tuple[int, int] = (352, 1216)):
        self.kitti_bm_crop = bool(kitti_bm_crop)
        self.crop_hw = check_hw(crop_hw, "crop_hw")
        super().__init__(root, split=split, resize=resize, augment=augment)

    def parse_line(self, cols, line_no):
        if cols[1] == "None":
            return None
        return super().parse_line(cols, line_no)

    def crop(self, arr, rel_path):
        if not self.kitti_bm_crop:
            return arr
        ch, cw = self.crop_hw
        h, w = arr.shape[:2]
        if h < ch or w < cw:
            raise CorruptSampleError(
                self.describe(rel_path), f"frame {h}x{w} is smaller than the KITTI benchmark crop {ch}x{cw}"
            )
        top, left = h - ch, (w - cw) // 2
        return arr[top: top + ch, left: left + cw]

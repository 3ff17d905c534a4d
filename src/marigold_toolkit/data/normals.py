"""Surface-normal training sets in the authors' published layouts: Hypersim, InteriorVerse and Sintel.

Every source stores camera-frame normals as ``[H, W, 3]`` float ``.npy`` next to an 8-bit PNG image, already in
Marigold's frame (X right, Y up, Z towards the viewer):

* Hypersim ``normal_cam``: the Hypersim camera frame is "+x right, +y up, +z away from where the camera is
  looking" (ml-hypersim README), i.e. this frame; the authors' preprocessing normalises the vectors and flips
  back-facing ones.
* InteriorVerse ``NNN_normal.exr``: "OpenGL coordinate system: R = x right, G = y up, B = z back (screen to eye)"
  (InteriorVerse README); the authors' preprocessing normalises and stores it unchanged.
* Sintel: the authors' preprocessed ``sintel.zip``; read unchanged by their loader (convention not documented
  independently).

So ``axis_signs`` is ``(1, 1, 1)`` for all three; a subclass for data in another convention sets it (e.g.
``(1, -1, -1)`` for an OpenCV-style X right, Y down, Z forward frame).

Processing: the normals task's training pipeline (:mod:`marigold_toolkit.tasks.normals.training`: flip with X
negated, blur and colour jitter on the RGB, blur only on Hypersim, bilinear resize, unit length; ``valid_mask`` =
stored vector finite and longer than 0.1).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.checks import check_hw
from ..core.image import to_chw
from ..io.dataset_files import SplitEntry, read_npy, read_rgb_uint8, stem_from_relpath
from ..tasks.normals import NormalsAugmentation, augment_and_resize_normals, normals_augmentation, prepare_normals
from .base import CorruptSampleError, TrainDataset


class NormalsTrainDataset(TrainDataset):
    """8-bit image + ``[H, W, 3]`` ``.npy`` normals. Split lines: ``<rgb path> <normals .npy path>``.

    Extra args: ``blur`` (None = the dataset default ``default_blur``: whether the Gaussian and motion blur
    augmentations apply), ``augmentation`` (a :class:`~marigold_toolkit.tasks.normals.NormalsAugmentation` or a
    mapping of its fields, e.g. ``{"color_jitter_p": 0.0}``).
    """

    task = "normals"
    targets = ("normals",)
    axis_signs: tuple[float, float, float] = (1.0, 1.0, 1.0)
    default_blur: bool = False

    def __init__(self, root, split=None, resize=None, augment=True, blur: bool | None = None,
                 augmentation: NormalsAugmentation | None = None):
        self.blur = self.default_blur if blur is None else bool(blur)
        self.augmentation = normals_augmentation(augmentation)
        super().__init__(root, split=split, resize=resize, augment=augment)

    def parse_line(self, cols, line_no):
        return SplitEntry(stem_from_relpath(cols[0]), (cols[0], cols[1]), line_no)

    def decode_pair(self, entry: SplitEntry) -> tuple[np.ndarray, torch.Tensor]:
        rgb_path, normals_path = entry.paths
        rgb = self.decode(rgb_path, read_rgb_uint8)
        arr = np.asarray(self.decode(normals_path, read_npy))
        self.check_shape(arr, rgb.shape[:2], 3, normals_path, "normal map")
        if not np.issubdtype(arr.dtype, np.number):
            raise CorruptSampleError(self.describe(normals_path), f"normal map has dtype {arr.dtype}")
        return rgb, to_chw(arr)

    def _load_entry(self, entry, rng):
        rgb, raw = self.decode_pair(entry)
        normals, valid = prepare_normals(raw, self.axis_signs)
        return augment_and_resize_normals(rgb, normals, valid, rng, self.augment, self.blur, self.augmentation,
                                          self.resize)


class HypersimNormals(NormalsTrainDataset):
    """Hypersim normals, preprocessed by the authors'
    ``script/normals/dataset_preprocess/hypersim/preprocess_hypersim_normals.py``.

    Root: the preprocessed ``hypersim`` folder (``train/``, ``val/``, ``test/``; or a tar of it). Files:
    ``<split>/<scene>/rgb_cam_XX_frNNNN.png`` (8-bit, tone-mapped) and
    ``<split>/<scene>/normal_cam_cam_XX_frNNNN.npy`` (``[768, 1024, 3]`` float64, unit camera-frame normals,
    back-facing ones flipped; frames with NaN normals were skipped).

    Split file (default ``<root>/hypersim_filtered_all.txt``, the authors'
    ``data_split/hypersim_normals/hypersim_filtered_all.txt``, 48,925 lines from train+val+test):
    ``train/ai_001_001/rgb_cam_00_fr0000.png train/ai_001_001/normal_cam_cam_00_fr0000.npy``.

    Resized to 480x640 (bilinear). Gaussian and motion blur apply (the authors blur only these 768-high frames).
    """

    name = "hypersim_normals"
    split_files = ("hypersim_filtered_all.txt",)
    split_source = "data_split/hypersim_normals/hypersim_filtered_all.txt"
    num_samples = 48925
    default_resize = (480, 640)
    default_blur = True


class InteriorVerseNormals(NormalsTrainDataset):
    """InteriorVerse normals (``scenes_85`` only), preprocessed by the authors'
    ``script/normals/dataset_preprocess/interiorverse/preprocess_interiorverse_normals.py``.

    Root: the output ``interiorverse/scenes_85`` folder (the authors' config: ``dir: interiorverse/scenes_85``).
    Files: ``<scene>/NNN_img.png`` (8-bit: the HDR ``NNN_im.exr`` clipped to [0, 1], gamma 1/2.2, truncated) and
    ``<scene>/NNN_normal.npy`` (``[H, W, 3]`` float32 unit normals; frames with NaN or any zero-length normal
    were skipped).

    Split file (default ``<root>/interiorverse_filtered_all.txt``, or the same name in the parent folder where the
    preprocessing writes it; the authors' ``data_split/interiorverse_normals/interiorverse_filtered_all.txt``,
    27,198 lines): ``L3D124S21ENDIMIPXNIUI5L7ELUF3P3XY888/008_img.png
    L3D124S21ENDIMIPXNIUI5L7ELUF3P3XY888/008_normal.npy``.

    Native resolution (``resize_to_hw: null``); no blur.
    """

    name = "interiorverse_normals"
    split_files = ("interiorverse_filtered_all.txt",)
    split_source = "data_split/interiorverse_normals/interiorverse_filtered_all.txt"
    num_samples = 27198
    default_resize = None

    def default_split_path(self):
        path = super().default_split_path()
        if not path.is_file():
            alt = self.data_folder().parent / self.split_files[0]
            if alt.is_file():
                return alt
        return path


class SintelNormals(NormalsTrainDataset):
    """MPI Sintel normals as the authors ship them (``sintel.zip``, ``src/dataset/sintel_dataset.py``).

    Root: the unzipped ``sintel`` folder. Files: ``<scene>/frame_NNNN_img.png`` (8-bit, 436x1024) and
    ``<scene>/frame_NNNN_normal.npy`` (``[436, 1024, 3]``).

    Split file (default ``<root>/sintel_filtered.txt``, the authors'
    ``data_split/sintel_normals/sintel_filtered.txt``, 627 lines): ``alley_2/frame_0001_img.png
    alley_2/frame_0001_normal.npy``.

    Processing: vectors of length <= 0.1 (sky) are replaced by (0, 0, 1) (and left out of ``valid_mask``); image
    and normals are centre-cropped to ``crop_hw`` = 436x582 (221 columns off each side of a 1024-wide frame), then
    resized to 480x640 (bilinear). No blur.
    """

    name = "sintel_normals"
    split_files = ("sintel_filtered.txt",)
    split_source = "data_split/sintel_normals/sintel_filtered.txt"
    num_samples = 627
    default_resize = (480, 640)

    def __init__(self, root, split=None, resize=None, augment=True, blur=None, augmentation=None,
                 crop_hw: tuple[int, int] = (436, 582)):
        self.crop_hw = check_hw(crop_hw, "crop_hw")
        super().__init__(root, split=split, resize=resize, augment=augment, blur=blur, augmentation=augmentation)

    def _center_crop(self, t, rel_path: str):
        ch, cw = self.crop_hw
        h, w = t.shape[-2:] if torch.is_tensor(t) else t.shape[:2]
        if h < ch or w < cw:
            raise CorruptSampleError(self.describe(rel_path), f"frame {h}x{w} is smaller than the crop {ch}x{cw}")
        top, left = (h - ch) // 2, (w - cw) // 2
        if torch.is_tensor(t):
            return t[..., top: top + ch, left: left + cw]
        return t[top: top + ch, left: left + cw]

    def _load_entry(self, entry, rng):
        rgb, raw = self.decode_pair(entry)
        normals, valid = prepare_normals(raw, self.axis_signs)
        sky = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1)
        normals = torch.where(valid, normals, sky)
        rgb = self._center_crop(rgb, entry.paths[0])
        normals = self._center_crop(normals, entry.paths[1]).contiguous()
        valid = self._center_crop(valid, entry.paths[1]).contiguous()
        return augment_and_resize_normals(rgb, normals, valid, rng, self.augment, self.blur, self.augmentation,
                                          self.resize)

"""Intrinsic-image-decomposition training sets: InteriorVerse (appearance: albedo + material) and Hypersim
(lighting: albedo, shading, residual), in the layouts the authors' ``src/dataset/*_dataset.py`` read.

Targets are ``float32 [3, H, W]`` in [0, 1] in the model's prediction space. Augmentation: horizontal flip with
p = 0.5 (the authors' ``lr_flip_p``; their ``BaseIIDDataset._augment_data`` at HEAD b1dffaa lacks its
``return``, the intended flip is implemented here). Resizing (where a size is set) is bilinear (antialiased) for
the image and targets and nearest-exact for masks, as ``BaseIIDDataset._training_preprocess``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..core.augment import draw_flip
from ..core.image import hflip, resize_raster, rgb_uint8_to_tensor, to_chw
from ..io.dataset_files import (
    SplitEntry,
    hypersim_iid_cut_off,
    read_exr_rgb,
    read_npy,
    read_rgb_uint8,
    stem_from_relpath,
)
from ..tasks.intrinsics.metrics import GAMMA
from .base import CorruptSampleError, TrainDataset

def _resize_sample(sample: dict[str, Any], size, targets) -> dict[str, Any]:
    if size is None:
        return sample
    out = dict(sample)
    for key in ("rgb", *targets):
        out[key] = resize_raster(sample[key], size, "bilinear")
    out["valid_mask"] = resize_raster(sample["valid_mask"], size, "nearest-exact")
    return out


class InteriorVerseIID(TrainDataset):
    """InteriorVerse ``scenes_85`` for the appearance model (albedo + material).

    Root: the folder holding ``scenes_85/<scene>/`` or the authors' ``interiorverse/InteriorVerse.tar`` (made by
    ``script/iid/dataset_preprocess/interiorverse_appearance/preprocess_interiorverse_iid.py``, members
    ``scenes_85/<scene>/NNN_{im,albedo,material,mask}.exr``). All four files are OpenEXR: ``im`` linear HDR
    radiance, ``albedo`` linear, ``material`` R = roughness, G = metallicity (B unused), ``mask`` (1 = valid,
    0 = invalid).

    Split file (default ``<root>/interiorverse_train_scenes_85.txt``, the authors'
    ``data_split/interiorverse_iid/interiorverse_train_scenes_85.txt``): ``<im> <albedo> <material> <mask>``, e.g.
    ``scenes_85/L3D187S3ENDIDSNH6YUI5NZULUF3P3WM888/000_im.exr`` followed by the ``_albedo``, ``_material`` and
    ``_mask`` paths of the frame.

    Decoding as the authors' ``InteriorVerseIIDDataset``: every EXR is clipped to [0, 1]; ``rgb`` = im^(1/2.2)
    (float, not quantised) * 2 - 1; ``albedo`` = albedo^(1/2.2); ``material``: B := 0, then ^(1/2.2);
    ``valid_mask`` = mask nonzero in every channel (the appearance model trains with this mask). Non-finite values
    (the authors' loader would stop on them) become 0 and invalid. Native resolution (no ``resize_to_hw``).

    Reading EXR needs the ``OpenEXR`` package (``pip install OpenEXR``) or OpenCV with its EXR codec.
    """

    name = "interiorverse_iid"
    task = "intrinsics"
    targets = ("albedo", "material")
    split_files = ("interiorverse_train_scenes_85.txt",)
    split_source = "data_split/interiorverse_iid/interiorverse_train_scenes_85.txt"
    min_columns = 4
    default_resize = None

    def parse_line(self, cols, line_no):
        return SplitEntry(stem_from_relpath(cols[0]), tuple(cols[:4]), line_no)

    def _load_entry(self, entry, rng):
        im_path, albedo_path, material_path, mask_path = entry.paths
        im = np.asarray(self.decode(im_path, read_exr_rgb), dtype=np.float32)
        hw = im.shape[:2]
        raw = {}
        for key, path in (("albedo", albedo_path), ("material", material_path), ("mask", mask_path)):
            arr = np.asarray(self.decode(path, read_exr_rgb), dtype=np.float32)
            self.check_shape(arr, hw, 3, path, key)
            raw[key] = arr
        finite = np.isfinite(im).all(axis=2)
        for arr in raw.values():
            finite &= np.isfinite(arr).all(axis=2)

        def clip01(x: np.ndarray) -> np.ndarray:
            return np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)

        def to_srgb(x: np.ndarray) -> np.ndarray:
            return clip01(x) ** np.float32(1.0 / GAMMA)

        material = clip01(raw["material"])
        material[..., 2] = 0.0
        mask = (clip01(raw["mask"]) != 0).all(axis=2) & finite
        sample = {
            "rgb": to_chw(to_srgb(im)) * 2.0 - 1.0,
            "albedo": to_chw(to_srgb(raw["albedo"])),
            "material": to_chw(material ** np.float32(1.0 / GAMMA)),
            "valid_mask": torch.from_numpy(mask)[None],
        }
        if self.augment and draw_flip(rng):
            sample = hflip(sample)
        return _resize_sample(sample, self.resize, self.targets)


class HypersimIID(TrainDataset):
    """Hypersim for the lighting model (albedo, shading, residual), preprocessed by the authors'
    ``script/iid/dataset_preprocess/hypersim_lighting/preprocess_hypersim_iid.py``.

    Root: the preprocessed ``hypersim`` folder (``train/``, ``val/``, ``test/``; or a tar of it). Files per
    frame: ``<split>/<scene>/rgb_cam_XX_frNNNN.png`` (8-bit, tone-mapped), ``albedo_...npy`` (``[H, W, 3]``
    linear diffuse reflectance clipped to [0, 1]), ``shading_...npy`` (diffuse illumination) and
    ``residual_...npy`` (non-diffuse residual), both linear and unbounded, and ``shading_stats_...json`` (unused).
    Train/val frames with invalid pixels, non-finite values, albedo outside [0, 1], negative shading/residual or
    a lossy clipped reconstruction were dropped by the preprocessing.

    Split file (default ``<root>/hypersim_train_filtered.txt``, the authors'
    ``data_split/hypersim_iid/hypersim_train_filtered.txt``, train + val): ``<rgb> <albedo> <shading> <residual>
    [<stats json>]``, e.g. ``train/ai_001_001/rgb_cam_00_fr0000.png train/ai_001_001/albedo_cam_00_fr0000.npy
    ...``.

    Decoding as the authors' ``HypersimIIDDataset``: cut-off c = max(q98(shading), q98(residual)) over all values
    of each array at native resolution; ``shading`` = clip(shading, 0, c) / c, ``residual`` likewise; ``albedo``
    stays linear. ``valid_mask`` = albedo finite and not black in all channels, shading and residual finite (the
    lighting model trains without a mask). Resized to 480x640 (bilinear; masks nearest-exact).
    """

    name = "hypersim_iid"
    task = "intrinsics"
    targets = ("albedo", "shading", "residual")
    split_files = ("hypersim_train_filtered.txt",)
    split_source = "data_split/hypersim_iid/hypersim_train_filtered.txt"
    min_columns = 4
    default_resize = (480, 640)
    quantile = 0.98

    def parse_line(self, cols, line_no):
        return SplitEntry(stem_from_relpath(cols[0]), tuple(cols[:4]), line_no)

    def _load_entry(self, entry, rng):
        rgb_path, albedo_path, shading_path, residual_path = entry.paths
        rgb = self.decode(rgb_path, read_rgb_uint8)
        hw = rgb.shape[:2]
        arrays = {}
        for key, path in (("albedo", albedo_path), ("shading", shading_path), ("residual", residual_path)):
            arr = np.asarray(self.decode(path, read_npy))
            self.check_shape(arr, hw, 3, path, key)
            if not np.issubdtype(arr.dtype, np.number):
                raise CorruptSampleError(self.describe(path), f"{key} has dtype {arr.dtype}")
            arrays[key] = arr.astype(np.float64, copy=False)

        c = hypersim_iid_cut_off(arrays["shading"], arrays["residual"], self.quantile)
        if not (np.isfinite(c) and c > 0):
            raise CorruptSampleError(
                self.describe(shading_path),
                f"shading/residual cut-off max(q98) is {c}: no positive finite light to normalise by",
            )
        albedo = arrays["albedo"]
        valid = np.isfinite(albedo).all(axis=2) & ~(albedo == 0).all(axis=2)
        sample = {"rgb": rgb_uint8_to_tensor(rgb)}
        sample["albedo"] = to_chw(np.clip(np.where(np.isfinite(albedo), albedo, 0.0), 0.0, 1.0))
        for key in ("shading", "residual"):
            x = arrays[key]
            fin = np.isfinite(x)
            valid &= fin.all(axis=2)
            sample[key] = to_chw(np.clip(np.where(fin, x, 0.0), 0.0, c) / c)
        sample["valid_mask"] = torch.from_numpy(valid)[None]
        if self.augment and draw_flip(rng):
            sample = hflip(sample)
        return _resize_sample(sample, self.resize, self.targets)

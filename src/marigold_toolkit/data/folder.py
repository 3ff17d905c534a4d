"""A generic training set for your own data: one folder per modality, files matched by stem.

Layout under ``root`` (``<stem>`` may contain sub-folders, e.g. ``scene1/0001``)::

    rgb/<stem>.<png|jpg|jpeg|bmp|tif|tiff|webp|...>   8-bit colour image (grey/RGBA converted to RGB)
    depth/<stem>.npy      depth in METRES, float [H, W]            -> task "depth"
    depth/<stem>.png      depth in MILLIMETRES, 16-bit grey PNG    (divided by 1000)
    depth/<stem>.exr      depth in METRES, first channel
    normals/<stem>.npy    float [H, W, 3] camera-frame normals, X right, Y up, Z towards the viewer
                          (OpenGL / Blender / Hypersim convention; for OpenCV-style X right, Y down, Z forward
                          data negate Y and Z first)          -> task "normals"
    <target>/<stem>.npy   float [H, W, 3] (or [H, W]) in [0, 1], one folder per intrinsic target, already in
    <target>/<stem>.png   the space the model should predict (e.g. albedo in sRGB); PNG: 8-bit (/255) or
                          16-bit grey (/65535)                     -> task "intrinsics"
    mask/<stem>.npy|png   optional, nonzero (in every channel) = valid; a stem without a mask file is all valid

Validity: depth pixels need ``min_depth < d < max_depth`` (defaults 0 and inf, so 0, negative, NaN and inf are
invalid); normals need a finite vector longer than 0.1 (stored vectors are rescaled to unit length); intrinsic
targets need finite values (values outside [0, 1] by more than 1e-3 make the sample corrupt, smaller excursions
are clipped). ``mask`` is AND-ed in.

``split``: an optional text file listing one stem per line (first column; a trailing image extension is
ignored); default: every image under ``rgb/``, sorted. ``targets``: default = the sub-folders present (``depth``
or ``normals`` alone, else every folder other than ``rgb`` and ``mask`` as an intrinsic target).

Resizing (``resize=(H, W)``; default native size, so all images must share one size to be batched): depth
training resizes RGB and depth with nearest-exact (as the authors), normals and intrinsics with antialiased
bilinear; masks always nearest-exact. Augmentation: flip p = 0.5 (normals: X negated, plus colour jitter and,
with ``blur=True``, Gaussian/motion blur, see :mod:`~marigold_toolkit.data.augment`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..io.dataset_files import (
    SplitEntry,
    read_exr_rgb,
    read_npy,
    read_png_depth,
    read_rgb_uint8,
    stem_from_relpath,
)
from ..io.images import IMAGE_EXTENSIONS
from .augment import NormalsAugmentation, draw_flip
from .base import (
    CorruptSampleError,
    TrainDataset,
    hflip,
    range_mask,
    resize_raster,
    rgb_uint8_to_tensor,
    to_chw,
)
from .normals import augment_and_resize_normals, normals_augmentation, prepare_normals

DEPTH_EXTENSIONS = (".npy", ".png", ".exr")
NORMALS_EXTENSIONS = (".npy",)
TARGET_EXTENSIONS = (".npy", ".png")
MASK_EXTENSIONS = (".npy", ".png")
RESERVED = ("rgb", "mask")
RANGE_TOLERANCE = 1e-3


def _read_png_depth_mm(source, rel_path: str) -> np.ndarray:
    with source.open(rel_path) as f, Image.open(f) as img:
        mode = img.mode
    if mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        raise ValueError(f"depth PNG must be 16-bit grey (millimetres), got PIL mode {mode}")
    return read_png_depth(source, rel_path, 1000.0)


def _read_png_unit(source, rel_path: str) -> np.ndarray:
    """8-bit colour/grey PNG -> [H, W, 3] / 255; 16-bit grey -> / 65535, repeated to 3 channels."""
    with source.open(rel_path) as f, Image.open(f) as img:
        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            arr = np.asarray(img).astype(np.float32) / 65535.0
            return np.repeat(arr[..., None], 3, axis=2)
    return read_rgb_uint8(source, rel_path).astype(np.float32) / 255.0


def _read_mask(source, rel_path: str) -> np.ndarray:
    if rel_path.endswith(".npy"):
        arr = np.asarray(read_npy(source, rel_path))
    else:
        with source.open(rel_path) as f, Image.open(f) as img:
            img.load()
            arr = np.asarray(img)
    if arr.ndim == 3:
        arr = (arr != 0).all(axis=2)
    if arr.ndim != 2:
        raise ValueError(f"mask must be [H, W] or [H, W, C], got shape {arr.shape}")
    return arr != 0


class FolderDataset(TrainDataset):
    """Your own training data in the folder layout of the module docstring.

    Args:
        root: the data folder (must contain ``rgb/``).
        split: optional file listing stems.
        resize: ``None`` (native size, the default here), ``(H, W)``, or ``False`` (native).
        augment: flip (and, for normals, colour jitter / optional blur) driven by the ``rng`` of ``load``.
        targets: target folders to read; default: detected.
        min_depth, max_depth: depth validity range in metres (strict).
        blur: apply the normals blur augmentations (default False; the authors blur only Hypersim).
    """

    name = "folder"
    default_resize = None
    min_columns = 1

    def __init__(self, root, split=None, resize=None, augment=True, targets: list[str] | tuple[str, ...] | None = None,
                 min_depth: float = 0.0, max_depth: float = float("inf"), blur: bool = False,
                 augmentation: NormalsAugmentation | None = None):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: data folder for training dataset 'folder' does not exist")
        if not (root / "rgb").is_dir():
            raise FileNotFoundError(f"{root / 'rgb'}: the folder dataset needs an rgb/ folder of input images")
        if split is not None and not Path(split).is_file():
            raise FileNotFoundError(f"{split}: split file (a list of stems) for the folder dataset not found")
        self.targets, self.task = self._resolve_targets(root, targets)
        if not max_depth > min_depth:
            raise ValueError(f"max_depth {max_depth} must be larger than min_depth {min_depth}")
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.blur = bool(blur)
        self.augmentation = normals_augmentation(augmentation)
        self.has_mask = (root / "mask").is_dir()
        self._rgb_index = self._index_images(root / "rgb")
        super().__init__(root, split=split, resize=resize, augment=augment)
        if not self.entries:
            raise ValueError(f"{root}: no samples (no images under rgb/, or an empty split file)")

    def _check_root(self) -> None:
        if not self.root.is_dir():  # pragma: no cover - checked above
            raise FileNotFoundError(f"{self.root}: data folder for training dataset 'folder' does not exist")

    def _build_entries(self, split):
        if split is not None:
            return super()._build_entries(split)
        return [SplitEntry(stem_from_relpath(s), (s,), i + 1) for i, s in enumerate(sorted(self._rgb_index))]

    # ---- discovery ---------------------------------------------------------------------------------------
    @staticmethod
    def _resolve_targets(root: Path, targets) -> tuple[tuple[str, ...], str]:
        if targets is None:
            found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                           and p.name not in RESERVED)
            if "depth" in found and "normals" in found:
                raise ValueError(f"{root}: both depth/ and normals/ exist; pass targets=['depth'] or ['normals']")
            if "depth" in found:
                targets = ["depth"]
            elif "normals" in found:
                targets = ["normals"]
            else:
                targets = found
            if not targets:
                raise FileNotFoundError(f"{root}: no target folder (depth/, normals/ or one folder per target)")
        targets = tuple(str(t) for t in targets)
        if not targets or len(set(targets)) != len(targets):
            raise ValueError(f"targets must be a non-empty list of distinct names, got {targets!r}")
        for t in targets:
            if t in RESERVED:
                raise ValueError(f"{t!r} is reserved and cannot be a target")
            if not (root / t).is_dir():
                raise FileNotFoundError(f"{root / t}: target folder does not exist")
        if "depth" in targets or "normals" in targets:
            if len(targets) != 1:
                raise ValueError(f"depth and normals train alone, got targets {targets!r}")
            task = targets[0]
        else:
            task = "intrinsics"
        return targets, task

    @staticmethod
    def _index_images(folder: Path) -> dict[str, str]:
        """stem (posix, relative to ``folder``, no extension) -> path relative to the data root."""
        index: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in filenames:
                if fn.startswith(".") or Path(fn).suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                rel = (Path(dirpath) / fn).relative_to(folder).as_posix()
                stem = rel[: -len(Path(fn).suffix)]
                if stem in index:
                    raise ValueError(f"{folder}: two images share the stem {stem!r} ({index[stem]}, rgb/{rel})")
                index[stem] = f"rgb/{rel}"
        return index

    def parse_line(self, cols, line_no):
        stem = cols[0].replace("\\", "/").strip("/")
        stem = stem.removeprefix("rgb/")
        if Path(stem).suffix.lower() in IMAGE_EXTENSIONS:
            stem = stem[: -len(Path(stem).suffix)]
        return SplitEntry(stem_from_relpath(stem), (stem,), line_no)

    def _find(self, folder: str, stem: str, extensions: tuple[str, ...]) -> str | None:
        for ext in extensions:
            rel = f"{folder}/{stem}{ext}"
            if (self.root / rel).is_file():
                return rel
        return None

    # ---- decoding ----------------------------------------------------------------------------------------
    def _load_entry(self, entry, rng):
        stem = entry.paths[0]
        rgb_rel = self._rgb_index.get(stem)
        if rgb_rel is None:
            raise CorruptSampleError(str(self.root / "rgb" / stem), "no image with this stem under rgb/")
        rgb = self.decode(rgb_rel, read_rgb_uint8)
        hw = rgb.shape[:2]

        mask = None
        if self.has_mask:
            mask_rel = self._find("mask", stem, MASK_EXTENSIONS)
            if mask_rel is not None:
                mask = self.decode(mask_rel, _read_mask)
                self.check_shape(mask, hw, None, mask_rel, "mask")
        mask_t = torch.ones((1, *hw), dtype=torch.bool) if mask is None else torch.from_numpy(mask)[None]

        if self.task == "depth":
            return self._depth(stem, rgb, mask_t, rng)
        if self.task == "normals":
            return self._normals(stem, rgb, mask_t, rng)
        return self._intrinsics(stem, rgb, mask_t, rng)

    def _require(self, folder: str, stem: str, extensions) -> str:
        rel = self._find(folder, stem, extensions)
        if rel is None:
            raise CorruptSampleError(
                str(self.root / folder / stem), f"no {folder} file ({'|'.join(extensions)}) for this stem"
            )
        return rel

    def _depth(self, stem, rgb, mask_t, rng) -> dict[str, Any]:
        rel = self._require("depth", stem, DEPTH_EXTENSIONS)
        if rel.endswith(".npy"):
            depth = np.asarray(self.decode(rel, read_npy))
            depth = np.squeeze(depth) if depth.ndim == 3 and 1 in (depth.shape[0], depth.shape[2]) else depth
            if not np.issubdtype(depth.dtype, np.number):
                raise CorruptSampleError(self.describe(rel), f"depth has dtype {depth.dtype}")
        elif rel.endswith(".png"):
            depth = self.decode(rel, _read_png_depth_mm)
        else:
            depth = np.asarray(self.decode(rel, read_exr_rgb))[..., 0]
        self.check_shape(depth, rgb.shape[:2], None, rel, "depth map")
        sample = {"rgb": rgb_uint8_to_tensor(rgb), "depth": to_chw(depth.astype(np.float32)), "valid_mask": mask_t}
        if self.augment and draw_flip(rng):
            sample = hflip(sample)
        sample["rgb"] = resize_raster(sample["rgb"], self.resize, "nearest-exact")
        sample["depth"] = resize_raster(sample["depth"], self.resize, "nearest-exact")
        mask_r = resize_raster(sample["valid_mask"], self.resize, "nearest-exact")
        sample["valid_mask"] = mask_r & range_mask(sample["depth"], self.min_depth, self.max_depth)
        return sample

    def _normals(self, stem, rgb, mask_t, rng) -> dict[str, Any]:
        rel = self._require("normals", stem, NORMALS_EXTENSIONS)
        arr = np.asarray(self.decode(rel, read_npy))
        if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[2] != 3:
            arr = np.moveaxis(arr, 0, -1)
        self.check_shape(arr, rgb.shape[:2], 3, rel, "normal map")
        if not np.issubdtype(arr.dtype, np.number):
            raise CorruptSampleError(self.describe(rel), f"normal map has dtype {arr.dtype}")
        normals, valid = prepare_normals(to_chw(arr))
        return augment_and_resize_normals(rgb, normals, valid & mask_t, rng, self.augment, self.blur,
                                          self.augmentation, self.resize)

    def _intrinsics(self, stem, rgb, mask_t, rng) -> dict[str, Any]:
        sample: dict[str, Any] = {"rgb": rgb_uint8_to_tensor(rgb)}
        valid = mask_t.clone()
        for t in self.targets:
            rel = self._require(t, stem, TARGET_EXTENSIONS)
            if rel.endswith(".npy"):
                arr = np.asarray(self.decode(rel, read_npy))
                if not np.issubdtype(arr.dtype, np.number):
                    raise CorruptSampleError(self.describe(rel), f"{t} has dtype {arr.dtype}")
                if arr.ndim == 2:
                    arr = np.repeat(arr[..., None], 3, axis=2)
            else:
                arr = self.decode(rel, _read_png_unit)
            self.check_shape(arr, rgb.shape[:2], 3, rel, t)
            arr = arr.astype(np.float32)
            finite = np.isfinite(arr)
            vals = arr[finite]
            if vals.size and (vals.min() < -RANGE_TOLERANCE or vals.max() > 1 + RANGE_TOLERANCE):
                raise CorruptSampleError(
                    self.describe(rel),
                    f"{t} values span [{vals.min():.4g}, {vals.max():.4g}], expected [0, 1] (see the folder layout)",
                )
            sample[t] = to_chw(np.clip(np.where(finite, arr, 0.0), 0.0, 1.0))
            valid &= torch.from_numpy(finite.all(axis=2))[None]
        sample["valid_mask"] = valid
        if self.augment and draw_flip(rng):
            sample = hflip(sample)
        if self.resize is not None:
            for key in ("rgb", *self.targets):
                sample[key] = resize_raster(sample[key], self.resize, "bilinear")
            sample["valid_mask"] = resize_raster(sample["valid_mask"], self.resize, "nearest-exact")
        return sample


"""A generic training set for your own data: one folder per modality, files matched by stem, for any registered
task (the task reads its target files and builds the sample).

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
    <target>/<stem>.*     the target of a task of your own: the files its Task.read_target_file reads
    mask/<stem>.npy|png   optional, nonzero (in every channel) = valid; a stem without a mask file is all valid

Validity: depth pixels need ``min_depth < d < max_depth`` (defaults 0 and inf, so 0, negative, NaN and inf are
invalid); normals need a finite vector longer than 0.1 (stored vectors are rescaled to unit length); intrinsic
targets need finite values (values outside [0, 1] by more than 1e-3 make the sample corrupt, smaller excursions
are clipped). ``mask`` is AND-ed in.

``split``: an optional text file listing one stem per line (first column; a trailing image extension is
ignored); default: every image under ``rgb/``, sorted. ``task`` / ``targets``: default = from the sub-folders
present (a folder named like a single-target task, e.g. ``depth`` or ``normals``, trains that task alone; else
every folder other than ``rgb`` and ``mask`` is an intrinsic target), see
:func:`~marigold_toolkit.tasks.registry.task_for_folders`.

Resizing (``resize=(H, W)``; default native size, so all images must share one size to be batched) and
augmentation are the task's (:meth:`~marigold_toolkit.tasks.base.Task.training_sample`): depth resizes RGB and
depth with nearest-exact (as the authors), normals and intrinsics with antialiased bilinear; masks always
nearest-exact; flip p = 0.5 (normals: X negated, plus colour jitter and, with ``blur=True``, Gaussian/motion blur,
see :mod:`~marigold_toolkit.tasks.normals.training`). Task options (``min_depth``, ``max_depth``, ``blur``,
``augmentation``) are keyword arguments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..io.dataset_files import SplitEntry, read_npy, read_rgb_uint8, stem_from_relpath
from ..io.images import IMAGE_EXTENSIONS
from ..tasks import Task, TaskError, get_task, task_for_folders
from .base import CorruptSampleError, TrainDataset

MASK_EXTENSIONS = (".npy", ".png")
RESERVED = ("rgb", "mask")


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
        augment: the task's augmentations (flip, and for normals colour jitter / optional blur) driven by the
            ``rng`` of ``load``.
        targets: target folders to read; default: detected.
        task: the registered task of the targets; default: detected from the target folders.
        **options: the task's options, e.g. ``min_depth``, ``max_depth`` (depth validity range in metres,
            strict), ``blur``, ``augmentation`` (normals).
    """

    name = "folder"
    default_resize = None
    min_columns = 1

    def __init__(self, root, split=None, resize=None, augment=True, targets: list[str] | tuple[str, ...] | None = None,
                 task: str | None = None, **options: Any):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: data folder for training dataset 'folder' does not exist")
        if not (root / "rgb").is_dir():
            raise FileNotFoundError(f"{root / 'rgb'}: the folder dataset needs an rgb/ folder of input images")
        if split is not None and not Path(split).is_file():
            raise FileNotFoundError(f"{split}: split file (a list of stems) for the folder dataset not found")
        self._task = self._resolve_task(root, targets, task)
        self.targets, self.task = tuple(self._task.target_names), self._task.name
        self.options = self._task.training_options(options)
        self.has_mask = (root / "mask").is_dir()
        self._rgb_index = self._index_images(root / "rgb")
        self._split_given = split is not None
        super().__init__(root, split=split, resize=resize, augment=augment)
        if not self.entries:
            raise ValueError(f"{root}: no samples (no images under rgb/, or an empty split file)")

    def read_split(self, path):
        if self._split_given:
            return super().read_split(path)
        return [SplitEntry(stem_from_relpath(s), (s,), i + 1) for i, s in enumerate(sorted(self._rgb_index))]

    # ---- discovery ---------------------------------------------------------------------------------------
    @staticmethod
    def _resolve_task(root: Path, targets, task: str | None) -> Task:
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                       and p.name not in RESERVED)
        if targets is not None:
            targets = [str(t) for t in targets]
            if not targets or len(set(targets)) != len(targets):
                raise ValueError(f"targets must be a non-empty list of distinct names, got {tuple(targets)!r}")
            for t in targets:
                if t in RESERVED:
                    raise ValueError(f"{t!r} is reserved and cannot be a target")
        try:
            if task is not None:
                cls = get_task(task)
                targets = targets if targets is not None else cls.claims_folders(found)
                if not targets:
                    raise FileNotFoundError(f"{root}: no target folder of task {task!r}")
                cls.check_targets(targets)
            else:
                if targets is None and not found:
                    raise FileNotFoundError(f"{root}: no target folder (depth/, normals/ or one folder per target)")
                cls, targets = task_for_folders(targets if targets is not None else found, targets is not None,
                                                str(root))
            instance = cls(list(targets))
        except TaskError as exc:
            raise ValueError(str(exc)) from None
        for t in instance.target_names:
            if not (root / t).is_dir():
                raise FileNotFoundError(f"{root / t}: target folder does not exist")
        return instance

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

    def _require(self, folder: str, stem: str, extensions) -> str:
        rel = self._find(folder, stem, extensions)
        if rel is None:
            raise CorruptSampleError(
                str(self.root / folder / stem), f"no {folder} file ({'|'.join(extensions)}) for this stem"
            )
        return rel

    # ---- decoding ----------------------------------------------------------------------------------------
    def _read_target(self, target: str, stem: str, hw: tuple[int, int]) -> np.ndarray:
        rel = self._require(target, stem, self._task.target_file_extensions)
        try:
            arr = self._task.read_target_file(self.source, rel, target)
            self._task.check_target_shape(target, arr, hw)
        except FileNotFoundError:
            raise CorruptSampleError(self.describe(rel), "file is missing") from None
        except ValueError as err:
            raise CorruptSampleError(self.describe(rel), str(err)) from None
        except Exception as err:  # decoders raise OSError/EOFError/RuntimeError/... on bad bytes
            raise CorruptSampleError(self.describe(rel), f"cannot decode ({type(err).__name__}: {err})") from err
        return arr

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
                mask_arr = self.decode(mask_rel, _read_mask)
                self.check_shape(mask_arr, hw, None, mask_rel, "mask")
                mask = torch.from_numpy(mask_arr)[None]
        targets = {t: self._read_target(t, stem, hw) for t in self.targets}
        return self._task.training_sample(rgb, targets, mask, rng, self.augment, self.resize, **self.options)

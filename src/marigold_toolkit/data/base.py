"""Training datasets: the common sample contract, errors and the shared base class.

Sample contract
===============

Every training dataset ``ds`` (see ``marigold_toolkit.data.TRAIN_DATASETS``) is indexable by an integer in
``range(len(ds))`` and decodes one sample with ::

    sample = ds.load(index, rng)      # rng: numpy.random.Generator

``rng`` is the ONLY source of randomness (flip, colour jitter, blur): the same ``(index, seed)`` always gives
the same tensors, so a training run is exactly reproducible and resumable (see
:class:`~marigold_toolkit.data.sampler.MixedMicroBatches`, which hands out one augmentation seed per sample).
With ``augment=False`` the rng is not used at all.

The returned ``dict`` holds:

* ``"rgb"``: ``torch.float32 [3, H, W]`` in [-1, 1], i.e. ``rgb / 255 * 2 - 1`` of the 8-bit image (the
  InteriorVerse appearance set, whose input is an HDR EXR, uses ``clip(x, 0, 1) ** (1/2.2) * 2 - 1``, not
  quantised, as the authors);
* depth datasets (``task == "depth"``): ``"depth"``: ``float32 [1, H, W]`` metres, raw (not filled; invalid
  pixels keep their stored value, usually 0); ``"valid_mask"``: ``bool [1, H, W]``,
  ``min_depth < depth < max_depth`` (both strict, the dataset's range; NaN invalid);
* normals datasets (``task == "normals"``): ``"normals"``: ``float32 [3, H, W]`` unit vectors in the camera frame
  **X right, Y up, Z towards the viewer** (each loader converts its source's convention); ``"valid_mask"``:
  ``bool [1, H, W]``, the pixels whose stored vector is usable (the authors train normals without a mask);
* intrinsics datasets (``task == "intrinsics"``): one ``float32 [3, H, W]`` tensor in [0, 1] per target name in
  ``ds.targets``, in the space the model predicts it in (e.g. InteriorVerse ``albedo`` in sRGB, Hypersim
  ``albedo`` linear, ``shading``/``residual`` divided by a per-image cut-off); ``"valid_mask"``:
  ``bool [1, H, W]``, the pixels valid for every target;
* ``"stem"``: ``str``, a unique filesystem-safe id of the sample (from its RGB path).

All spatial tensors are already at the training resolution the authors use for that dataset (``ds.resize``:
``(H, W)`` or ``None`` for the native size) and share one ``H, W``. A horizontal flip flips every raster and, for
normals, negates the X component.

Errors
======

* A missing data root or split file raises ``FileNotFoundError`` naming the path, in the constructor, before any
  sample is read.
* A sample whose files are missing, unreadable, corrupt or inconsistent raises :class:`CorruptSampleError`
  from ``load`` with the offending path and a one-line reason, so a trainer can log it and skip the sample.
"""

from __future__ import annotations

import logging
import operator
import os
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..io.dataset_files import DataSource, SplitEntry, stem_from_relpath

logger = logging.getLogger(__name__)

#: ``resize`` value that means "the dataset's default training resolution".
DEFAULT_RESIZE = None
#: interpolation modes accepted by :func:`resize_raster`
RESIZE_MODES = ("nearest-exact", "bilinear")


class CorruptSampleError(RuntimeError):
    """A sample cannot be decoded. ``path``: the file (``<archive>::<member>`` inside a tar) or sample;
    ``reason``: a one-line explanation. Trainers catch it to log and skip the sample."""

    def __init__(self, path: str | os.PathLike, reason: str | None = None):
        self.path = str(path)
        self.reason = reason
        super().__init__(self.path if reason is None else f"{self.path}: {reason}")

    def __reduce__(self):  # keep path and reason across DataLoader worker processes
        return (type(self), (self.path, self.reason))


# ----------------------------------------------------------------------------------------------------------
# raster helpers


def to_chw(arr: np.ndarray) -> torch.Tensor:
    """``[H, W]`` or ``[H, W, C]`` array -> ``float32 [C, H, W]`` tensor (a copy)."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[None]
    else:
        a = np.moveaxis(a, -1, 0)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def rgb_uint8_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` uint8 -> ``float32 [3, H, W]`` in [-1, 1] (``x / 255 * 2 - 1``)."""
    return to_chw(rgb) / 255.0 * 2.0 - 1.0


def resize_raster(t: torch.Tensor, size: tuple[int, int] | None, mode: str) -> torch.Tensor:
    """Resize a ``[C, H, W]`` tensor to ``size = (H, W)``.

    ``"bilinear"`` is antialiased with ``align_corners=False`` (torchvision's ``Resize`` on tensors, as the
    authors use it); ``"nearest-exact"`` is torchvision's ``NEAREST_EXACT``. Bool tensors are always resized
    with nearest-exact and stay bool. ``size=None`` or the current size returns the input.
    """
    if size is None or tuple(t.shape[-2:]) == tuple(size):
        return t
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; use one of {RESIZE_MODES}")
    if t.dtype == torch.bool:
        out = F.interpolate(t[None].float(), size=tuple(size), mode="nearest-exact")[0]
        return out > 0.5
    x = t[None].float()
    if mode == "bilinear":
        out = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    else:
        out = F.interpolate(x, size=tuple(size), mode="nearest-exact")
    return out[0].to(t.dtype)


def hflip(sample: dict[str, Any], normals_key: str | None = None) -> dict[str, Any]:
    """Flip every tensor of ``sample`` along the width; negate channel 0 (X) of ``sample[normals_key]``."""
    out = {k: (v.flip(-1) if torch.is_tensor(v) else v) for k, v in sample.items()}
    if normals_key is not None and normals_key in out:
        n = out[normals_key].clone()
        n[0] = -n[0]
        out[normals_key] = n
    return out


def range_mask(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """``(depth > min_depth) & (depth < max_depth)``, both strict; NaN is invalid."""
    return (depth > min_depth) & (depth < max_depth)


def check_hw(size: Any, what: str = "resize") -> tuple[int, int]:
    try:
        h, w = (operator.index(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an (H, W) pair of positive ints, got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{what} must be an (H, W) pair of positive ints, got {size!r}")
    return int(h), int(w)


def unit_normals(n: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Rescale ``[3, H, W]`` vectors to unit length where their length exceeds ``eps`` (others unchanged)."""
    norm = torch.linalg.vector_norm(n, dim=0, keepdim=True)
    return torch.where(norm > eps, n / norm.clamp_min(eps), n)


# ----------------------------------------------------------------------------------------------------------
# split files


def read_split_file(
    path: Path,
    parse_line: Callable[[list[str], int], SplitEntry | None],
    min_columns: int = 1,
    what: str = "",
) -> list[SplitEntry]:
    """Parse a whitespace-separated split file into entries (blank lines skipped; ``parse_line`` may drop a
    line by returning ``None``). Repeated stems are allowed for training (a warning is logged)."""
    entries: list[SplitEntry] = []
    seen: set[str] = set()
    repeats = 0
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            cols = line.split()
            if not cols or cols[0].startswith("#"):
                continue
            if len(cols) < min_columns:
                raise ValueError(
                    f"{path}:{line_no}: expected at least {min_columns} columns{what}, got {len(cols)}: "
                    f"{line.strip()!r}"
                )
            entry = parse_line(cols, line_no)
            if entry is None:
                continue
            if entry.stem in seen:
                repeats += 1
            seen.add(entry.stem)
            entries.append(entry)
    if repeats:
        logger.warning("%s: %d lines repeat an earlier sample; they are kept (sampled more often)", path, repeats)
    return entries


# ----------------------------------------------------------------------------------------------------------
# the base class


class TrainDataset:
    """A training dataset in a published on-disk layout: a data root (folder, or the authors' ``.tar``) plus a
    split file whose lines name each sample's files relative to the root.

    Subclasses set the class attributes and implement :meth:`_load_entry`.

    Args:
        root: data folder or ``.tar`` archive.
        split: split file; default: the first of ``split_files`` found in the data folder (the archive's
            folder for a tar root).
        resize: ``None`` = the dataset's default training resolution (``default_resize``); ``(H, W)`` = that
            size; ``False`` = keep the native size.
        augment: apply the authors' training augmentations (driven only by the ``rng`` passed to ``load``).
    """

    name: str = ""
    task: str = ""  # depth | normals | intrinsics
    targets: tuple[str, ...] = ()
    #: default split file names, tried in order in the data folder
    split_files: tuple[str, ...] = ()
    #: where the split file lives in the authors' repository (prs-eth/Marigold), for error messages
    split_source: str = ""
    min_columns: int = 2
    default_resize: tuple[int, int] | None = None
    #: number of samples in the authors' split file (None: unknown)
    num_samples: int | None = None

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | os.PathLike | None = None,
        resize: tuple[int, int] | bool | None = DEFAULT_RESIZE,
        augment: bool = True,
    ):
        self.root = Path(root)
        self._check_root()
        self.source = DataSource(self.root)
        self.resize = self._resolve_resize(resize)
        self.augment = bool(augment)
        self.split_path: Path | None = None
        self.entries: list[SplitEntry] = self._build_entries(split)

    # ---- construction helpers ------------------------------------------------------------------------------
    def _check_root(self) -> None:
        if not (self.root.is_dir() or (self.root.is_file() and tarfile.is_tarfile(self.root))):
            raise FileNotFoundError(
                f"{self.root}: data folder (or .tar archive) for training dataset '{self.name}' does not exist"
            )

    def _build_entries(self, split: str | os.PathLike | None) -> list[SplitEntry]:
        """Read the split file (``split`` or the default); sets ``self.split_path``."""
        self.split_path = Path(split) if split is not None else self._default_split_path()
        if not self.split_path.is_file():
            hint = f" (the authors' `{self.split_source}` from prs-eth/Marigold)" if self.split_source else ""
            raise FileNotFoundError(
                f"{self.split_path}: split file for training dataset '{self.name}' not found; place "
                f"{' or '.join(self.split_files) or 'it'}{hint} in the data folder or pass split=..."
            )
        return read_split_file(self.split_path, self.parse_line, self.min_columns)

    def _resolve_resize(self, resize) -> tuple[int, int] | None:
        if resize is None:
            return self.default_resize
        if resize is False:
            return None
        if resize is True:
            raise ValueError("resize=True is ambiguous: pass None (dataset default), (H, W) or False (native)")
        return check_hw(resize)

    def _data_folder(self) -> Path:
        return self.root if self.root.is_dir() else self.root.parent

    def _default_split_path(self) -> Path:
        folder = self._data_folder()
        for name in self.split_files:
            if (folder / name).is_file():
                return folder / name
        return folder / (self.split_files[0] if self.split_files else "split.txt")

    def parse_line(self, cols: list[str], line_no: int) -> SplitEntry | None:
        """One split line -> entry (``None`` drops the line). Default: the first column names the sample and
        the first ``min_columns`` columns are its files."""
        return SplitEntry(stem_from_relpath(cols[0]), tuple(cols[: self.min_columns]), line_no)

    # ---- access ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key) -> dict[str, Any]:
        """``ds[index]`` (augmentation seeded by the index) or ``ds[index, seed]``."""
        if isinstance(key, tuple):
            index, seed = key
        else:
            index, seed = key, key
        return self.load(index, np.random.default_rng(operator.index(seed)))

    def load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """Decode and augment sample ``index`` (see the module docstring for the contract).

        Raises:
            IndexError: ``index`` outside ``range(len(self))``.
            CorruptSampleError: the sample's files are missing, unreadable or inconsistent.
        """
        i = operator.index(index)
        if not 0 <= i < len(self.entries):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self.entries)} samples")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        entry = self.entries[i]
        sample = self._load_entry(entry, rng)
        sample["stem"] = entry.stem
        return sample

    def _load_entry(self, entry: SplitEntry, rng: np.random.Generator) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        self.source.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, resize={self.resize})"

    # ---- decoding helpers --------------------------------------------------------------------------------
    def describe(self, rel_path: str) -> str:
        """A readable location of ``rel_path``: the file path, or ``<archive>::<member>``."""
        local = self.source.local_path(rel_path)
        return str(local) if local is not None else f"{self.root}::{rel_path}"

    def decode(self, rel_path: str, reader: Callable[..., np.ndarray], *args) -> np.ndarray:
        """``reader(self.source, rel_path, *args)``; any failure becomes :class:`CorruptSampleError`."""
        try:
            return reader(self.source, rel_path, *args)
        except FileNotFoundError:
            raise CorruptSampleError(self.describe(rel_path), "file is missing") from None
        except Exception as err:  # decoders raise ValueError/OSError/EOFError/RuntimeError/... on bad bytes
            raise CorruptSampleError(self.describe(rel_path), f"cannot decode ({type(err).__name__}: {err})") from err

    def check_shape(self, arr: np.ndarray, hw: tuple[int, int], channels: int | None, rel_path: str, what: str):
        """Raise :class:`CorruptSampleError` unless ``arr`` is ``[H, W]`` (channels None) or ``[H, W, C]``."""
        ok = arr.ndim == 2 if channels is None else (arr.ndim == 3 and arr.shape[2] == channels)
        if not ok:
            want = "[H, W]" if channels is None else f"[H, W, {channels}]"
            raise CorruptSampleError(self.describe(rel_path), f"expected a {want} {what}, got shape {arr.shape}")
        if tuple(arr.shape[:2]) != tuple(hw):
            raise CorruptSampleError(
                self.describe(rel_path),
                f"{what} is {arr.shape[0]}x{arr.shape[1]} but the image is {hw[0]}x{hw[1]}",
            )


def dataset_lengths(datasets: Sequence[Any]) -> list[int]:
    """``len`` of each dataset (ints are taken as lengths)."""
    out = []
    for ds in datasets:
        n = ds if isinstance(ds, (int, np.integer)) else len(ds)
        out.append(int(n))
    return out

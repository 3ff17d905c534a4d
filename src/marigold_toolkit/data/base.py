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
* one tensor per target name in ``ds.targets``, in prediction units of the dataset's task (``ds.task``; each
  task's :meth:`~marigold_toolkit.tasks.base.Task.training_sample` documents its own):

  - depth: ``"depth"``: ``float32 [1, H, W]`` metres, raw (not filled; invalid pixels keep their stored value,
    usually 0); ``"valid_mask"``: ``min_depth < depth < max_depth`` (both strict, the dataset's range; NaN
    invalid);
  - normals: ``"normals"``: ``float32 [3, H, W]`` unit vectors in the camera frame **X right, Y up, Z towards
    the viewer** (each loader converts its source's convention); ``"valid_mask"``: the pixels whose stored
    vector is usable (the authors train normals without a mask);
  - intrinsics: ``float32 [3, H, W]`` in [0, 1] per target, in the space the model predicts it in (e.g.
    InteriorVerse ``albedo`` in sRGB, Hypersim ``albedo`` linear, ``shading``/``residual`` divided by a
    per-image cut-off); ``"valid_mask"``: the pixels valid for every target;
* ``"valid_mask"``: ``bool [1, H, W]``;
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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.checks import check_hw, check_map
from ..io.dataset_files import SplitFileDataset, SplitEntry

logger = logging.getLogger(__name__)

#: ``resize`` value that means "the dataset's default training resolution".
DEFAULT_RESIZE = None


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
# the base class


class TrainDataset(SplitFileDataset):
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

    kind = "training dataset"
    #: the registered task the samples are for (a :mod:`marigold_toolkit.tasks` name)
    task: str = ""
    targets: tuple[str, ...] = ()
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
        self.resize = self._resolve_resize(resize)
        self.augment = bool(augment)
        super().__init__(root, split)

    def _resolve_resize(self, resize) -> tuple[int, int] | None:
        if resize is None:
            return self.default_resize
        if resize is False:
            return None
        if resize is True:
            raise ValueError("resize=True is ambiguous: pass None (dataset default), (H, W) or False (native)")
        return check_hw(resize)

    # ---- access ------------------------------------------------------------------------------------------
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, resize={self.resize})"

    # ---- decoding helpers --------------------------------------------------------------------------------
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
        try:
            check_map(arr, hw, channels, what)
        except ValueError as err:
            raise CorruptSampleError(self.describe(rel_path), str(err)) from None


def dataset_lengths(datasets: Sequence[Any]) -> list[int]:
    """``len`` of each dataset (ints are taken as lengths)."""
    out = []
    for ds in datasets:
        n = ds if isinstance(ds, (int, np.integer)) else len(ds)
        out.append(int(n))
    return out

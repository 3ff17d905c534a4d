"""Training datasets in their published formats, and stateless mixing into micro-batches.

The sample contract (keys, units, frames, sizes, errors) is documented in :mod:`marigold_toolkit.data.base`.

=========================  ==========  =============================================  ====================
name                       task        targets                                        default size
=========================  ==========  =============================================  ====================
``hypersim_depth``         depth       depth (m)                                      480x640 (nearest)
``vkitti_depth``           depth       depth (m)                                      352x1216 crop
``hypersim_normals``       normals     normals                                        480x640 (bilinear)
``interiorverse_normals``  normals     normals                                        native
``sintel_normals``         normals     normals                                        436x582 crop->480x640
``interiorverse_iid``      intrinsics  albedo (sRGB), material (roughness, metal.)    native
``hypersim_iid``           intrinsics  albedo (linear), shading, residual             480x640 (bilinear)
``folder``                 any         your own data (see :mod:`.folder`)             native
=========================  ==========  =============================================  ====================

>>> from marigold_toolkit.data import get_train_dataset, MixedMicroBatches  # doctest: +SKIP
>>> hs = get_train_dataset("hypersim_depth", "data/hypersim/hypersim_processed_train.tar")  # doctest: +SKIP
>>> vk = get_train_dataset("vkitti_depth", "data/vkitti/vkitti.tar")  # doctest: +SKIP
>>> plan = MixedMicroBatches([hs, vk], [0.9, 0.1], micro_batch_size=2, seed=2024,
...                          num_micro_batches=30000 * 16)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

from ..core.checks import lookup
from .base import CorruptSampleError, TrainDataset
from .depth import HypersimDepth, VirtualKITTIDepth
from .folder import FolderDataset
from .intrinsics import HypersimIID, InteriorVerseIID
from .normals import HypersimNormals, InteriorVerseNormals, SintelNormals
from .sampler import MicroBatchDataset, MixedMicroBatches, collate, load_micro_batch

TRAIN_DATASETS: dict[str, type[TrainDataset]] = {
    cls.name: cls
    for cls in (
        HypersimDepth,
        VirtualKITTIDepth,
        HypersimNormals,
        InteriorVerseNormals,
        SintelNormals,
        InteriorVerseIID,
        HypersimIID,
        FolderDataset,
    )
}


def get_train_dataset(name: str, root: str | os.PathLike, split: str | os.PathLike | None = None,
                      **kwargs: Any) -> TrainDataset:
    """The training dataset ``name`` reading data under ``root``.

    ``kwargs`` go to the class (``resize``, ``augment`` and dataset-specific options such as ``crop_hw``,
    ``blur`` or the folder dataset's ``targets``).

    Raises:
        ValueError: unknown name (the message lists the known ones) or a bad option.
        FileNotFoundError: missing data root or split file.
    """
    return lookup(TRAIN_DATASETS, name, "training dataset")(root, split=split, **kwargs)


__all__ = [
    "TRAIN_DATASETS",
    "CorruptSampleError",
    "FolderDataset",
    "HypersimDepth",
    "HypersimIID",
    "HypersimNormals",
    "InteriorVerseIID",
    "InteriorVerseNormals",
    "MicroBatchDataset",
    "MixedMicroBatches",
    "SintelNormals",
    "TrainDataset",
    "VirtualKITTIDepth",
    "collate",
    "get_train_dataset",
    "load_micro_batch",
]

"""Evaluation dataset interface shared by the depth, normals and intrinsics benchmark loaders.

A benchmark reads its published on-disk format under a data root (a folder, or the authors' ``.tar`` archive),
in the order of the authors' split file, and yields :class:`EvalSample` objects with ground truth in evaluation
units and the validity mask already including the dataset's depth range and evaluation crop (the protocol's
step 1). :meth:`Benchmark.scoring_options` tells the task's scoring the rest of the dataset's protocol.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...io.dataset_files import SplitEntry, SplitFileDataset


@dataclass
class EvalSample:
    """One evaluation sample.

    Attributes:
        stem: unique, filesystem-safe id (used for cached prediction and per-image CSV rows).
        rgb: ``[H, W, 3]`` uint8 input image (after any benchmark crop such as KITTI's KB crop).
        gt: the ground truth in the task's units: depth ``[H, W]`` float32 metres; normals ``[H, W, 3]`` float32
            unit vectors; intrinsics: dict target name -> ``[H, W, 3]`` float32 in [0, 1].
        valid_mask: ``[H, W]`` bool, the pixels that are scored.
        meta: anything else (e.g. source paths, camera intrinsics).
    """

    stem: str
    rgb: np.ndarray
    gt: Any
    valid_mask: np.ndarray
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class InferenceDefaults:
    """The authors' inference settings for a benchmark."""

    processing_resolution: int
    num_inference_steps: int | None = None  # None: the checkpoint's default
    ensemble_size: int = 1
    seed: int = 1234
    resample_method: str = "bilinear"


class Benchmark(SplitFileDataset):
    """A benchmark: the authors' split file + the published file layout under ``root``.

    Class attributes describe the protocol; ``__getitem__`` decodes one sample. The split file is not shipped
    with this package: by default it is read from ``root/<split_file>`` (next to the archive for a tar root);
    ``split=`` points anywhere else. Sample ids must be unique.
    """

    kind = "benchmark"
    unique_stems = True
    #: the registered task the benchmark scores (a :mod:`marigold_toolkit.tasks` name)
    task: str = ""
    #: the task of the models it evaluates when that is another one (depth completion scores depth models)
    model_task: str | None = None
    num_samples: int | None = None  # published count, e.g. 654 for NYUv2
    min_depth: float = 0.0
    max_depth: float = float("inf")
    alignment: str = "least_squares"  # least_squares | least_squares_disparity | none
    alignment_max_res: int | None = None
    inference: InferenceDefaults = InferenceDefaults(processing_resolution=0)
    #: whether :meth:`predict` merges ensembles with the task's ensembling (``--reduction``, ``--ensembling-method``)
    task_ensembling: bool = True

    @abstractmethod
    def load(self, entry: SplitEntry) -> EvalSample:
        """Decode one entry from disk."""

    def scoring_options(self, sample: EvalSample, alignment: str | None = None) -> dict[str, Any]:
        """The keyword arguments of the task's :meth:`~marigold_toolkit.tasks.base.Task.score` for ``sample``
        under this benchmark's protocol (``alignment`` overrides the benchmark's where it applies). Default: the
        sample's valid mask."""
        return {"mask": sample.valid_mask}

    def predict(self, predictor, sample: EvalSample, settings) -> dict[str, np.ndarray]:
        """The prediction of ``sample`` to score (target name -> array) with ``settings`` (the runner's
        :class:`~marigold_toolkit.evaluation.runner.InferenceSettings`). Default: the predictor on the image."""
        return predictor.predict(
            sample.rgb, num_inference_steps=settings.num_inference_steps, ensemble_size=settings.ensemble_size,
            processing_resolution=settings.processing_resolution, resample_method_input=settings.resample_method,
            resample_method_output=settings.resample_method, batch_size=settings.batch_size, seed=settings.seed,
            output_uncertainty=False, noise=settings.noise, ensembling_kwargs=settings.ensembling_kwargs,
        ).targets

    def __getitem__(self, i: int) -> EvalSample:
        return self.load(self.entries[i])

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

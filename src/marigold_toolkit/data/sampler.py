"""Stateless mixing of several training sets into micro-batches, for exactly resumable training.

The authors' ``MixedBatchSampler`` (``src/dataset/mixed_sampler.py``) draws, for every batch, a dataset with
probability ``prob_ls`` and pops a whole batch from that dataset's shuffled ``BatchSampler`` (``drop_last``),
refilling it when empty; batches never mix datasets, so datasets of different resolutions can be combined.
Its state lives in iterators, so resuming mid-epoch needs the whole history replayed.

:class:`MixedMicroBatches` gives the same distribution as a pure function of the global micro-batch index ``k``:

* dataset of micro-batch ``k``: ``choices[k]``, drawn once for all ``k`` by ``numpy.random.default_rng(seed)``
  with probabilities ``probs`` (the analogue of the authors' global seed sequence);
* if ``k`` is the ``j``-th micro-batch drawn from dataset ``d`` (``j`` counted from 0), it belongs to that
  dataset's epoch ``e = j // B_d`` and takes slot ``b = j % B_d``, with ``B_d = len(d) // micro_batch_size``
  (``drop_last``); the indices are ``perm[b * m:(b + 1) * m]`` of the permutation drawn by
  ``numpy.random.default_rng([seed, 1, d, e])``, so every dataset epoch visits each index at most once (the
  ``len(d) % m`` left-over indices of an epoch are dropped, a different set each epoch);
* each sample gets an augmentation seed from ``numpy.random.default_rng([seed, 2, k])``.

``micro_batch(k)`` therefore depends only on ``(k, seed, probs, lengths, micro_batch_size)``: a resumed run asks
for ``micro_batch(k)`` from its saved ``k`` on and sees exactly what an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import operator
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .base import CorruptSampleError, dataset_lengths

logger = logging.getLogger(__name__)

_PERM_TAG = 1
_AUG_TAG = 2


class MixedMicroBatches:
    """Which samples form global micro-batch ``k`` (``0 <= k < num_micro_batches``).

    Args:
        datasets: the training sets (anything with ``len``) or their lengths.
        probs: the probability of drawing each dataset (normalised to sum 1; zero allowed).
        micro_batch_size: samples per micro-batch.
        seed: the one seed everything derives from (a non-negative int).
        num_micro_batches: how many micro-batches to plan, e.g. ``max_iter * accumulation_steps``.
    """

    def __init__(self, datasets: Sequence[Any], probs: Sequence[float] | None, micro_batch_size: int, seed: int,
                 num_micro_batches: int):
        self.lengths = dataset_lengths(datasets)
        n = len(self.lengths)
        if n == 0:
            raise ValueError("MixedMicroBatches needs at least one dataset")
        self.micro_batch_size = operator.index(micro_batch_size)
        if self.micro_batch_size <= 0:
            raise ValueError(f"micro_batch_size must be positive, got {micro_batch_size}")
        self.seed = operator.index(seed)
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        self.num_micro_batches = operator.index(num_micro_batches)
        if self.num_micro_batches < 0:
            raise ValueError(f"num_micro_batches must be >= 0, got {num_micro_batches}")

        p = np.full(n, 1.0 / n) if probs is None else np.asarray(probs, dtype=np.float64)
        if p.shape != (n,):
            raise ValueError(f"probs has {p.size} entries for {n} datasets")
        if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError(f"probs must be finite, non-negative and not all zero, got {list(p)}")
        self.probs = p / p.sum()
        self.batches_per_epoch = [length // self.micro_batch_size for length in self.lengths]
        for d, (length, nb) in enumerate(zip(self.lengths, self.batches_per_epoch)):
            if self.probs[d] > 0 and nb == 0:
                raise ValueError(
                    f"dataset {d} has {length} samples, fewer than one micro-batch of {self.micro_batch_size} "
                    "(drop_last); give it probability 0 or more samples"
                )

        rng = np.random.default_rng(self.seed)
        dtype = np.int8 if n < 128 else np.int32
        self._choice = rng.choice(n, size=self.num_micro_batches, p=self.probs).astype(dtype)
        # ordinal of micro-batch k among those drawn from the same dataset
        self._ordinal = np.zeros(self.num_micro_batches, dtype=np.int64)
        for d in range(n):
            where = np.flatnonzero(self._choice == d)
            self._ordinal[where] = np.arange(where.size)
        self._perm_cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._perm_cache_size = 2 * n + 2

    # ---- queries ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_micro_batches

    @property
    def num_datasets(self) -> int:
        return len(self.lengths)

    def _check_k(self, k: int) -> int:
        k = operator.index(k)
        if not 0 <= k < self.num_micro_batches:
            raise IndexError(f"micro-batch {k} out of range [0, {self.num_micro_batches})")
        return k

    def dataset_of(self, k: int) -> int:
        """The dataset id micro-batch ``k`` draws from."""
        return int(self._choice[self._check_k(k)])

    def epoch_of(self, k: int) -> int:
        """The epoch of its dataset that micro-batch ``k`` belongs to (0-based)."""
        k = self._check_k(k)
        return int(self._ordinal[k] // self.batches_per_epoch[int(self._choice[k])])

    def permutation(self, dataset_id: int, epoch: int) -> np.ndarray:
        """The shuffled order of dataset ``dataset_id`` in its epoch ``epoch`` (a pure function; memoised)."""
        key = (int(dataset_id), int(epoch))
        perm = self._perm_cache.get(key)
        if perm is None:
            perm = np.random.default_rng([self.seed, _PERM_TAG, key[0], key[1]]).permutation(self.lengths[key[0]])
            perm.setflags(write=False)
            self._perm_cache[key] = perm
            if len(self._perm_cache) > self._perm_cache_size:
                self._perm_cache.popitem(last=False)
        else:
            self._perm_cache.move_to_end(key)
        return perm

    def aug_seeds(self, k: int) -> list[int]:
        """The augmentation seeds of the samples of micro-batch ``k``."""
        k = self._check_k(k)
        rng = np.random.default_rng([self.seed, _AUG_TAG, k])
        return [int(s) for s in rng.integers(0, 2**63 - 1, size=self.micro_batch_size, dtype=np.int64)]

    def micro_batch(self, k: int) -> list[tuple[int, int, int]]:
        """``[(dataset_id, index, aug_seed), ...]`` (``micro_batch_size`` entries, one dataset) for micro-batch
        ``k``; load each with ``datasets[dataset_id].load(index, numpy.random.default_rng(aug_seed))``."""
        k = self._check_k(k)
        d = int(self._choice[k])
        nb = self.batches_per_epoch[d]
        epoch, slot = divmod(int(self._ordinal[k]), nb)
        m = self.micro_batch_size
        idx = self.permutation(d, epoch)[slot * m: (slot + 1) * m]
        return [(d, int(i), s) for i, s in zip(idx, self.aug_seeds(k))]

    __getitem__ = micro_batch

    def __iter__(self):
        for k in range(self.num_micro_batches):
            yield self.micro_batch(k)

    def state_dict(self) -> dict[str, Any]:
        """What defines the plan (to check on resume that it has not changed)."""
        return {
            "lengths": list(self.lengths),
            "probs": [float(p) for p in self.probs],
            "micro_batch_size": self.micro_batch_size,
            "seed": self.seed,
            "num_micro_batches": self.num_micro_batches,
        }

    def __repr__(self) -> str:
        return (f"MixedMicroBatches(lengths={self.lengths}, probs={[round(float(p), 4) for p in self.probs]}, "
                f"micro_batch_size={self.micro_batch_size}, seed={self.seed}, n={self.num_micro_batches})")


# ----------------------------------------------------------------------------------------------------------
# loading a planned micro-batch


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors of samples from one dataset (``[B, ...]``); other values become lists."""
    if not samples:
        return {}
    keys = list(samples[0])
    for s in samples[1:]:
        if list(s) != keys:
            raise ValueError(f"samples have different keys: {keys} vs {list(s)}")
    out: dict[str, Any] = {}
    for key in keys:
        vals = [s[key] for s in samples]
        if torch.is_tensor(vals[0]):
            shapes = {tuple(v.shape) for v in vals}
            if len(shapes) > 1:
                raise ValueError(
                    f"cannot batch {key!r} of shapes {sorted(shapes)}; give the dataset a fixed resize=(H, W)"
                )
            out[key] = torch.stack(vals)
        else:
            out[key] = vals
    return out


def load_micro_batch(datasets: Sequence[Any], entries: list[tuple[int, int, int]], skip_corrupt: bool = True
                     ) -> dict[str, Any]:
    """Load and collate the entries of one :meth:`MixedMicroBatches.micro_batch`.

    Corrupt samples (:class:`~marigold_toolkit.data.base.CorruptSampleError`) are logged and left out when
    ``skip_corrupt`` (listed under ``"skipped"`` as ``(dataset_id, index, path, reason)``); the batch may then be
    smaller, or empty (``"size": 0``). ``"dataset_id"`` and ``"index"`` list where each kept sample came from.
    """
    samples, kept, skipped = [], [], []
    for d, i, seed in entries:
        try:
            samples.append(datasets[d].load(i, np.random.default_rng(seed)))
            kept.append((d, i))
        except CorruptSampleError as err:
            if not skip_corrupt:
                raise
            logger.warning("skipping corrupt sample %d of dataset %d: %s", i, d, err)
            skipped.append((d, i, err.path, err.reason))
    batch = collate(samples)
    batch["size"] = len(samples)
    batch["dataset_id"] = [d for d, _ in kept]
    batch["index"] = [i for _, i in kept]
    batch["skipped"] = skipped
    return batch


class MicroBatchDataset(torch.utils.data.Dataset):
    """Item ``k`` = the collated micro-batch ``k`` of ``plan``, for a ``DataLoader(..., batch_size=None)``; pass
    ``sampler=range(start_k, len(plan))`` to resume."""

    def __init__(self, datasets: Sequence[Any], plan: MixedMicroBatches, skip_corrupt: bool = True):
        if len(datasets) != plan.num_datasets:
            raise ValueError(f"{len(datasets)} datasets for a plan over {plan.num_datasets}")
        self.datasets = list(datasets)
        self.plan = plan
        self.skip_corrupt = skip_corrupt

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int) -> dict[str, Any]:
        batch = load_micro_batch(self.datasets, self.plan.micro_batch(k), self.skip_corrupt)
        batch["k"] = int(k)
        return batch

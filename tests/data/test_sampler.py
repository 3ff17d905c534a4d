"""MixedMicroBatches: a stateless, exactly resumable mixed-dataset micro-batch plan."""

from __future__ import annotations

import logging
import pickle
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from marigold_toolkit.data import HypersimDepth, MicroBatchDataset, MixedMicroBatches, load_micro_batch

from . import fixtures as fx

LENGTHS = [10, 7, 30]
PROBS = [0.5, 0.3, 0.2]


def _plan(**kw):
    args = {"datasets": LENGTHS, "probs": PROBS, "micro_batch_size": 2, "seed": 2024, "num_micro_batches": 600}
    args.update(kw)
    return MixedMicroBatches(**args)


def test_micro_batch_is_a_pure_function_of_k():
    a, b = _plan(), _plan()
    forward = [a.micro_batch(k) for k in range(len(a))]
    order = np.random.default_rng(0).permutation(len(b))
    shuffled = {int(k): b.micro_batch(int(k)) for k in order}
    assert forward == [shuffled[k] for k in range(len(b))]
    assert [a.micro_batch(k) for k in reversed(range(len(a)))] == forward[::-1]
    assert list(a) == forward and a[5] == forward[5]
    # a shorter plan with the same seed is a prefix (resume with a changed max_iter is consistent)
    short = _plan(num_micro_batches=100)
    assert [short.micro_batch(k) for k in range(100)] == forward[:100]
    # another seed, another plan
    assert [_plan(seed=7).micro_batch(k) for k in range(50)] != forward[:50]


def test_entries_are_well_formed_and_single_dataset():
    plan = _plan()
    assert len(plan) == 600
    for k in range(len(plan)):
        batch = plan.micro_batch(k)
        assert len(batch) == 2
        assert len({d for d, _, _ in batch}) == 1 and batch[0][0] == plan.dataset_of(k)
        d = batch[0][0]
        assert all(0 <= i < LENGTHS[d] for _, i, _ in batch)
        assert all(isinstance(x, int) for entry in batch for x in entry)
        assert batch[0][2] != batch[1][2]  # one augmentation seed per sample
    seeds = [s for k in range(len(plan)) for _, _, s in plan.micro_batch(k)]
    assert len(set(seeds)) == len(seeds)
    with pytest.raises(IndexError):
        plan.micro_batch(600)
    with pytest.raises(IndexError):
        plan.micro_batch(-1)


def test_dataset_probabilities_are_respected():
    plan = _plan(num_micro_batches=20000)
    counts = Counter(plan.dataset_of(k) for k in range(len(plan)))
    for d, p in enumerate(PROBS):
        assert abs(counts[d] / len(plan) - p) < 0.02
    zero = _plan(probs=[1.0, 0.0, 1.0], num_micro_batches=500)
    assert 1 not in {zero.dataset_of(k) for k in range(len(zero))}


def test_each_dataset_epoch_covers_every_index_once():
    plan = _plan(num_micro_batches=3000)
    per_epoch: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k in range(len(plan)):
        for d, i, _ in plan.micro_batch(k):
            per_epoch[(d, plan.epoch_of(k))].append(i)
    full = {key: idx for key, idx in per_epoch.items() if len(idx) == (LENGTHS[key[0]] // 2) * 2}
    assert {d for d, _ in full} == {0, 1, 2}
    for (d, e), idx in full.items():
        assert len(set(idx)) == len(idx)  # no repeats within an epoch
        if LENGTHS[d] % 2 == 0:
            assert sorted(idx) == list(range(LENGTHS[d]))  # every index exactly once
        else:
            assert len(idx) == LENGTHS[d] - 1  # drop_last leaves one out
    # epochs are reshuffled
    assert per_epoch[(0, 0)] != per_epoch[(0, 1)]


def test_validation_of_arguments():
    with pytest.raises(ValueError, match="fewer than one micro-batch"):
        MixedMicroBatches([1, 10], [0.5, 0.5], 2, 0, 10)
    MixedMicroBatches([1, 10], [0.0, 1.0], 2, 0, 10)  # fine when never drawn
    with pytest.raises(ValueError, match="probs"):
        MixedMicroBatches([4, 4], [1.0], 2, 0, 10)
    with pytest.raises(ValueError, match="non-negative"):
        MixedMicroBatches([4, 4], [1.0, -1.0], 2, 0, 10)
    plan = MixedMicroBatches([4, 4], None, 2, 0, 10)
    assert plan.probs.tolist() == [0.5, 0.5]
    assert plan.state_dict()["lengths"] == [4, 4]


def test_load_micro_batch_collates_and_skips_corrupt(tmp_path, caplog):
    data = fx.hypersim_depth(tmp_path, np.random.default_rng(0), n=4)
    ds = HypersimDepth(tmp_path, resize=(6, 8))
    plan = MixedMicroBatches([ds], [1.0], 2, 2024, 8)
    batch = load_micro_batch([ds], plan.micro_batch(0))
    assert batch["size"] == 2 and batch["rgb"].shape == (2, 3, 6, 8) and batch["depth"].shape == (2, 1, 6, 8)
    assert batch["valid_mask"].dtype == torch.bool and len(batch["stem"]) == 2 and batch["skipped"] == []
    again = load_micro_batch([ds], plan.micro_batch(0))
    assert torch.equal(batch["rgb"], again["rgb"])  # reproducible, augmentation included

    bad = batch["index"][0]
    (tmp_path / data[bad]["depth_rel"]).write_bytes(b"broken")
    with caplog.at_level(logging.WARNING, logger="marigold_toolkit.data.sampler"):
        partial = load_micro_batch([ds], plan.micro_batch(0))
    assert partial["size"] == 1 and partial["index"] == [batch["index"][1]]
    assert partial["skipped"][0][:2] == (0, bad) and "corrupt" in caplog.text

    mbd = MicroBatchDataset([ds], plan)
    loader = torch.utils.data.DataLoader(mbd, batch_size=None, sampler=range(3, 8))
    ks = [b["k"] for b in loader]
    assert ks == [3, 4, 5, 6, 7]
    # what DataLoader workers receive: a pickled copy giving the same batches
    clone = pickle.loads(pickle.dumps(mbd))
    assert torch.equal(clone[4]["rgb"], mbd[4]["rgb"]) and clone.plan.micro_batch(7) == plan.micro_batch(7)

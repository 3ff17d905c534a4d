"""Seeds, settings hashes, output encodings, the shard plan and the collector: the pure parts of labelling."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from marigold_toolkit.checkpoints.loading import load_spec
from marigold_toolkit.io.files import png16_bytes, quantize_uint16, read_png16
from marigold_toolkit.label.records import (
    Failure,
    InferenceSettings,
    LabelRow,
    content_sha256,
    decode_value,
    encode_output,
    image_seed,
    output_columns,
    result_settings,
    settings_hash,
)
from marigold_toolkit.label.shards import FinishedShard, ShardCollector, plan_shards
from marigold_toolkit.label.sources import Item
from marigold_toolkit.pipeline.outputs import MarigoldOutput
from marigold_toolkit.tasks import get_task


def test_image_seed_depends_on_seed_and_content_only():
    a, b = content_sha256(b"image a"), content_sha256(b"image b")
    seeds = {image_seed(s, h) for s in (0, 1, 2**40) for h in (a, b)}
    assert len(seeds) == 6
    assert all(0 <= s < 2**63 for s in seeds)
    assert image_seed(0, a) == image_seed(0, a)
    assert image_seed(7, content_sha256(b"")) == 5702202125820243673  # a fixed rule, not Python's hash()


def test_settings_hash_covers_what_defines_the_numbers(depth_ckpt):
    spec = load_spec(str(depth_ckpt))
    base = InferenceSettings(num_inference_steps=1, processing_resolution=64)
    h = settings_hash(result_settings(spec, base))
    assert h == settings_hash(result_settings(spec, InferenceSettings(num_inference_steps=1, processing_resolution=64,
                                                                     batch_size=4, device="cpu")))
    # the checkpoint's default (4 steps, 768 px for v1-1) is filled in: naming it changes nothing
    assert (settings_hash(result_settings(spec, InferenceSettings()))
            == settings_hash(result_settings(spec, InferenceSettings(num_inference_steps=4, processing_resolution=768))))
    for change in (dict(seed=1), dict(ensemble_size=2), dict(processing_resolution=96), dict(dtype="bfloat16"),
                   dict(resample="bicubic"), dict(match_input_resolution=False), dict(noise="zeros")):
        kw = dict(num_inference_steps=1, processing_resolution=64) | change
        assert settings_hash(result_settings(spec, InferenceSettings(**kw))) != h, change


@pytest.mark.parametrize("task_name, targets, expected", [
    ("depth", None, {"depth": ("png16", [0.0, 1.0]), "depth_uncertainty": ("png16", [0.0, 1.0])}),
    ("normals", None, {"normals": ("npy", None), "normals_uncertainty": ("png16", [0.0, 1.0])}),
    ("intrinsics", ["albedo", "shading", "residual"],
     {"albedo": ("npy", None), "albedo_uncertainty": ("npy", None), "shading": ("npy", None),
      "shading_uncertainty": ("npy", None), "residual": ("npy", None), "residual_uncertainty": ("npy", None)}),
])
def test_output_columns_follow_the_task(task_name, targets, expected):
    task = get_task(task_name)(targets)
    cols = output_columns(task, with_uncertainty=True)
    assert {c.name: (c.encoding, c.describe().get("value_range")) for c in cols} == expected
    assert [c.name for c in output_columns(task, with_uncertainty=False)] == [n for n in expected
                                                                            if not n.endswith("_uncertainty")]


def test_encodings_round_trip_exactly():
    rng = np.random.default_rng(0)
    depth = rng.random((5, 7)).astype(np.float32)
    normals = rng.uniform(-1, 1, (5, 7, 3)).astype(np.float32)
    unc = rng.random((5, 7)).astype(np.float32) * 0.1
    task = get_task("normals")()
    cols = output_columns(task, with_uncertainty=True)
    out = MarigoldOutput("normals", {"normals": normals}, {"normals": unc})
    enc = encode_output(cols, out)
    desc = {c.name: c.describe() for c in cols}
    np.testing.assert_array_equal(decode_value(desc["normals"], enc["normals"]), normals.astype(np.float16))
    assert decode_value(desc["normals"], enc["normals"]).dtype == np.float16
    np.testing.assert_array_equal(read_png16(enc["normals_uncertainty"]), quantize_uint16(unc, (0.0, 1.0)))
    depth_cols = output_columns(get_task("depth")(), with_uncertainty=False)
    d = encode_output(depth_cols, MarigoldOutput("depth", {"depth": depth}))["depth"]
    assert d == png16_bytes(depth, (0.0, 1.0))  # the 16-bit PNG predict's _depth.png and the server write
    np.testing.assert_array_equal(read_png16(d), quantize_uint16(depth, (0.0, 1.0)))
    assert np.abs(decode_value(depth_cols[0].describe(), d) - depth).max() <= 1 / 65535


def _items(n):
    return [Item(f"k{i:03d}", f"k{i:03d}") for i in range(n)]


def test_plan_is_reproduced_whatever_shards_finished():
    """With an unchanged input list, any set of finished shards leaves exactly the other shards of the first plan."""
    items = _items(23)
    first = plan_shards(items, 4)
    assert [len(s.items) for s in first] == [4, 4, 4, 4, 4, 3]
    rng = random.Random(0)
    for _ in range(20):
        done = rng.sample(first, rng.randint(0, len(first)))
        finished = []
        for s in done:  # some keys of a finished shard may have failed: still the shard's
            keys = [i.key for i in s.items]
            finished.append(FinishedShard(s.index, Path(f"part-{s.index:05d}"), keys[1:], [Failure(keys[0], "x")], ""))
        rest = plan_shards(items, 4, finished)
        assert ({s.index: [i.key for i in s.items] for s in rest}
                == {s.index: [i.key for i in s.items] for s in first if s not in done})


def test_plan_after_the_inputs_changed_never_replans_a_finished_key():
    old = _items(10)
    finished = [FinishedShard(s.index, Path("p"), [i.key for i in s.items], [], "")
                for s in plan_shards(old, 4)[:2]]  # shards 0, 1 done
    new = sorted(_items(10)[3:] + [Item("a-new", "a-new"), Item("k100", "k100")], key=lambda i: i.key)
    plan = plan_shards(new, 4, finished)
    keys = [i.key for s in plan for i in s.items]
    done = {k for f in finished for k in f.keys}
    assert not done & set(keys)
    assert sorted(keys) == sorted({i.key for i in new} - done)
    assert [s.index for s in plan] == [2]  # the lowest free number
    assert sorted(keys) == ["a-new", "k008", "k009", "k100"]


def test_collector_writes_each_shard_once_and_drops_repeats():
    written = []

    class Writer:
        def write(self, index, rows, failed):
            written.append((index, sorted(r.key for r in rows), sorted(f.key for f in failed)))
            return Path(f"part-{index:05d}")

    shards = plan_shards(_items(5), 2)
    c = ShardCollector(shards, Writer())
    row = lambda k: LabelRow(k, "s", 1, 1, 0)
    for r in [row("k001"), row("k004"), row("k001"), Failure("k000", "corrupt"), row("k004")]:
        c.add(r)
    assert written == [(2, ["k004"], []), (0, ["k001"], ["k000"])]
    assert c.duplicates == 2 and not c.complete
    c.add(row("k002"))
    c.add(row("k003"))
    assert written[-1] == (1, ["k002", "k003"], []) and c.complete

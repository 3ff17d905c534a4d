"""Depth training sets: Hypersim (preprocessed) and Virtual KITTI 2 in their published formats."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from marigold_toolkit.data import CorruptSampleError, HypersimDepth, VirtualKITTIDepth, get_train_dataset

from . import fixtures as fx


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_hypersim_depth_units_mask_and_rgb(tmp_path):
    data = fx.hypersim_depth(tmp_path, _rng())
    ds = get_train_dataset("hypersim_depth", tmp_path, resize=False, augment=False)
    assert isinstance(ds, HypersimDepth) and len(ds) == 2 and ds.task == "depth"
    s = ds.load(0, _rng())
    assert set(s) == {"rgb", "depth", "valid_mask", "stem"}
    assert s["stem"] == "ai_001_001__rgb_cam_00_fr0000"
    assert s["rgb"].dtype == torch.float32 and s["rgb"].shape == (3, 12, 16)
    expected_rgb = torch.from_numpy(data[0]["rgb"]).permute(2, 0, 1).float() / 255 * 2 - 1
    torch.testing.assert_close(s["rgb"], expected_rgb)
    assert s["depth"].dtype == torch.float32 and s["depth"].shape == (1, 12, 16)
    np.testing.assert_allclose(s["depth"][0].numpy(), data[0]["mm"] / 1000.0, rtol=1e-6)
    mask = s["valid_mask"]
    assert mask.dtype == torch.bool and mask.shape == (1, 12, 16)
    assert not mask[0, 0, 0]  # 0 = invalid
    assert not mask[0, 0, 1]  # 65.535 m > 65
    assert not mask[0, 1, 0]  # 65.0 m: strict
    assert s["depth"][0, 0, 0] == 0.0  # raw, not filled
    assert mask.sum() == 12 * 16 - 3


def test_hypersim_depth_default_resize_is_nearest_exact_480x640(tmp_path):
    data = fx.hypersim_depth(tmp_path, _rng(), n=1)
    ds = HypersimDepth(tmp_path, augment=False)
    assert ds.resize == (480, 640)
    s = ds.load(0, _rng())
    assert s["rgb"].shape == (3, 480, 640) and s["depth"].shape == (1, 480, 640)
    assert s["valid_mask"].shape == (1, 480, 640)
    # nearest: only stored values, for RGB as well (the authors resize RGB with NEAREST_EXACT for depth)
    assert set(np.unique(s["depth"].numpy())) <= set(np.unique(data[0]["mm"] / 1000.0).astype(np.float32))
    rgb_vals = np.unique(((s["rgb"].numpy() + 1) / 2 * 255).round())
    assert set(rgb_vals) <= set(np.unique(data[0]["rgb"]).astype(np.float64))
    # 12x16 -> 480x640 is an exact 40x upscale: pixel (0, 0) of the source covers the top-left 40x40 block
    assert not s["valid_mask"][0, :40, :40].any() and s["valid_mask"][0, 40:80, 80:120].all()


def test_hypersim_depth_reduced_resize(tmp_path):
    fx.hypersim_depth(tmp_path, _rng(), n=1)
    s = HypersimDepth(tmp_path, resize=(6, 8), augment=False).load(0, _rng())
    assert s["rgb"].shape == (3, 6, 8) and s["depth"].shape == (1, 6, 8) and s["valid_mask"].shape == (1, 6, 8)
    torch.testing.assert_close(s["valid_mask"], (s["depth"] > 1e-5) & (s["depth"] < 65.0))


def test_hypersim_depth_reads_the_authors_tar_and_falls_back_to_unfiltered_list(tmp_path):
    folder = tmp_path / "train"
    data = fx.hypersim_depth(folder, _rng(), split_name="filename_list_train.txt")
    tar = fx.make_tar(folder, tmp_path / "hypersim_processed_train.tar", dot_prefix=True)
    (tmp_path / "filename_list_train.txt").write_text((folder / "filename_list_train.txt").read_text())
    ds = HypersimDepth(tar, resize=False, augment=False)
    assert ds.split_path.name == "filename_list_train.txt"
    s = ds.load(1, _rng())
    np.testing.assert_allclose(s["depth"][0].numpy(), data[1]["mm"] / 1000.0, rtol=1e-6)


def test_hypersim_depth_flip_and_determinism(tmp_path):
    fx.hypersim_depth(tmp_path, _rng(), n=1)
    plain = HypersimDepth(tmp_path, resize=False, augment=False).load(0, _rng())
    ds = HypersimDepth(tmp_path, resize=False, augment=True)
    outs = [ds.load(0, np.random.default_rng(seed)) for seed in range(12)]
    flipped = [torch.equal(o["depth"], plain["depth"].flip(-1)) for o in outs]
    unflipped = [torch.equal(o["depth"], plain["depth"]) for o in outs]
    assert all(f != u for f, u in zip(flipped, unflipped))
    assert any(flipped) and any(unflipped)  # both outcomes over 12 seeds (p = 0.5 each)
    for o, f in zip(outs, flipped):
        ref = {k: (v.flip(-1) if f else v) for k, v in plain.items() if torch.is_tensor(v)}
        for k in ("rgb", "depth", "valid_mask"):
            assert torch.equal(o[k], ref[k])
    # same seed -> same sample
    again = ds.load(0, np.random.default_rng(5))
    assert all(torch.equal(again[k], outs[5][k]) for k in ("rgb", "depth", "valid_mask"))
    # augment=False never touches the rng
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    HypersimDepth(tmp_path, resize=False, augment=False).load(0, rng)
    assert rng.bit_generator.state == state


def test_vkitti_depth_kitti_benchmark_crop_units_and_none_lines(tmp_path):
    data = fx.vkitti_depth(tmp_path, _rng(), hw=(10, 20))
    ds = get_train_dataset("vkitti_depth", tmp_path, augment=False, crop_hw=(6, 12))
    assert isinstance(ds, VirtualKITTIDepth) and len(ds) == 2  # the "None" line is dropped
    assert ds.resize is None
    s = ds.load(0, _rng())
    assert s["rgb"].shape == (3, 6, 12) and s["depth"].shape == (1, 6, 12)
    # bottom 6 rows, centred 12 columns: top = 10 - 6, left = (20 - 12) // 2
    np.testing.assert_allclose(s["depth"][0].numpy(), data[0]["cm"][4:10, 4:16] / 100.0, rtol=1e-6)
    assert s["stem"] == "rgb__Scene02__clone__frames__rgb__Camera_0__rgb_00000"
    m = s["valid_mask"][0]
    assert not m[-1, 20 // 2 - 4]  # 655.35 m
    assert not m[-2, 20 // 2 - 4]  # 80 m exactly (strict)
    assert m.sum() == 6 * 12 - 2
    torch.testing.assert_close(s["valid_mask"], (s["depth"] > 1e-5) & (s["depth"] < 80.0))


def test_vkitti_depth_default_crop_on_a_full_size_frame(tmp_path):
    rgb = fx.random_rgb(_rng(), 375, 1242)
    cm = np.full((375, 1242), 1234, dtype=np.uint16)
    cm[-352:, 13:13 + 1216] = 2000
    fx.write_rgb(tmp_path / "rgb/a/rgb_00000.jpg", rgb, fmt="JPEG")
    fx.write_png16(tmp_path / "depth/a/depth_00000.png", cm)
    fx.write_split(tmp_path / "vkitti_train.txt", ["rgb/a/rgb_00000.jpg depth/a/depth_00000.png"])
    s = VirtualKITTIDepth(tmp_path, augment=False).load(0, _rng())
    assert s["rgb"].shape == (3, 352, 1216)
    assert torch.all(s["depth"] == 20.0)


def test_vkitti_frame_smaller_than_crop_is_corrupt(tmp_path):
    fx.vkitti_depth(tmp_path, _rng(), hw=(10, 20), n=1)
    with pytest.raises(CorruptSampleError, match="smaller than the KITTI benchmark crop"):
        VirtualKITTIDepth(tmp_path).load(0, _rng())


def test_depth_corrupt_and_missing_files(tmp_path):
    data = fx.hypersim_depth(tmp_path, _rng())
    (tmp_path / data[0]["depth_rel"]).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / data[1]["rgb_rel"]).unlink()
    ds = HypersimDepth(tmp_path, resize=False)
    with pytest.raises(CorruptSampleError) as err:
        ds.load(0, _rng())
    assert err.value.path == str(tmp_path / data[0]["depth_rel"]) and "cannot decode" in err.value.reason
    with pytest.raises(CorruptSampleError, match="missing") as err:
        ds.load(1, _rng())
    assert err.value.path.endswith(data[1]["rgb_rel"])
    # survives pickling (DataLoader workers)
    again = pickle.loads(pickle.dumps(err.value))
    assert isinstance(again, CorruptSampleError) and again.path == err.value.path and again.reason == err.value.reason


def test_depth_shape_mismatch_is_corrupt(tmp_path):
    data = fx.hypersim_depth(tmp_path, _rng(), n=1)
    fx.write_png16(tmp_path / data[0]["depth_rel"], np.ones((5, 5), dtype=np.uint16))
    with pytest.raises(CorruptSampleError, match="5x5 but the image is 12x16"):
        HypersimDepth(tmp_path).load(0, _rng())


def test_missing_root_and_split_raise_in_the_constructor(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        HypersimDepth(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="filename_list_train_filtered.txt"):
        HypersimDepth(tmp_path)
    with pytest.raises(FileNotFoundError, match="my_split.txt"):
        VirtualKITTIDepth(tmp_path, split=tmp_path / "my_split.txt")
    with pytest.raises(ValueError, match="unknown training dataset"):
        get_train_dataset("nyu_depth", tmp_path)


def test_index_and_rng_are_checked(tmp_path):
    fx.hypersim_depth(tmp_path, _rng(), n=1)
    ds = HypersimDepth(tmp_path, resize=False)
    with pytest.raises(IndexError):
        ds.load(1, _rng())
    with pytest.raises(TypeError):
        ds.load(0, 123)
    a, b = ds[0, 7], ds.load(0, np.random.default_rng(7))
    assert torch.equal(a["depth"], b["depth"])

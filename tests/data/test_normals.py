"""Normals training sets: Hypersim, InteriorVerse, Sintel in the authors' preprocessed formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marigold_toolkit.data import (
    CorruptSampleError,
    HypersimNormals,
    InteriorVerseNormals,
    SintelNormals,
    get_train_dataset,
)
from marigold_toolkit.tasks.normals import NormalsAugmentation

from . import fixtures as fx

FLIP_ONLY = NormalsAugmentation(lr_flip_p=1.0, color_jitter_p=0.0, gaussian_blur_p=0.0, motion_blur_p=0.0)
NO_AUG_BUT_FLIP_OFF = NormalsAugmentation(lr_flip_p=0.0, color_jitter_p=0.0, gaussian_blur_p=0.0, motion_blur_p=0.0)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _nchw(n: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(n, -1, 0))).float()


def test_hypersim_normals_frame_units_and_rgb(tmp_path):
    data = fx.hypersim_normals(tmp_path, _rng())
    ds = get_train_dataset("hypersim_normals", tmp_path, resize=False, augment=False)
    assert isinstance(ds, HypersimNormals) and ds.task == "normals" and ds.blur
    s = ds.load(1, _rng())
    assert set(s) == {"rgb", "normals", "valid_mask", "stem"}
    assert s["stem"] == "train__ai_001_001__rgb_cam_00_fr0001"
    assert s["normals"].dtype == torch.float32 and s["normals"].shape == (3, 16, 16)
    # Hypersim normal_cam is already X right, Y up, Z towards the viewer: unchanged
    torch.testing.assert_close(s["normals"], _nchw(data[1]["normals"]))
    torch.testing.assert_close(torch.linalg.vector_norm(s["normals"], dim=0), torch.ones(16, 16))
    assert s["valid_mask"].dtype == torch.bool and s["valid_mask"].all()
    torch.testing.assert_close(s["rgb"], _nchw(data[1]["rgb"]) / 255 * 2 - 1)


def test_hypersim_normals_default_resize_bilinear_keeps_unit_length(tmp_path):
    fx.hypersim_normals(tmp_path, _rng(), n=1)
    ds = HypersimNormals(tmp_path, augment=False)
    assert ds.resize == (480, 640)
    s = HypersimNormals(tmp_path, resize=(8, 8), augment=False).load(0, _rng())
    assert s["rgb"].shape == (3, 8, 8) and s["normals"].shape == (3, 8, 8) and s["valid_mask"].shape == (1, 8, 8)
    torch.testing.assert_close(torch.linalg.vector_norm(s["normals"], dim=0), torch.ones(8, 8))
    assert s["rgb"].min() >= -1 and s["rgb"].max() <= 1


def test_flip_negates_normals_x(tmp_path):
    fx.hypersim_normals(tmp_path, _rng(), n=1)
    ref = HypersimNormals(tmp_path, resize=False, augment=False).load(0, _rng())
    flipped = HypersimNormals(tmp_path, resize=False, augmentation=FLIP_ONLY).load(0, _rng())
    expected = ref["normals"].flip(-1)
    expected[0] = -expected[0]
    torch.testing.assert_close(flipped["normals"], expected)
    torch.testing.assert_close(flipped["rgb"], ref["rgb"].flip(-1))
    # flip probability 0 and no other augmentation: identical to augment=False
    same = HypersimNormals(tmp_path, resize=False, augmentation=NO_AUG_BUT_FLIP_OFF).load(0, _rng())
    assert torch.equal(same["normals"], ref["normals"]) and torch.equal(same["rgb"], ref["rgb"])


def test_normals_augmentation_is_deterministic_per_seed(tmp_path):
    fx.hypersim_normals(tmp_path, _rng(), n=1, hw=(20, 20))
    aug = NormalsAugmentation(lr_flip_p=0.5, color_jitter_p=1.0, gaussian_blur_p=0.5, motion_blur_p=0.5)
    ds = HypersimNormals(tmp_path, resize=(10, 10), augmentation=aug)
    a, b = ds.load(0, _rng(11)), ds.load(0, _rng(11))
    for k in ("rgb", "normals", "valid_mask"):
        assert torch.equal(a[k], b[k])
    c = ds.load(0, _rng(12))
    assert not torch.equal(a["rgb"], c["rgb"])  # jitter factors differ
    # the augmentation touches the RGB only; the normals are the (possibly flipped) GT
    plain = HypersimNormals(tmp_path, resize=(10, 10), augment=False).load(0, _rng())
    for s in (a, c):
        ok = torch.equal(s["normals"], plain["normals"])
        flipped = plain["normals"].flip(-1).clone()
        flipped[0] = -flipped[0]
        assert ok or torch.allclose(s["normals"], flipped, atol=1e-5)


def test_blur_applies_to_hypersim_only(tmp_path):
    blur_only = NormalsAugmentation(lr_flip_p=0.0, color_jitter_p=0.0, gaussian_blur_p=1.0, motion_blur_p=1.0)
    fx.hypersim_normals(tmp_path / "hs", _rng(), n=1, hw=(20, 20))
    iv = fx.interiorverse_normals(tmp_path / "iv", _rng(), n=1, hw=(20, 20))
    hs_plain = HypersimNormals(tmp_path / "hs", resize=False, augment=False).load(0, _rng())
    hs_blur = HypersimNormals(tmp_path / "hs", resize=False, augmentation=blur_only).load(0, _rng(3))
    assert not torch.equal(hs_plain["rgb"], hs_blur["rgb"])
    assert hs_blur["rgb"].std() < hs_plain["rgb"].std()  # blurred noise loses contrast
    iv_plain = InteriorVerseNormals(iv["root"], augment=False).load(0, _rng())
    iv_aug = InteriorVerseNormals(iv["root"], augmentation=blur_only).load(0, _rng(3))
    assert torch.equal(iv_plain["rgb"], iv_aug["rgb"])
    # opt in / out explicitly
    iv_blur = InteriorVerseNormals(iv["root"], augmentation=blur_only, blur=True).load(0, _rng(3))
    assert not torch.equal(iv_plain["rgb"], iv_blur["rgb"])


def test_interiorverse_normals_native_and_split_next_to_scenes_85(tmp_path):
    iv = fx.interiorverse_normals(tmp_path, _rng(), n=2)
    ds = get_train_dataset("interiorverse_normals", iv["root"], augment=False)
    assert ds.resize is None and len(ds) == 2
    assert ds.split_path == tmp_path / "interiorverse_filtered_all.txt"
    s = ds.load(0, _rng())
    assert s["normals"].shape == (3, 12, 16)  # native
    torch.testing.assert_close(s["normals"], _nchw(iv[0]["normals"]))  # OpenGL frame = Marigold frame
    assert s["stem"] == f"{fx.IV_SCENE}__000_img"


def test_sintel_sky_crop_and_resize(tmp_path):
    data = fx.sintel_normals(tmp_path, _rng(), hw=(8, 20))
    ds = SintelNormals(tmp_path, resize=False, augment=False, crop_hw=(8, 10))
    s = ds.load(0, _rng())
    assert s["normals"].shape == (3, 8, 10) and s["rgb"].shape == (3, 8, 10)
    # centre crop: (20 - 10) // 2 = 5 columns off each side
    torch.testing.assert_close(s["rgb"], _nchw(data[0]["rgb"][:, 5:15]) / 255 * 2 - 1)
    sky = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1).expand(3, 2, 10)
    torch.testing.assert_close(s["normals"][:, :2], sky)  # invalid sky -> camera-facing normal
    torch.testing.assert_close(s["normals"][:, 2:], _nchw(data[0]["normals"][2:, 5:15]))
    assert not s["valid_mask"][0, :2].any() and s["valid_mask"][0, 2:].all()
    r = SintelNormals(tmp_path, augment=False, crop_hw=(8, 10)).load(0, _rng())
    assert r["normals"].shape == (3, 480, 640) and r["valid_mask"].shape == (1, 480, 640)


def test_sintel_default_crop_on_a_full_size_frame(tmp_path):
    normals = fx.random_normals(_rng(), 436, 1024)
    fx.write_rgb(tmp_path / "alley_2/frame_0001_img.png", fx.random_rgb(_rng(), 436, 1024))
    fx.write_npy(tmp_path / "alley_2/frame_0001_normal.npy", normals)
    fx.write_split(tmp_path / "sintel_filtered.txt", ["alley_2/frame_0001_img.png alley_2/frame_0001_normal.npy"])
    s = SintelNormals(tmp_path, resize=False, augment=False).load(0, _rng())
    assert s["normals"].shape == (3, 436, 582)
    torch.testing.assert_close(s["normals"], _nchw(normals[:, 221:1024 - 221]))


def test_normals_corrupt_samples(tmp_path):
    data = fx.hypersim_normals(tmp_path, _rng(), n=2)
    n_rel = "train/ai_001_001/normal_cam_cam_00_fr0000.npy"
    (tmp_path / n_rel).write_bytes(b"garbage")
    np.save(tmp_path / "train/ai_001_001/normal_cam_cam_00_fr0001.npy", data[1]["normals"][..., :2])
    ds = HypersimNormals(tmp_path, resize=False)
    with pytest.raises(CorruptSampleError) as err:
        ds.load(0, _rng())
    assert err.value.path == str(tmp_path / n_rel)
    with pytest.raises(CorruptSampleError, match=r"\[H, W, 3\]"):
        ds.load(1, _rng())


def test_normals_missing_root_and_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_root"):
        SintelNormals(tmp_path / "missing_root")
    with pytest.raises(FileNotFoundError, match="hypersim_filtered_all.txt"):
        HypersimNormals(tmp_path)


def test_augmentation_settings_from_a_mapping(tmp_path):
    fx.hypersim_normals(tmp_path, _rng(), n=1)
    ds = get_train_dataset("hypersim_normals", tmp_path, resize=[8, 8], augmentation={"color_jitter_p": 0.0})
    assert ds.augmentation.color_jitter_p == 0.0 and ds.augmentation.lr_flip_p == 0.5 and ds.resize == (8, 8)
    with pytest.raises(ValueError, match="bad normals augmentation"):
        HypersimNormals(tmp_path, augmentation={"no_such_setting": 1})

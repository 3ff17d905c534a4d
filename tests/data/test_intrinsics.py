"""Intrinsics training sets: InteriorVerse (appearance) and Hypersim (lighting)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marigold_toolkit.data import CorruptSampleError, HypersimIID, InteriorVerseIID, get_train_dataset

from . import fixtures as fx

pytest.importorskip("OpenEXR")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 0))).float()


def test_interiorverse_iid_gamma_material_and_mask(tmp_path):
    data = fx.interiorverse_iid(tmp_path, _rng())
    ds = get_train_dataset("interiorverse_iid", tmp_path, augment=False)
    assert isinstance(ds, InteriorVerseIID) and ds.resize is None and ds.targets == ("albedo", "material")
    s = ds.load(0, _rng())
    assert set(s) == {"rgb", "albedo", "material", "valid_mask", "stem"}
    a = data[0]
    g = 1 / 2.2
    torch.testing.assert_close(s["rgb"], _chw(np.clip(a["im"], 0, 1) ** g) * 2 - 1)
    assert s["rgb"].max() == 1.0  # HDR > 1 clipped
    torch.testing.assert_close(s["albedo"], _chw(a["albedo"] ** g))
    mat = a["material"].copy()
    mat[..., 2] = 0
    torch.testing.assert_close(s["material"], _chw(mat ** g))
    assert torch.all(s["material"][2] == 0)
    for k in ("albedo", "material"):
        assert s[k].dtype == torch.float32 and s[k].shape == (3, 8, 10)
        assert s[k].min() >= 0 and s[k].max() <= 1
    assert s["valid_mask"].shape == (1, 8, 10)
    assert not s["valid_mask"][0, 0, :3].any() and s["valid_mask"].sum() == 80 - 3


def test_interiorverse_iid_from_tar_flip_and_resize(tmp_path):
    folder = tmp_path / "raw"
    fx.interiorverse_iid(folder, _rng())
    tar = fx.make_tar(folder, tmp_path / "InteriorVerse.tar", dot_prefix=False)
    (tmp_path / "interiorverse_train_scenes_85.txt").write_text(
        (folder / "interiorverse_train_scenes_85.txt").read_text())
    plain = InteriorVerseIID(tar, augment=False).load(0, _rng())
    seen = set()
    for seed in range(10):
        s = InteriorVerseIID(tar).load(0, _rng(seed))
        flipped = torch.equal(s["albedo"], plain["albedo"].flip(-1))
        assert flipped or torch.equal(s["albedo"], plain["albedo"])
        if flipped:
            assert torch.equal(s["valid_mask"], plain["valid_mask"].flip(-1))
            assert torch.equal(s["material"], plain["material"].flip(-1))
        seen.add(flipped)
    assert seen == {True, False}
    r = InteriorVerseIID(tar, resize=(4, 5), augment=False).load(0, _rng())
    assert r["albedo"].shape == (3, 4, 5) and r["valid_mask"].shape == (1, 4, 5) and r["valid_mask"].dtype == torch.bool


def test_hypersim_iid_cut_off_normalisation(tmp_path):
    data = fx.hypersim_iid(tmp_path, _rng())
    ds = get_train_dataset("hypersim_iid", tmp_path, resize=False, augment=False)
    assert isinstance(ds, HypersimIID) and ds.targets == ("albedo", "shading", "residual")
    s = ds.load(0, _rng())
    a = data[0]
    c = max(np.quantile(a["shading"], 0.98), np.quantile(a["residual"], 0.98))
    torch.testing.assert_close(s["shading"], _chw(np.clip(a["shading"], 0, c) / c))
    torch.testing.assert_close(s["residual"], _chw(np.clip(a["residual"], 0, c) / c))
    torch.testing.assert_close(s["albedo"], _chw(a["albedo"]))  # linear, unchanged
    for k in ("albedo", "shading", "residual"):
        assert s[k].dtype == torch.float32 and s[k].min() >= 0 and s[k].max() <= 1
    assert s["shading"].max() == 1.0 or s["residual"].max() == 1.0
    assert not s["valid_mask"][0, 0, 0] and s["valid_mask"].sum() == 8 * 12 - 1  # black albedo
    torch.testing.assert_close(s["rgb"], _chw(a["rgb"]) / 255 * 2 - 1)


def test_hypersim_iid_default_resize_and_determinism(tmp_path):
    fx.hypersim_iid(tmp_path, _rng())
    ds = HypersimIID(tmp_path)
    assert ds.resize == (480, 640)
    small = HypersimIID(tmp_path, resize=(4, 6))
    a, b = small.load(0, _rng(1)), small.load(0, _rng(1))
    for k in ("rgb", "albedo", "shading", "residual", "valid_mask"):
        assert a[k].shape[-2:] == (4, 6) and torch.equal(a[k], b[k])


def test_hypersim_iid_corrupt_samples(tmp_path):
    data = fx.hypersim_iid(tmp_path, _rng(), n=1)
    rels = data[0]["rels"]
    np.save(tmp_path / rels["shading"], np.zeros((8, 12, 3)))
    np.save(tmp_path / rels["residual"], np.zeros((8, 12, 3)))
    with pytest.raises(CorruptSampleError, match="cut-off"):
        HypersimIID(tmp_path, resize=False).load(0, _rng())
    (tmp_path / rels["albedo"]).unlink()
    with pytest.raises(CorruptSampleError, match="missing") as err:
        HypersimIID(tmp_path, resize=False).load(0, _rng())
    assert err.value.path == str(tmp_path / rels["albedo"])


def test_interiorverse_iid_corrupt_exr(tmp_path):
    fx.interiorverse_iid(tmp_path, _rng())
    bad = tmp_path / f"scenes_85/{fx.IV_SCENE}/000_material.exr"
    bad.write_bytes(b"v/1\x01 broken exr")
    with pytest.raises(CorruptSampleError) as err:
        InteriorVerseIID(tmp_path).load(0, _rng())
    assert err.value.path == str(bad)


def test_iid_missing_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="interiorverse_train_scenes_85.txt"):
        InteriorVerseIID(tmp_path)
    with pytest.raises(FileNotFoundError, match="hypersim_train_filtered.txt"):
        HypersimIID(tmp_path)

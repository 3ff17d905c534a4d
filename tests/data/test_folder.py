"""The generic folder dataset for users' own data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marigold_toolkit.data import CorruptSampleError, FolderDataset, get_train_dataset

from . import fixtures as fx


def _rng(seed=0):
    return np.random.default_rng(seed)


def _chw(a):
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 0))).float()


def _depth_folder(root, rng, hw=(6, 8)):
    rgbs = {s: fx.random_rgb(rng, *hw) for s in ("a", "b", "c", "scene/d")}
    for stem, rgb in rgbs.items():
        fx.write_rgb(root / "rgb" / f"{stem}.png", rgb)
    depth_m = rng.uniform(0.5, 20.0, size=hw).astype(np.float32)
    depth_m[0, 0] = 0.0
    depth_m[0, 1] = np.nan
    fx.write_npy(root / "depth/a.npy", depth_m)  # metres
    mm = (rng.uniform(0.5, 20.0, size=hw) * 1000).astype(np.uint16)
    mm[1, 1] = 0
    fx.write_png16(root / "depth/b.png", mm)  # millimetres
    exr = np.repeat(rng.uniform(1.0, 5.0, size=(*hw, 1)), 3, axis=2).astype(np.float32)
    fx.write_exr(root / "depth/c.exr", exr)  # metres
    fx.write_npy(root / "depth/scene/d.npy", np.ones(hw, dtype=np.float32))
    mask = np.ones(hw, dtype=bool)
    mask[2, :] = False
    fx.write_npy(root / "mask/a.npy", mask)
    return {"rgb": rgbs, "depth_a": depth_m, "mm_b": mm, "exr_c": exr}


def test_folder_depth_units_and_masks(tmp_path):
    pytest.importorskip("OpenEXR")
    d = _depth_folder(tmp_path, _rng())
    ds = get_train_dataset("folder", tmp_path, augment=False)
    assert isinstance(ds, FolderDataset) and ds.task == "depth" and ds.targets == ("depth",) and len(ds) == 4
    assert [e.stem for e in ds.entries] == ["a", "b", "c", "scene__d"]
    a = ds.load(0, _rng())
    torch.testing.assert_close(a["rgb"], _chw(d["rgb"]["a"]) / 255 * 2 - 1)
    np.testing.assert_allclose(a["depth"][0].numpy(), d["depth_a"], rtol=1e-6)  # npy = metres
    m = a["valid_mask"][0]
    assert not m[0, 0] and not m[0, 1] and not m[2].any()  # 0, NaN, mask file
    assert m.sum() == 6 * 8 - 8 - 2
    b = ds.load(1, _rng())
    np.testing.assert_allclose(b["depth"][0].numpy(), d["mm_b"] / 1000.0, rtol=1e-6)  # png16 = mm
    assert not b["valid_mask"][0, 1, 1] and b["valid_mask"].sum() == 47  # no mask file: all valid but depth 0
    c = ds.load(2, _rng())
    np.testing.assert_allclose(c["depth"][0].numpy(), d["exr_c"][..., 0], rtol=1e-6)
    assert ds.load(3, _rng())["stem"] == "scene__d"


def test_folder_depth_range_resize_and_split(tmp_path):
    _depth_folder(tmp_path, _rng())
    split = fx.write_split(tmp_path / "train.txt", ["b", "rgb/a.png"])
    ds = FolderDataset(tmp_path, split=split, resize=(3, 4), augment=False, max_depth=10.0)
    assert [e.stem for e in ds.entries] == ["b", "a"]
    s = ds.load(0, _rng())
    assert s["rgb"].shape == (3, 3, 4) and s["depth"].shape == (1, 3, 4)
    torch.testing.assert_close(s["valid_mask"], (s["depth"] > 0) & (s["depth"] < 10.0))


def test_folder_normals_and_flip(tmp_path):
    rng = _rng()
    normals = fx.random_normals(rng, 6, 8)
    normals[0, 0] = 0.0
    fx.write_rgb(tmp_path / "rgb/x.jpg", fx.random_rgb(rng, 6, 8), fmt="JPEG")
    fx.write_npy(tmp_path / "normals/x.npy", normals)
    ds = FolderDataset(tmp_path, augment=False)
    assert ds.task == "normals"
    s = ds.load(0, _rng())
    torch.testing.assert_close(s["normals"][:, 1:], _chw(normals)[:, 1:])
    assert not s["valid_mask"][0, 0, 0] and s["valid_mask"].sum() == 47
    outs = [FolderDataset(tmp_path).load(0, _rng(seed)) for seed in range(12)]
    n_flipped = 0
    for o in outs:
        if torch.allclose(o["normals"], s["normals"]):
            continue
        exp = s["normals"].flip(-1).clone()
        exp[0] = -exp[0]
        torch.testing.assert_close(o["normals"], exp)
        n_flipped += 1
    assert 0 < n_flipped < 12


def test_folder_intrinsics_targets(tmp_path):
    rng = _rng()
    fx.write_rgb(tmp_path / "rgb/k.png", fx.random_rgb(rng, 5, 7))
    albedo = rng.uniform(0, 1, size=(5, 7, 3)).astype(np.float32)
    albedo[1, 1, 0] = np.nan
    fx.write_npy(tmp_path / "albedo/k.npy", albedo)
    rough = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    fx.write_rgb(tmp_path / "material/k.png", rough)
    grey16 = rng.integers(0, 65536, size=(5, 7)).astype(np.uint16)
    fx.write_png16(tmp_path / "shading/k.png", grey16)
    mask = np.full((5, 7), 255, dtype=np.uint8)
    mask[4] = 0
    from PIL import Image

    (tmp_path / "mask").mkdir()
    Image.fromarray(mask).save(tmp_path / "mask/k.png")
    ds = FolderDataset(tmp_path, augment=False)
    assert ds.task == "intrinsics" and ds.targets == ("albedo", "material", "shading")
    s = ds.load(0, _rng())
    torch.testing.assert_close(s["material"], _chw(rough.astype(np.float32) / 255))
    torch.testing.assert_close(s["shading"], _chw(np.repeat(grey16[..., None], 3, 2).astype(np.float32) / 65535))
    assert s["albedo"][0, 1, 1] == 0.0
    assert not s["valid_mask"][0, 1, 1] and not s["valid_mask"][0, 4].any() and s["valid_mask"].sum() == 35 - 8
    sub = FolderDataset(tmp_path, targets=["albedo"], resize=(10, 14), augment=False).load(0, _rng())
    assert set(sub) == {"rgb", "albedo", "valid_mask", "stem"} and sub["albedo"].shape == (3, 10, 14)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        FolderDataset(tmp_path / "nothing_here")
    with pytest.raises(FileNotFoundError, match="rgb"):
        FolderDataset(tmp_path)
    rng = _rng()
    fx.write_rgb(tmp_path / "rgb/a.png", fx.random_rgb(rng, 4, 4))
    fx.write_rgb(tmp_path / "rgb/b.png", fx.random_rgb(rng, 4, 4))
    fx.write_npy(tmp_path / "albedo/a.npy", np.full((4, 4, 3), 3.0))  # not in [0, 1]
    with pytest.raises(FileNotFoundError, match="split.txt"):
        FolderDataset(tmp_path, split=tmp_path / "split.txt")
    with pytest.raises(FileNotFoundError, match="normals"):
        FolderDataset(tmp_path, targets=["normals"])
    ds = FolderDataset(tmp_path)
    with pytest.raises(CorruptSampleError, match=r"expected \[0, 1\]") as err:
        ds.load(0, _rng())
    assert err.value.path == str(tmp_path / "albedo/a.npy")
    with pytest.raises(CorruptSampleError, match="no albedo file"):
        ds.load(1, _rng())
    (tmp_path / "depth").mkdir()
    (tmp_path / "normals").mkdir()
    with pytest.raises(ValueError, match="both depth/ and normals/"):
        FolderDataset(tmp_path)
    fx.write_rgb(tmp_path / "rgb/a.jpg", fx.random_rgb(rng, 4, 4), fmt="JPEG")
    with pytest.raises(ValueError, match="share the stem"):
        FolderDataset(tmp_path, targets=["albedo"])


def test_folder_depth_png_must_be_16_bit(tmp_path):
    fx.write_rgb(tmp_path / "rgb/a.png", fx.random_rgb(_rng(), 4, 4))
    from PIL import Image

    (tmp_path / "depth").mkdir()
    Image.fromarray(np.full((4, 4), 7, dtype=np.uint8)).save(tmp_path / "depth/a.png")
    with pytest.raises(CorruptSampleError, match="16-bit"):
        FolderDataset(tmp_path).load(0, _rng())

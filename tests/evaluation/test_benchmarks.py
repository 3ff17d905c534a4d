"""Benchmark loaders on tiny fixtures written in the published formats (file names, dtypes, units, split-line
formats of the authors' files), checking units, crops, masks, split order/filtering and stems."""

from __future__ import annotations

import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit.evaluation.datasets import BENCHMARKS, Benchmark, EvalSample, get_benchmark
from marigold_toolkit.evaluation.datasets import intrinsics as intrinsics_mod
from marigold_toolkit.io.dataset_files import stem_from_relpath
from marigold_toolkit.evaluation.datasets.depth import (
    DIODEDepth,
    ETH3DDepth,
    KITTIEigenDepth,
    NYUv2Depth,
    ScanNetDepth,
)
from marigold_toolkit.evaluation.datasets.intrinsics import HypersimIIDLighting, InteriorVerseAppearance
from marigold_toolkit.evaluation.datasets.normals import (
    DIODENormals,
    IBimsNormals,
    NYUv2Normals,
    OASISNormals,
    ScanNetNormals,
)

SAFE_STEM = re.compile(r"^[A-Za-z0-9._-]+$")


# ----------------------------------------------------------------------------------------------------------
# fixture writers


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path)


def write_png16(path: Path, arr: np.ndarray) -> None:
    assert arr.dtype == np.uint16 and arr.ndim == 2
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    back = np.asarray(Image.open(path))
    assert back.dtype == np.uint16 and np.array_equal(back, arr)  # the fixture really is 16-bit


def write_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)


def write_split(path: Path, lines: list[str], trailing_newline: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""))
    return path


def check_common(bench: Benchmark, samples: list[EvalSample]) -> None:
    stems = [s.stem for s in samples]
    assert len(set(stems)) == len(stems)
    for s in samples:
        assert SAFE_STEM.match(s.stem), s.stem
        assert s.rgb.dtype == np.uint8 and s.rgb.ndim == 3 and s.rgb.shape[2] == 3
        assert s.valid_mask.dtype == bool and s.valid_mask.shape == s.rgb.shape[:2]


# ----------------------------------------------------------------------------------------------------------
# NYUv2


def make_nyu(root: Path) -> list[str]:
    """Two 480x640 samples; the first one carries the probe values."""
    lines = []
    for i, (scene, idx) in enumerate([("kitchen_0004", "0001"), ("office_0005", "0009")]):
        d = f"test/{scene}"
        write_rgb(root / d / f"rgb_{idx}.png", _rgb(480, 640, i))
        depth = np.full((480, 640), 3000, dtype=np.uint16)  # 3 m
        if i == 0:
            depth[100, 100] = 0  # no measurement
            depth[100, 101] = 1  # 1 mm == min_depth -> invalid (strict)
            depth[100, 102] = 2  # 2 mm -> valid
            depth[100, 103] = 9999  # 9.999 m -> valid
            depth[100, 104] = 10000  # 10 m == max_depth -> invalid (strict)
            depth[100, 105] = 12000  # beyond max
        write_png16(root / d / f"depth_{idx}.png", depth)
        write_png16(root / d / f"filled_{idx}.png", np.full((480, 640), 3000, dtype=np.uint16))
        lines.append(f"{d}/rgb_{idx}.png {d}/depth_{idx}.png {d}/filled_{idx}.png")
    write_split(root / "filename_list_test.txt", lines, trailing_newline=True)
    return lines


def test_nyu_units_eigen_crop_and_range(tmp_path):
    make_nyu(tmp_path)
    bench = get_benchmark("nyu_v2", tmp_path)
    assert isinstance(bench, NYUv2Depth) and len(bench) == 2
    samples = list(bench)
    check_common(bench, samples)
    s = samples[0]
    assert s.stem == "test__kitchen_0004__rgb_0001"
    assert s.rgb.shape == (480, 640, 3)
    assert np.array_equal(s.rgb, _rgb(480, 640, 0))
    assert s.gt.dtype == np.float32 and s.gt.shape == (480, 640)
    assert s.gt[0, 0] == pytest.approx(3.0)  # mm -> m
    assert s.gt[100, 102] == pytest.approx(0.002) and s.gt[100, 103] == pytest.approx(9.999)
    assert [bool(s.valid_mask[100, c]) for c in range(100, 106)] == [False, False, True, True, False, False]
    # Eigen crop rows 45:471, cols 41:601
    m = samples[1].valid_mask
    assert not m[:45].any() and not m[471:].any() and not m[:, :41].any() and not m[:, 601:].any()
    assert m[45:471, 41:601].all()
    assert m.sum() == (471 - 45) * (601 - 41)
    assert s.meta["filled_path"].endswith("filled_0001.png")


def test_nyu_split_order_and_explicit_split(tmp_path):
    lines = make_nyu(tmp_path / "data")
    other = write_split(tmp_path / "elsewhere" / "my_split.txt", ["", lines[1], "  ", lines[0], ""])
    bench = NYUv2Depth(tmp_path / "data", split=other)
    assert [e.stem for e in bench.entries] == ["test__office_0005__rgb_0009", "test__kitchen_0004__rgb_0001"]
    assert bench[0].stem == "test__office_0005__rgb_0009"


def test_nyu_from_the_authors_tar_archive(tmp_path):
    data = tmp_path / "data"
    make_nyu(data)
    tar_path = tmp_path / "nyuv2" / "nyu_labeled_extracted.tar"
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, "w") as tar:  # members named "./test/...", like the authors' archive
        tar.add(data / "test", arcname="./test")
    (tmp_path / "nyuv2" / "filename_list_test.txt").write_text((data / "filename_list_test.txt").read_text())
    from_tar = NYUv2Depth(tar_path)
    from_dir = NYUv2Depth(data)
    a, b = from_tar[0], from_dir[0]
    assert a.stem == b.stem and np.array_equal(a.rgb, b.rgb) and np.array_equal(a.gt, b.gt)
    assert np.array_equal(a.valid_mask, b.valid_mask)
    clone = pickle.loads(pickle.dumps(from_tar))  # DataLoader workers
    assert np.array_equal(clone[1].gt, from_dir[1].gt)
    from_tar.close()


# ----------------------------------------------------------------------------------------------------------
# KITTI


def _kitti_rgb(h: int, w: int) -> np.ndarray:
    r, c = np.mgrid[0:h, 0:w]
    return np.stack([r % 256, c % 256, (c // 256) * 16 + r // 256], axis=-1).astype(np.uint8)


def make_kitti(root: Path) -> None:
    def frame(date: str, drive: str, idx: str, h: int, w: int, with_gt: bool):
        rgb_rel = f"{date}/{drive}/image_02/data/{idx}.png"
        write_rgb(root / rgb_rel, _kitti_rgb(h, w))
        if not with_gt:
            return f"{rgb_rel} None 721.5377"
        gt_rel = f"{drive}/proj_depth/groundtruth/image_02/{idx}.png"
        depth = np.zeros((h, w), dtype=np.uint16)  # sparse LiDAR: 0 = no point
        depth[:, ::2] = int(10.0 * 256)  # 10 m on every other column
        top, left = h - 352, int((w - 1216) / 2)
        depth[top + 200, left + 600] = int(20.5 * 256)
        depth[top + 200, left + 602] = 80 * 256  # == max_depth -> invalid
        depth[top + 200, left + 604] = 80 * 256 - 1  # just below 80 m -> valid
        depth[top + 200, left + 606] = 1  # 1/256 m > 1e-5 -> valid
        write_png16(root / gt_rel, depth)
        return f"{rgb_rel} {gt_rel} 721.5377"

    lines = [
        frame("2011_09_26", "2011_09_26_drive_0002_sync", "0000000069", 375, 1242, True),
        frame("2011_09_26", "2011_09_26_drive_0002_sync", "0000000075", 375, 1242, False),
        frame("2011_10_03", "2011_10_03_drive_0047_sync", "0000000448", 376, 1241, True),
    ]
    write_split(root / "eigen_test_files_with_gt.txt", lines)


def test_kitti_none_lines_dropped_kb_crop_and_eigen_mask(tmp_path):
    make_kitti(tmp_path)
    bench = get_benchmark("kitti_eigen", tmp_path)
    assert isinstance(bench, KITTIEigenDepth) and bench.crop == "eigen"
    assert len(bench) == 2  # the "None" line is gone
    samples = list(bench)
    check_common(bench, samples)
    assert [s.stem for s in samples] == [
        "2011_09_26__2011_09_26_drive_0002_sync__image_02__data__0000000069",
        "2011_10_03__2011_10_03_drive_0047_sync__image_02__data__0000000448",
    ]
    for s, (h, w) in zip(samples, [(375, 1242), (376, 1241)]):
        top, left = h - 352, (w - 1216) // 2
        assert s.meta["kb_crop"] == (top, left) and s.meta["original_hw"] == (h, w)
        assert s.meta["focal_length"] == pytest.approx(721.5377)
        assert s.rgb.shape == (352, 1216, 3) and s.gt.shape == (352, 1216)
        # the pixel pattern encodes the source row/col: the crop starts at (top, left)
        assert np.array_equal(s.rgb, _kitti_rgb(h, w)[top : top + 352, left : left + 1216])
        assert s.gt.dtype == np.float32
        assert s.gt[200, 600] == pytest.approx(20.5)  # PNG / 256 -> metres
        m = s.valid_mask
        # Eigen crop on the 352x1216 frame: rows 117:321, cols 43:1172
        assert (int(0.3324324 * 352), int(0.91351351 * 352)) == (117, 321)
        assert (int(0.0359477 * 1216), int(0.96405229 * 1216)) == (43, 1172)
        assert not m[:117].any() and not m[321:].any() and not m[:, :43].any() and not m[:, 1172:].any()
        gt_cols = np.arange(1216)[(np.arange(1216) + left) % 2 == 0]  # columns with a LiDAR point
        inside = gt_cols[(gt_cols >= 43) & (gt_cols < 1172)]
        assert m[117, inside].all() and m[320, inside].all()
        empty_cols = np.arange(43, 1172)[(np.arange(43, 1172) + left) % 2 == 1]
        assert not m[117:200][:, empty_cols].any() and not m[201:321][:, empty_cols].any()  # zeros invalid
        assert not m[200, 602] and m[200, 604] and m[200, 606]
        assert s.gt[200, 604] == pytest.approx(80 - 1 / 256)


# ----------------------------------------------------------------------------------------------------------
# ETH3D


def make_eth3d(root: Path, h: int = 40, w: int = 60) -> np.ndarray:
    scene = "office"
    rgb_rel = f"rgb/{scene}/images/dslr_images/DSC_0219.JPG"
    depth_rel = f"depth/{scene}_dslr_depth/{scene}/ground_truth_depth/dslr_images/DSC_0219.JPG"
    (root / rgb_rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rgb(h, w, 3)).save(root / rgb_rel, format="JPEG", quality=95)
    depth = np.full((h, w), 4.5, dtype=np.float32)
    depth[0, 0] = np.inf  # no ground truth
    depth[0, 1] = np.nan
    depth[0, 2] = 0.0
    depth[0, 3] = 1e-6  # below 1e-5
    depth[0, 4] = 1e-5  # == min_depth -> invalid
    depth[0, 5] = 2e-5
    depth[0, 6] = 1e9  # max_depth is inf
    (root / depth_rel).parent.mkdir(parents=True, exist_ok=True)
    (root / depth_rel).write_bytes(depth.astype("<f4").tobytes())  # raw, row-major, no header
    write_split(root / "eth3d_filename_list.txt", [f"{rgb_rel} {depth_rel}"])
    return depth


def test_eth3d_raw_float_inf_and_range(tmp_path):
    depth = make_eth3d(tmp_path)
    bench = get_benchmark("eth3d", tmp_path)
    assert ETH3DDepth.depth_shape == (4032, 6048)  # the published raster; reduced copies follow the RGB size
    (s,) = list(bench)
    check_common(bench, [s])
    assert s.stem == "rgb__office__images__dslr_images__DSC_0219"
    assert s.rgb.shape == (40, 60, 3) and s.gt.shape == (40, 60) and s.gt.dtype == np.float32
    assert s.gt[0, 0] == 0.0  # inf -> 0
    assert np.isnan(s.gt[0, 1])
    assert s.gt[5, 5] == pytest.approx(4.5)
    assert list(s.valid_mask[0, :7]) == [False, False, False, False, False, True, True]
    assert s.valid_mask[1:].all()
    assert s.valid_mask.sum() == depth.size - 5


def test_eth3d_depth_shape_constant_and_size_errors(tmp_path):
    make_eth3d(tmp_path)

    class Reshaped(ETH3DDepth):  # 40*60 == 30*80: the class constant wins, then the shapes disagree
        depth_shape = (30, 80)

    with pytest.raises(ValueError, match="image is 40x60 but depth is 30x80"):
        Reshaped(tmp_path)[0]
    depth_rel = (tmp_path / "eth3d_filename_list.txt").read_text().split()[1]
    (tmp_path / depth_rel).write_bytes(np.zeros(7, dtype="<f4").tobytes())
    with pytest.raises(ValueError, match="fit neither"):
        ETH3DDepth(tmp_path)[0]


# ----------------------------------------------------------------------------------------------------------
# ScanNet


def test_scannet_mm_and_range_no_crop(tmp_path):
    lines = []
    for i, (scene, idx) in enumerate([("scene0406_02", "000300"), ("scene0088_02", "001100")]):
        (tmp_path / scene / "color").mkdir(parents=True)
        Image.fromarray(_rgb(48, 64, i)).save(tmp_path / scene / "color" / f"{idx}.jpg", quality=95)
        depth = np.full((48, 64), 2500, dtype=np.uint16)
        depth[0, 0], depth[0, 1], depth[0, 2], depth[0, 3] = 0, 1, 10000, 9999
        write_png16(tmp_path / scene / "depth" / f"{idx}.png", depth)
        lines.append(f"{scene}/color/{idx}.jpg {scene}/depth/{idx}.png")
    write_split(tmp_path / "scannet_val_sampled_list_800_1.txt", lines)
    bench = get_benchmark("scannet", tmp_path)
    samples = list(bench)
    check_common(bench, samples)
    assert [s.stem for s in samples] == ["scene0406_02__color__000300", "scene0088_02__color__001100"]
    s = samples[0]
    assert s.gt[5, 5] == pytest.approx(2.5) and s.gt[0, 3] == pytest.approx(9.999)
    assert list(s.valid_mask[0, :4]) == [False, False, False, True]
    assert s.valid_mask[:, -1].all() and s.valid_mask[-1].all()  # no crop
    assert s.valid_mask.sum() == 48 * 64 - 3


# ----------------------------------------------------------------------------------------------------------
# DIODE


def test_diode_mask_file_only(tmp_path):
    lines = []
    for i, (kind, scene, scan, view) in enumerate(
        [("indoors", "00021", "00189", "200_010"), ("outdoor", "00024", "00202", "110_020")]
    ):
        d = f"{kind}/scene_{scene}/scan_{scan}"
        stem = f"{scene}_{scan}_{kind}_{view}"
        write_rgb(tmp_path / d / f"{stem}.png", _rgb(24, 32, i))
        depth = np.full((24, 32, 1), 12.0, dtype=np.float32)
        depth[0, 0, 0] = 0.1  # below 0.6 but inside the mask -> still valid
        depth[0, 1, 0] = 400.0  # above 350 but inside the mask -> still valid
        depth[0, 2, 0] = 5.0  # outside the mask
        mask = np.ones((24, 32), dtype=np.float32)
        mask[0, 2] = 0.0
        mask[10:, 20:] = 0.0
        write_npy(tmp_path / d / f"{stem}_depth.npy", depth)
        write_npy(tmp_path / d / f"{stem}_depth_mask.npy", mask)
        lines.append(f"{d}/{stem}.png {d}/{stem}_depth.npy {d}/{stem}_depth_mask.npy")
    write_split(tmp_path / "diode_val_all_filename_list.txt", lines, trailing_newline=True)
    bench = get_benchmark("diode", tmp_path)
    assert (bench.min_depth, bench.max_depth) == (0.6, 350.0)
    samples = list(bench)
    check_common(bench, samples)
    assert samples[0].stem == "indoors__scene_00021__scan_00189__00021_00189_indoors_200_010"
    s = samples[0]
    assert s.gt.shape == (24, 32) and s.gt.dtype == np.float32  # [H, W, 1] squeezed
    assert s.gt[0, 1] == pytest.approx(400.0)
    mask = np.load(tmp_path / lines[0].split()[2]).astype(bool)
    assert np.array_equal(s.valid_mask, mask)
    assert s.valid_mask[0, 0] and s.valid_mask[0, 1] and not s.valid_mask[0, 2]


# ----------------------------------------------------------------------------------------------------------
# normals (DSINE collection, Marigold download layout)

NORMALS_LAYOUT = {
    NYUv2Normals: ["000000_img.png 000000_normal.npy", "000001_img.png 000001_normal.npy"],
    ScanNetNormals: [
        "scene0001_01/001170_img.png scene0001_01/001170_normal.npy",
        "scene0002_00/000240_img.png scene0002_00/000240_normal.npy",
    ],
    IBimsNormals: [
        "corridor_01_img.png corridor_01_normal.npy",
        "corridor_02_img.png corridor_02_normal.npy",
    ],
    DIODENormals: [
        (
            "outdoor/scene_00024/scan_00201/00024_00201_outdoor_070_030.png "
            "outdoor/scene_00024/scan_00201/00024_00201_outdoor_070_030_normal.npy"
        ),
        (
            "indoors/scene_00020/scan_00186/00020_00186_indoors_160_000.png "
            "indoors/scene_00020/scan_00186/00020_00186_indoors_160_000_normal.npy"
        ),
    ],
    OASISNormals: ["268584_ALI_img.png 268584_ALI_normal.npy", "99353_DT_img.png 99353_DT_normal.npy"],
}
NORMALS_PROTOCOL = {  # name, split file, count, processing res, seed
    NYUv2Normals: ("nyu_v2_normals", "nyuv2_test.txt", 654, 640, 4321),
    ScanNetNormals: ("scannet_normals", "scannet_test.txt", 300, 640, 1234),
    IBimsNormals: ("ibims_normals", "ibims_test.txt", 100, 640, 4321),
    DIODENormals: ("diode_normals", "diode_test.txt", 771, 768, 1234),
    OASISNormals: ("oasis_normals", "oasis_test.txt", 9999, 768, 1234),
}


@pytest.mark.parametrize("cls", list(NORMALS_LAYOUT), ids=lambda c: c.name)
def test_normals_loaders(tmp_path, cls):
    name, split_name, count, res, seed = NORMALS_PROTOCOL[cls]
    assert (cls.name, cls.split_file, cls.num_samples, cls.task) == (name, split_name, count, "normals")
    inf = cls.inference
    assert (inf.processing_resolution, inf.seed, inf.num_inference_steps, inf.ensemble_size) == (
        res,
        seed,
        4,
        10,
    )
    h, w = 12, 16
    for i, line in enumerate(NORMALS_LAYOUT[cls]):
        img_rel, nrm_rel = line.split()
        write_rgb(tmp_path / img_rel, _rgb(h, w, i))
        n = np.zeros((h, w, 3), dtype=np.float32)
        n[..., 2] = 1.0  # facing the viewer
        n[0, 0] = 0.0  # zero vector -> invalid
        n[0, 1] = np.nan  # non-finite -> invalid
        n[0, 2] = (2.0, 0.0, 0.0)  # not unit length -> rescaled
        n[0, 3] = (0.0, 1.0, 0.0)  # up: kept as is (no axis flip)
        n[0, 4] = (0.0, -0.6, 0.8)
        write_npy(tmp_path / nrm_rel, n)
    write_split(tmp_path / split_name, NORMALS_LAYOUT[cls])
    bench = get_benchmark(name, tmp_path)
    samples = list(bench)
    check_common(bench, samples)
    assert [s.stem for s in samples] == [stem_from_relpath(l.split()[0]) for l in NORMALS_LAYOUT[cls]]
    s = samples[0]
    assert s.gt.shape == (h, w, 3) and s.gt.dtype == np.float32
    assert list(s.valid_mask[0, :5]) == [False, False, True, True, True]
    assert s.valid_mask.sum() == h * w - 2
    assert np.array_equal(s.gt[0, 0], [0, 0, 0]) and np.array_equal(s.gt[0, 1], [0, 0, 0])
    np.testing.assert_allclose(s.gt[0, 2], [1, 0, 0])
    np.testing.assert_allclose(s.gt[0, 3], [0, 1, 0])
    np.testing.assert_allclose(s.gt[0, 4], [0, -0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(s.gt[s.valid_mask], axis=1), 1.0, rtol=1e-6)


def test_normals_shape_mismatch_is_reported(tmp_path):
    write_rgb(tmp_path / "000000_img.png", _rgb(12, 16))
    write_npy(tmp_path / "000000_normal.npy", np.ones((12, 15, 3), dtype=np.float32))
    write_split(tmp_path / "nyuv2_test.txt", ["000000_img.png 000000_normal.npy"])
    with pytest.raises(ValueError, match="12x16 but normals are 12x15"):
        NYUv2Normals(tmp_path)[0]


# ----------------------------------------------------------------------------------------------------------
# InteriorVerse (appearance)

IV_SCENE = "scenes_85/L3D124S21ENDIMPH3DQUI5NFSLUF3P3XG888"


def _iv_arrays(h: int = 6, w: int = 8) -> dict[str, np.ndarray]:
    im = np.full((h, w, 3), 0.25, dtype=np.float32)
    im[0, 0] = (2.0, -1.0, 1.0)  # HDR: clipped to [0, 1]
    albedo = np.full((h, w, 3), 0.5, dtype=np.float32)
    material = np.zeros((h, w, 3), dtype=np.float32)
    material[..., 0], material[..., 1], material[..., 2] = 0.04, 1.0, 0.7  # roughness, metallicity, junk
    mask = np.ones((h, w, 3), dtype=np.float32)
    mask[1, 1] = (1.0, 0.0, 1.0)
    return {"im": im, "albedo": albedo, "material": material, "mask": mask}


def _iv_split(root: Path, frames: list[str]) -> None:
    lines = [
        " ".join(f"{IV_SCENE}/{f}_{k}.exr" for k in ("im", "albedo", "material", "mask")) for f in frames
    ]
    write_split(root / "interiorverse_test_scenes_85.txt", lines)


def _check_interiorverse(bench, arrays):
    s = bench[0]
    check_common(bench, [s])
    assert s.stem == "scenes_85__L3D124S21ENDIMPH3DQUI5NFSLUF3P3XG888__000_im"
    assert s.rgb.shape == (6, 8, 3)
    assert s.rgb[2, 2, 0] == int(np.float32(0.25 ** (1 / 2.2)) * np.float32(255))  # gamma, then truncation
    assert s.rgb[2, 2, 0] == 135
    assert tuple(s.rgb[0, 0]) == (255, 0, 255)
    assert set(s.gt) == {"albedo", "material"}
    np.testing.assert_allclose(s.gt["albedo"][3, 3], [0.5 ** (1 / 2.2)] * 3, rtol=1e-6)
    np.testing.assert_allclose(s.gt["material"][3, 3], [0.04 ** (1 / 2.2), 1.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(s.gt["material"][..., 2], 0.0)
    assert all(v.dtype == np.float32 and v.shape == (6, 8, 3) for v in s.gt.values())
    assert s.valid_mask.all()  # the authors score InteriorVerse without a mask
    assert not s.meta["object_mask"][1, 1] and s.meta["object_mask"].sum() == 6 * 8 - 1
    assert s.meta["masks"]["albedo"].shape == (6, 8, 3) and not s.meta["masks"]["albedo"][1, 1, 1]
    assert bench.use_mask is False and bench.linear_space_targets == ("material",)


def test_interiorverse_real_exr(tmp_path):
    OpenEXR = pytest.importorskip("OpenEXR")
    arrays = _iv_arrays()
    for key, arr in arrays.items():
        path = tmp_path / IV_SCENE / f"000_{key}.exr"
        path.parent.mkdir(parents=True, exist_ok=True)
        if key == "mask":  # half-float channels, stored separately
            chans = {c: arr[..., i].astype(np.float16) for i, c in enumerate("RGB")}
        else:
            chans = {"RGB": arr}
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with OpenEXR.File(header, chans) as f:
            f.write(str(path))
    _iv_split(tmp_path, ["000"])
    bench = get_benchmark("interiorverse", tmp_path)
    _check_interiorverse(bench, arrays)


def test_interiorverse_decoding_without_exr_codec(tmp_path, monkeypatch):
    """The decoding rules, with the EXR reader replaced (runs where OpenEXR is not installed)."""
    arrays = _iv_arrays()
    store = {f"{IV_SCENE}/000_{k}.exr": v for k, v in arrays.items()}
    for rel in store:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    monkeypatch.setattr(intrinsics_mod, "read_exr_rgb", lambda source, rel: store[rel].copy())
    _iv_split(tmp_path, ["000"])
    _check_interiorverse(InteriorVerseAppearance(tmp_path), arrays)


# ----------------------------------------------------------------------------------------------------------
# Hypersim IID (lighting)


def make_hypersim(root: Path, h: int = 16, w: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    d = "test/ai_001_010"
    write_rgb(root / d / "rgb_cam_00_fr0000.png", _rgb(h, w, 9))
    albedo = rng.uniform(0.05, 1.0, size=(h, w, 3))  # float64 like the preprocessing output
    albedo[0, 0] = 0.0  # all channels zero -> invalid
    albedo[0, 1] = (0.0, 0.3, 0.3)  # one zero channel only -> valid
    albedo[0, 2, 1] = np.nan
    shading = rng.gamma(2.0, 1.0, size=(h, w, 3))
    residual = rng.gamma(1.0, 0.3, size=(h, w, 3))
    shading[1, 1] = (-0.5, 50.0, 1.0)
    arrays = {"albedo": albedo, "shading": shading, "residual": residual}
    for k, v in arrays.items():
        write_npy(root / d / f"{k}_cam_00_fr0000.npy", v)
    (root / d / "shading_stats_cam_00_fr0000.json").write_text("{}")
    line = " ".join(
        f"{d}/{k}_cam_00_fr0000.{ext}"
        for k, ext in (("rgb", "png"), ("albedo", "npy"), ("shading", "npy"), ("residual", "npy"))
    )
    write_split(root / "hypersim_test.txt", [line + f" {d}/shading_stats_cam_00_fr0000.json"])
    return arrays


def test_hypersim_iid_cutoff_and_masks(tmp_path):
    torch = pytest.importorskip("torch")
    arrays = make_hypersim(tmp_path)
    bench = get_benchmark("hypersim_iid", tmp_path)
    assert isinstance(bench, HypersimIIDLighting)
    (s,) = list(bench)
    check_common(bench, [s])
    assert s.stem == "test__ai_001_010__rgb_cam_00_fr0000"
    assert np.array_equal(s.rgb, _rgb(16, 20, 9))
    # cut-off as the authors compute it: torch.quantile over every value of each array
    c = max(
        torch.quantile(torch.from_numpy(arrays["shading"]), 0.98).item(),
        torch.quantile(torch.from_numpy(arrays["residual"]), 0.98).item(),
    )
    assert s.meta["cut_off"] == pytest.approx(c, rel=1e-12)
    for k in ("shading", "residual"):
        expected = (np.clip(arrays[k], 0, c) / c).astype(np.float32)
        np.testing.assert_allclose(s.gt[k], expected, rtol=1e-6)
        assert s.gt[k].dtype == np.float32 and 0.0 <= s.gt[k].min() and s.gt[k].max() <= 1.0
    np.testing.assert_allclose(s.gt["shading"][1, 1], [0.0, 1.0, min(1.0, 1.0 / c)], rtol=1e-6)
    np.testing.assert_allclose(s.gt["albedo"][5, 5], arrays["albedo"][5, 5], rtol=1e-6)  # stays linear
    ma = s.meta["masks"]["albedo"]
    assert ma.shape == (16, 20, 3)
    assert not ma[0, 0].any() and ma[0, 1].all() and list(ma[0, 2]) == [True, False, True]
    assert s.meta["masks"]["shading"].all() and s.meta["masks"]["residual"].all()
    assert not s.valid_mask[0, 0] and not s.valid_mask[0, 2] and s.valid_mask[0, 1]
    assert s.valid_mask.sum() == 16 * 20 - 2
    np.testing.assert_allclose(
        s.gt["albedo"][0, 2], [arrays["albedo"][0, 2, 0], 0.0, arrays["albedo"][0, 2, 2]], rtol=1e-6
    )
    assert bench.use_mask and bench.srgb_space_targets == ("albedo",)
    assert bench.up_to_scale_targets == ("shading", "residual")


# ----------------------------------------------------------------------------------------------------------
# registry, protocol attributes, split-file handling


def test_registry_names_and_protocol_table():
    expected = {
        # name: (task, split file, count, min, max, alignment, max_res, processing_res, steps, ensemble, seed)
        "nyu_v2": ("depth", "filename_list_test.txt", 654, 1e-3, 10.0, "least_squares", None, 0, 1, 10, 1234),
        "kitti_eigen": (
            "depth",
            "eigen_test_files_with_gt.txt",
            652,
            1e-5,
            80.0,
            "least_squares",
            None,
            0,
            1,
            10,
            1234,
        ),
        "eth3d": (
            "depth",
            "eth3d_filename_list.txt",
            454,
            1e-5,
            float("inf"),
            "least_squares",
            1024,
            756,
            1,
            10,
            1234,
        ),
        "scannet": (
            "depth",
            "scannet_val_sampled_list_800_1.txt",
            800,
            1e-3,
            10.0,
            "least_squares",
            None,
            0,
            1,
            10,
            1234,
        ),
        "diode": (
            "depth",
            "diode_val_all_filename_list.txt",
            771,
            0.6,
            350.0,
            "least_squares",
            None,
            640,
            1,
            10,
            1234,
        ),
        "interiorverse": (
            "intrinsics",
            "interiorverse_test_scenes_85.txt",
            2672,
            None,
            None,
            "none",
            None,
            640,
            4,
            1,
            1234,
        ),
        "hypersim_iid": ("intrinsics", "hypersim_test.txt", 5238, None, None, "none", None, 0, 4, 1, 1234),
        # Marigold-DC (script/eval/*_infer_*.sh): 50 steps x 10, seed 2024; no split file (the files in gt/)
        **{name: ("depth_completion", "", n, None, None, "none", None, res, 50, 10, 2024)
           for name, n, res in (("nyu_v2_dc", 654, 768), ("scannet_dc", 745, 0), ("ibims_dc", 100, 0),
                                ("void150", 800, 0), ("void500", 800, 0), ("void1500", 800, 0),
                                ("kitti_dc", 1000, 0), ("ddad_dc", 3950, 768))},
    }
    assert set(BENCHMARKS) == set(expected) | {c.name for c in NORMALS_LAYOUT}
    for name, (task, split, n, lo, hi, align, max_res, res, steps, ens, seed) in expected.items():
        cls = BENCHMARKS[name]
        assert cls.name == name and cls.task == task and cls.split_file == split and cls.num_samples == n
        if lo is not None:
            assert (cls.min_depth, cls.max_depth) == (lo, hi)
        assert cls.alignment == align and cls.alignment_max_res == max_res
        inf = cls.inference
        assert (inf.processing_resolution, inf.num_inference_steps, inf.ensemble_size, inf.seed) == (
            res,
            steps,
            ens,
            seed,
        )
        assert inf.resample_method == "bilinear"


def test_get_benchmark_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark 'nyu'.*kitti_eigen.*nyu_v2"):
        get_benchmark("nyu", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_benchmark("nyu_v2", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="filename_list_test.txt"):
        get_benchmark("nyu_v2", tmp_path)  # folder exists, split file does not


def test_split_file_errors(tmp_path):
    write_split(
        tmp_path / "scannet_val_sampled_list_800_1.txt",
        ["a/color/1.jpg a/depth/1.png", "a/color/1.jpg x.png"],
    )
    with pytest.raises(ValueError, match="repeats line 1"):
        ScanNetDepth(tmp_path)
    write_split(tmp_path / "diode_val_all_filename_list.txt", ["a.png a_depth.npy"])
    with pytest.raises(ValueError, match="at least 3 columns"):
        DIODEDepth(tmp_path)
    write_split(tmp_path / "scannet_val_sampled_list_800_1.txt", ["a/color/1.jpg a/depth/1.png"])
    with pytest.raises(FileNotFoundError, match="a/color/1.jpg"):
        ScanNetDepth(tmp_path)[0]


def test_stems_are_filesystem_safe():
    assert stem_from_relpath("./test/kitchen_0004/rgb_0001.png") == "test__kitchen_0004__rgb_0001"
    assert stem_from_relpath("a b/c:d.png") == "a_b__c_d"
    assert stem_from_relpath("rgb/x/DSC_0219.JPG") == "rgb__x__DSC_0219"
    with pytest.raises(ValueError):
        stem_from_relpath("./")

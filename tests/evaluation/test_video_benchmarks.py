"""Video benchmark loaders (RollingDepth's splits) on tiny fixtures written in each set's on-disk format — split
folders of per-sequence CSV files with the authors' header, ``^`` names and no trailing newline — checking units,
scale factors, cuts, masks, cameras and the order of the split; clear errors for bad split lines; and
``marigold evaluate --benchmark <video set>`` end to end against metrics computed by hand from the written
predictions."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit.evaluation.datasets import (
    BENCHMARKS,
    VIDEO_BENCHMARKS,
    BonnVideo,
    DyDToFVideo,
    PointOdysseyVideo,
    ScanNetVideo,
    VideoSample,
    get_benchmark,
)
from marigold_toolkit.testing import build_random_checkpoint
from marigold_toolkit.testing.random_checkpoints import build_random_rollingdepth_checkpoint

from ..cli._helpers import run_cli

H, W = 24, 32  # every fixture's frames after the benchmark's cut
T = 4  # frames per sequence


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) * 4 % 256], axis=-1)
    noise = np.random.default_rng(seed).integers(0, 30, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _save_rgb(path: Path, rgb: np.ndarray) -> np.ndarray:
    """Write ``rgb`` (format from the suffix) and return what decoding the file gives (JPEG is lossy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **({"quality": 95} if path.suffix in (".jpg", ".jpeg") else {}))
    return np.asarray(Image.open(path).convert("RGB"))


def _save_png16(path: Path, raw: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(raw.astype(np.uint16)).save(path)


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    """The authors' format: header ``rgb,depth``, one ``rgb,depth`` line per frame, no trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["rgb,depth", *(f"{a},{b}" for a, b in rows)]))
    return path


def _depth_scene(h: int, w: int, k: int, seq: int, lo: float = 1.0, hi: float = 4.0) -> np.ndarray:
    """A smooth positive depth map in metres that changes with the frame ``k`` (a camera moving closer)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (lo + (hi - lo) * (0.3 + 0.7 * (xx + 0.5 * yy) / (w + 0.5 * h)) * (1 - 0.03 * k) + 0.1 * seq)


def _intrinsics(h: int, w: int) -> np.ndarray:
    return np.array([[30.0, 0, w / 2], [0, 30.0, h / 2], [0, 0, 1]])


def _pose(k: int, seq: int) -> np.ndarray:
    """Camera-to-world: sliding along x and turning slightly about y."""
    a = 0.01 * k
    P = np.eye(4)
    P[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    P[:3, 3] = [0.02 * k + seq, 0.0, 0.01 * k]
    return P


# ----------------------------------------------------------------------------------------------------------
# writers, one per set


def make_scannet(root: Path, scenes=("scene0708_00", "scene0707_00", "scene0709_00"), color_scale: int = 1,
                 cameras: bool = True) -> dict:
    """ScanNet's SensReader layout; frames 3, 6, 9, 12 (CSV order differs from name order); depth 640x480-like
    frames of (H + 16) x (W + 22) so the cut leaves H x W; colour optionally ``color_scale`` times larger."""
    hr, wr = H + 16, W + 22
    truth = {}
    for s, scene in enumerate(scenes):
        rows, frames, depths, poses = [], [], [], []
        for k, n in enumerate((3, 6, 9, 12)):
            rgb = _rgb(hr * color_scale, wr * color_scale, seed=10 * s + k)
            decoded = _save_rgb(root / scene / "color" / f"{n}.jpg", rgb)
            if color_scale != 1:
                decoded = np.asarray(Image.fromarray(decoded).resize((wr, hr), Image.BILINEAR))
            raw = np.round(_depth_scene(hr, wr, k, s) * 1000).astype(np.uint16)
            raw[hr // 2, 11:16] = 0  # no measurement (row H // 2, columns 0-4 after the cut)
            raw[hr // 2 + 1, 15] = 12000  # 12 m: beyond the 10 m range (row H // 2 + 1, column 4)
            raw[2, :] = 0  # cut away
            _save_png16(root / scene / "depth" / f"{n}.png", raw)
            if cameras:
                (root / scene / "pose").mkdir(parents=True, exist_ok=True)
                np.savetxt(root / scene / "pose" / f"{n}.txt", _pose(k, s))
            rows.append((f"color/{n}.jpg", f"depth/{n}.png"))
            frames.append(decoded[8:-8, 11:-11])
            depths.append(raw[8:-8, 11:-11] / 1000.0)
            poses.append(_pose(k, s))
        if cameras:
            K4 = np.eye(4)
            K4[:3, :3] = _intrinsics(hr, wr)
            (root / scene / "intrinsic").mkdir(parents=True, exist_ok=True)
            np.savetxt(root / scene / "intrinsic" / "intrinsic_depth.txt", K4)
        _write_csv(root / "rgbd_test_90frame_crop" / f"{scene}.csv", rows)
        truth[scene] = {"frames": np.stack(frames), "depth": np.stack(depths), "poses": np.stack(poses)}
    return truth


def make_bonn(root: Path, seqs=("rgbd_bonn_balloon2", "rgbd_bonn_crowd2")) -> dict:
    """Bonn RGB-D Dynamic: PNG colour, depth x 5000 with its own timestamps; odd frames (H + 1) x (W + 1)."""
    truth = {}
    for s, seq in enumerate(seqs):
        rows, frames, depths = [], [], []
        for k in range(T):
            t_rgb, t_depth = f"{1548266531.5 + 0.033 * k:.5f}", f"{1548266531.49 + 0.033 * k:.5f}"
            rgb = _rgb(H + 1, W + 1, seed=s * 10 + k)
            _save_rgb(root / seq / "rgb" / f"{t_rgb}.png", rgb)
            raw = np.round(_depth_scene(H + 1, W + 1, k, s) * 5000).astype(np.uint16)
            raw[0, :3] = 0
            _save_png16(root / seq / "depth" / f"{t_depth}.png", raw)
            rows.append((f"rgb/{t_rgb}.png", f"depth/{t_depth}.png"))
            frames.append(rgb[:H, :W])
            depths.append(raw[:H, :W] / 5000.0)
        _write_csv(root / "5_seq_110frame" / f"{seq}.csv", rows)
        truth[seq] = {"frames": np.stack(frames), "depth": np.stack(depths)}
    return truth


def make_pointodyssey(root: Path, seqs=("train/dancing", "test/cab_e_3rd"), first: int = 240) -> dict:
    """PointOdyssey: ``<split>/<seq>/rgbs/rgb_XXXXX.jpg``, ``depths_masked/depth_XXXXX.png`` (PNG / 65535 x
    1000 m, 0 = masked), ``anno.npz`` with per-frame intrinsics and world-to-camera extrinsics."""
    truth = {}
    for s, seq in enumerate(seqs):
        rows, frames, depths = [], [], []
        n_total = first + T + 3
        ks = np.stack([_intrinsics(H, W) + np.diag([0.1 * i, 0.1 * i, 0]) for i in range(n_total)])
        c2w = np.stack([_pose(i - first, s) for i in range(n_total)])
        for k in range(T):
            n = first + k
            frames.append(_save_rgb(root / seq / "rgbs" / f"rgb_{n:05d}.jpg", _rgb(H, W, seed=s * 10 + k)))
            raw = np.round(_depth_scene(H, W, k, s) / 1000.0 * 65535).astype(np.uint16)
            raw[3, 4:9] = 0  # masked
            raw[5, 5] = 65535  # saturated: 1000 m, outside the range
            _save_png16(root / seq / "depths_masked" / f"depth_{n:05d}.png", raw)
            rows.append((f"rgbs/rgb_{n:05d}.jpg", f"depths_masked/depth_{n:05d}.png"))
            depths.append(raw / 65535.0 * 1000.0)
        np.savez(root / seq / "anno.npz", intrinsics=ks, extrinsics=np.linalg.inv(c2w),
                 trajs_2d=np.zeros((n_total, 2, 2)))
        _write_csv(root / "selected_250frame_masked" / (seq.replace("/", "^") + ".csv"), rows)
        idx = list(range(first, first + T))
        truth[seq] = {"frames": np.stack(frames), "depth": np.stack(depths), "K": ks[idx], "poses": c2w[idx]}
    return truth


def make_dydtof(root: Path, seqs=("apartment_big/ba_shot1", "office/bo_shot1_fast")) -> dict:
    """DyDToF: ``ColorImage/shot1.XXXX.jpeg`` and ``DepthMap/shot1.XXXX.npy`` (float metres, [H, W, 1];
    50 = no hit)."""
    truth = {}
    for s, seq in enumerate(seqs):
        rows, frames, depths = [], [], []
        for k in range(T):
            n = 50 + k
            frames.append(_save_rgb(root / seq / "ColorImage" / f"shot1.{n:04d}.jpeg", _rgb(H, W, seed=s + k)))
            d = _depth_scene(H, W, k, s).astype(np.float32)
            d[:2, :] = 50.0  # the renderer's no-hit value
            (root / seq / "DepthMap").mkdir(parents=True, exist_ok=True)
            np.save(root / seq / "DepthMap" / f"shot1.{n:04d}.npy", d[..., None])
            rows.append((f"ColorImage/shot1.{n:04d}.jpeg", f"DepthMap/shot1.{n:04d}.npy"))
            depths.append(d)
        _write_csv(root / "extracted_100frame_sub16" / (seq.replace("/", "^") + ".csv"), rows)
        truth[seq] = {"frames": np.stack(frames), "depth": np.stack(depths)}
    return truth


# ----------------------------------------------------------------------------------------------------------
# loaders


def test_registry_protocol_settings():
    assert not set(VIDEO_BENCHMARKS) & set(BENCHMARKS)
    expected = {  # name: split folder, sequences, frames, range
        "pointodyssey-video": ("selected_250frame_masked", 35, 250, 1e-3, 1000.0),
        "scannet-video": ("rgbd_test_90frame_crop", 100, 90, 1e-3, 10.0),
        "bonn-video": ("5_seq_110frame", 5, 110, 1e-3, 10.0),
        "dydtof-video": ("extracted_100frame_sub16", 16, 100, 1e-3, 50.0),
    }
    for name, (split, n, frames, lo, hi) in expected.items():
        cls = VIDEO_BENCHMARKS[name]
        assert (cls.split_file, cls.num_samples, cls.num_frames, cls.min_depth, cls.max_depth) == (
            split, n, frames, lo, hi)
        assert cls.task == "depth" and cls.alignment == "least_squares"


def test_scannet_video_decodes_units_cut_mask_order_and_cameras(tmp_path):
    truth = make_scannet(tmp_path)
    bench = get_benchmark("scannet-video", tmp_path)
    assert isinstance(bench, ScanNetVideo)
    assert [e.stem for e in bench.entries] == ["scene0707_00", "scene0708_00", "scene0709_00"]  # sorted files
    s = bench[1]
    assert isinstance(s, VideoSample) and s.stem == "scene0708_00" and s.num_frames == T
    ref = truth["scene0708_00"]
    assert s.frames.shape == (T, H, W, 3) and s.frames.dtype == np.uint8
    np.testing.assert_array_equal(s.frames, ref["frames"])
    assert s.gt.shape == (T, H, W) and s.gt.dtype == np.float32
    np.testing.assert_allclose(s.gt, ref["depth"], rtol=1e-6)
    # the CSV's line order is the frame order (3, 6, 9, 12), not the file names' order
    assert [Path(p).name for p in s.meta["rgb_paths"]] == ["3.jpg", "6.jpg", "9.jpg", "12.jpg"]
    expected_mask = (ref["depth"] > 1e-3) & (ref["depth"] < 10.0)
    np.testing.assert_array_equal(s.valid_mask, expected_mask)
    assert not s.valid_mask[:, H // 2, :5].any() and not s.valid_mask[:, H // 2 + 1, 4].any()
    assert (~s.valid_mask).sum() == T * 6
    # intrinsics: the depth camera's, principal point moved by the cut; poses as written
    K = _intrinsics(H + 16, W + 22)
    K[0, 2] -= 11
    K[1, 2] -= 8
    assert s.has_cameras
    np.testing.assert_allclose(s.intrinsics, np.broadcast_to(K, (T, 3, 3)))
    np.testing.assert_allclose(s.poses, ref["poses"])


def test_scannet_video_resizes_a_larger_colour_frame_and_drops_missing_cameras(tmp_path):
    truth = make_scannet(tmp_path, scenes=("scene0707_00",), color_scale=2, cameras=False)
    s = get_benchmark("scannet-video", tmp_path)[0]
    assert s.frames.shape == (T, H, W, 3)
    np.testing.assert_array_equal(s.frames, truth["scene0707_00"]["frames"])
    assert s.intrinsics is None and s.poses is None and not s.has_cameras


def test_bonn_video_scale_and_even_cut(tmp_path):
    truth = make_bonn(tmp_path)
    bench = get_benchmark("bonn-video", tmp_path)
    assert isinstance(bench, BonnVideo) and [e.stem for e in bench.entries] == ["rgbd_bonn_balloon2",
                                                                                 "rgbd_bonn_crowd2"]
    s = bench[0]
    ref = truth["rgbd_bonn_balloon2"]
    np.testing.assert_array_equal(s.frames, ref["frames"])
    np.testing.assert_allclose(s.gt, ref["depth"], rtol=1e-6)
    assert s.gt.shape == (T, H, W)
    assert not s.valid_mask[:, 0, :3].any() and s.valid_mask[:, 1:, :].all()
    assert s.intrinsics is None and s.poses is None


def test_pointodyssey_video_encoding_names_mask_and_cameras(tmp_path):
    truth = make_pointodyssey(tmp_path)
    bench = get_benchmark("pointodyssey-video", tmp_path)
    assert isinstance(bench, PointOdysseyVideo)
    # test^cab_e_3rd.csv sorts before train^dancing.csv; '^' is the folder separator
    assert [e.stem for e in bench.entries] == ["test__cab_e_3rd", "train__dancing"]
    s = bench[0]
    ref = truth["test/cab_e_3rd"]
    assert s.meta["sequence"] == "test/cab_e_3rd"
    np.testing.assert_array_equal(s.frames, ref["frames"])
    np.testing.assert_allclose(s.gt, ref["depth"], rtol=1e-6)
    assert s.gt[0, 5, 5] == pytest.approx(1000.0)  # the saturated code ...
    assert not s.valid_mask[:, 5, 5].any() and not s.valid_mask[:, 3, 4:9].any()  # ... and masked pixels: invalid
    assert s.valid_mask.sum() == T * (H * W - 6)
    np.testing.assert_allclose(s.intrinsics, ref["K"])  # picked by the frame number in the file name
    np.testing.assert_allclose(s.poses, ref["poses"], atol=1e-9)  # inverse extrinsics


def test_dydtof_video_npy_and_no_hit_value(tmp_path):
    truth = make_dydtof(tmp_path)
    bench = get_benchmark("dydtof-video", tmp_path)
    assert isinstance(bench, DyDToFVideo)
    assert [e.stem for e in bench.entries] == ["apartment_big__ba_shot1", "office__bo_shot1_fast"]
    s = bench[1]
    ref = truth["office/bo_shot1_fast"]
    np.testing.assert_array_equal(s.frames, ref["frames"])
    np.testing.assert_array_equal(s.gt, ref["depth"])
    assert not s.valid_mask[:, :2].any() and s.valid_mask[:, 2:].all()


def test_split_folder_lookup_and_explicit_split(tmp_path):
    make_bonn(tmp_path / "data")
    (tmp_path / "data" / "5_seq_110frame").rename(tmp_path / "split")
    with pytest.raises(FileNotFoundError, match=r"5_seq_110frame.*prs-eth/RollingDepth"):
        get_benchmark("bonn-video", tmp_path / "data")
    # the authors' data_split/ folder copied into the root is found
    dest = tmp_path / "data" / "data_split" / "bonn_rgbd"
    dest.mkdir(parents=True)
    (tmp_path / "split").rename(dest / "5_seq_110frame")
    assert len(get_benchmark("bonn-video", tmp_path / "data")) == 2
    # split= names one sequence CSV
    one = get_benchmark("bonn-video", tmp_path / "data", split=dest / "5_seq_110frame" / "rgbd_bonn_crowd2.csv")
    assert [e.stem for e in one.entries] == ["rgbd_bonn_crowd2"]


def test_bad_split_lines_give_one_line_errors_naming_file_and_line(tmp_path):
    make_bonn(tmp_path)
    csv_path = tmp_path / "5_seq_110frame" / "rgbd_bonn_crowd2.csv"
    lines = csv_path.read_text().split("\n")
    csv_path.write_text("\n".join([*lines[:3], "rgb/only_one_column.png", *lines[3:]]))
    with pytest.raises(ValueError) as err:
        get_benchmark("bonn-video", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and f"{csv_path}:4:" in msg and "expected at least 2 columns" in msg
    csv_path.write_text("\n".join([*lines[:3], lines[2]]))  # a frame twice
    with pytest.raises(ValueError, match=re.escape(f"{csv_path}:4: ") + ".*repeats line 3"):
        get_benchmark("bonn-video", tmp_path)
    csv_path.write_text("rgb,depth\n")
    with pytest.raises(ValueError, match=re.escape(f"{csv_path}: the sequence CSV lists no frames")):
        get_benchmark("bonn-video", tmp_path)
    csv_path.write_text("\n".join(lines))
    (tmp_path / "rgbd_bonn_crowd2" / "depth" / lines[2].split(",")[1].split("/")[1]).unlink()
    bench = get_benchmark("bonn-video", tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        bench[1]


def test_frame_size_mismatch_names_the_line(tmp_path):
    make_dydtof(tmp_path, seqs=("cabin/cabin_shot1",))
    np.save(tmp_path / "cabin/cabin_shot1/DepthMap/shot1.0052.npy", np.ones((H, W + 2), np.float32))
    csv_path = tmp_path / "extracted_100frame_sub16" / "cabin^cabin_shot1.csv"
    with pytest.raises(ValueError, match=re.escape(f"{csv_path}:4: image is {H}x{W} but depth is {H}x{W + 2}")):
        get_benchmark("dydtof-video", tmp_path)[0]


# ----------------------------------------------------------------------------------------------------------
# marigold evaluate --benchmark <video set>


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("video_eval_models")
    return {"depth": build_random_checkpoint(root / "depth", "depth-v1-1", seed=3),
            "rolling": build_random_rollingdepth_checkpoint(root / "rolling", seed=4)}


def _align_by_hand(pred, gt, mask, space, lo, hi):
    """One least-squares fit over every valid pixel of the sequence (float64), clipped to [lo, hi]."""
    p = pred.astype(np.float64)
    if space == "depth":
        m = mask
        target = gt
    else:
        m = mask & (p > 0)
        target = 1.0 / np.where(m, gt, 1.0)
    A = np.stack([p[m], np.ones(m.sum())], axis=1)
    (s, t), *_ = np.linalg.lstsq(A, target[m], rcond=None)
    out = s * p + t
    if space == "disparity":
        out = 1.0 / np.maximum(out, 1e-3)
    return np.clip(out, lo, hi)


def _tae_by_hand(depth, K, poses):
    """TAE: reproject frame a into b (nearest point per pixel), AbsRel against b where both are positive, both
    directions, sum / 2(N - 1) x 100."""
    n, h, w = depth.shape
    total = 0.0
    for i in range(n - 1):
        for a, b in ((i, i + 1), (i + 1, i)):
            v, u = np.mgrid[0:h, 0:w]
            d = depth[a].ravel()
            rays = np.linalg.inv(K[a]) @ np.stack([u.ravel(), v.ravel(), np.ones(h * w)])
            pts = np.linalg.inv(poses[b]) @ poses[a] @ np.vstack([rays * d, np.ones(h * w)])
            z = pts[2]
            uv = K[b] @ (pts[:3] / z)
            uu, vv = np.round(uv[0]).astype(int), np.round(uv[1]).astype(int)
            zbuf = np.full((h, w), np.inf)
            for x, y, zz in zip(uu, vv, z):
                if zz > 1e-9 and 0 <= x < w and 0 <= y < h:
                    zbuf[y, x] = min(zbuf[y, x], zz)
            ok = np.isfinite(zbuf) & (depth[b] > 0)
            total += np.mean(np.abs(zbuf[ok] - depth[b][ok]) / depth[b][ok])
    return total / (2 * (n - 1)) * 100


def _check_report(out: Path, bench, space: str, with_tae: bool) -> dict:
    report = json.loads((out / "report.json").read_text())
    cache = Path(report["prediction_cache"])
    target = "depth" if space == "depth" else "disparity"
    rows = list(csv.DictReader((out / "per_sequence.csv").open()))
    assert [r["stem"] for r in rows] == [e.stem for e in bench.entries]
    per = []
    for sample, row in zip(bench, rows):
        pred = np.load(cache / f"{sample.stem}_{target}.npy")
        assert pred.shape == sample.gt.shape and pred.dtype == np.float32
        m = sample.valid_mask
        aligned = _align_by_hand(pred, sample.gt.astype(np.float64), m, space, bench.min_depth, bench.max_depth)
        g = sample.gt.astype(np.float64)
        abs_rel = np.mean([np.mean(np.abs(aligned[k][m[k]] - g[k][m[k]]) / g[k][m[k]]) for k in range(len(g))])
        delta1 = np.mean([np.mean(np.maximum(aligned[k][m[k]] / g[k][m[k]], g[k][m[k]] / aligned[k][m[k]]) < 1.25)
                          for k in range(len(g))])
        mine = {"abs_rel": abs_rel, "delta1": delta1}
        if with_tae:
            mine["tae"] = _tae_by_hand(aligned, sample.intrinsics, sample.poses)
        assert int(row["frames"]) == sample.num_frames
        for k, v in mine.items():
            assert float(row[k]) == pytest.approx(v, rel=1e-4, abs=2e-4), k
        per.append(mine)
    for k in per[0]:
        assert report[k] == pytest.approx(np.mean([p[k] for p in per]), rel=1e-4, abs=2e-4), k
    assert report["num_sequences"] == len(per) and report["num_frames"] == T * len(per)
    return report


def test_evaluate_scannet_video_latent_init_matches_metrics_by_hand(tmp_path, tiny_models, capsys):
    make_scannet(tmp_path / "scannet")
    out = tmp_path / "eval"
    args = ["evaluate", "--benchmark", "scannet-video", "--data-root", tmp_path / "scannet", "--model",
            tiny_models["depth"], "--processing-resolution", 32, "--device", "cpu", "--output-dir", out]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    bench = get_benchmark("scannet-video", tmp_path / "scannet")
    report = _check_report(out, bench, "depth", with_tae=True)
    s = report["settings"]
    assert (s["mode"], s["alignment"], s["min_depth"], s["max_depth"], s["seed"]) == (
        "latent-init", "least_squares", 1e-3, 10.0, 0)
    assert report["num_predicted_this_run"] == 3 and report["num_sequences_with_tae"] == 3
    md = (out / "report.md").read_text()
    assert "## scannet-video" in md and "tae" in md and "latent-init" in md
    # a rerun predicts nothing and reports the same numbers
    code, _, err = run_cli(capsys, *args)
    again = json.loads((out / "report.json").read_text())
    assert code == 0 and again["num_predicted_this_run"] == 0 and again["abs_rel"] == report["abs_rel"]


def test_evaluate_bonn_video_rolling_disparity_model_aligns_in_disparity(tmp_path, tiny_models, capsys):
    make_bonn(tmp_path / "bonn")
    out = tmp_path / "eval"
    code, _, err = run_cli(capsys, "evaluate", "--benchmark", "bonn-video", "--data-dir", tmp_path / "bonn",
                           "--model", tiny_models["rolling"], "--preset", "fast", "--dtype", "float32",
                           "--processing-resolution", 32, "--device", "cpu", "--output-dir", out)
    assert code == 0, err
    report = _check_report(out, get_benchmark("bonn-video", tmp_path / "bonn"), "disparity", with_tae=False)
    s = report["settings"]
    assert (s["mode"], s["preset"], s["alignment"]) == ("rolling", "fast", "least_squares_disparity")
    assert "tae" not in report and report["num_sequences_with_tae"] == 0


def test_evaluate_video_usage_errors(tmp_path, tiny_models, capsys):
    make_bonn(tmp_path / "bonn")
    base = ["evaluate", "--benchmark", "bonn-video", "--data-dir", tmp_path / "bonn", "--model", tiny_models["depth"],
            "--device", "cpu", "--output-dir", tmp_path / "eval"]
    code, _, err = run_cli(capsys, *base, "--ensemble", 3)
    assert code == 2 and "--ensemble 3" in err
    code, _, err = run_cli(capsys, *base, "--mode", "latent-init", "--preset", "fast")
    assert code == 2 and "--preset applies to --mode rolling" in err
    code, _, err = run_cli(capsys, "evaluate", "--benchmark", "bonn-video", "--data-dir", tmp_path / "missing",
                           "--model", tiny_models["depth"])
    assert code == 2 and "does not exist" in err
    code, out, _ = run_cli(capsys, "benchmarks")
    assert code == 0 and all(name in out for name in VIDEO_BENCHMARKS)

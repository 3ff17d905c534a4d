"""Prediction files: the fixed names of ``Task.output_files`` and real round trips through ``Task.write_outputs``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit.core.atomic import TMP_PREFIX
from marigold_toolkit import colorize_depth, intrinsic_to_rgb, normals_to_rgb, uncertainty_heatmap
from marigold_toolkit.pipeline.outputs import MarigoldOutput
from marigold_toolkit.tasks import get_task


def _task(name: str, targets, target_properties=None):
    cls = get_task(name)
    return cls(targets, target_properties) if target_properties else cls(targets)


def output_names(task: str, targets, stem: str, with_uncertainty: bool) -> list[str]:
    return _task(task, targets).output_files(stem, with_uncertainty)


def write_prediction(out_dir, stem, output, target_properties=None):
    return _task(output.task, output.target_names, target_properties).write_outputs(out_dir, stem, output)

LIGHTING = {
    "target_names": ["albedo", "shading", "residual"],
    "albedo": {"prediction_space": "linear", "up_to_scale": False},
    "shading": {"prediction_space": "linear", "up_to_scale": True},
    "residual": {"prediction_space": "linear", "up_to_scale": True},
}
APPEARANCE = {
    "target_names": ["albedo", "material"],
    "albedo": {"prediction_space": "srgb", "up_to_scale": False},
    "material": {"prediction_space": "stack", "sub_target_names": ["roughness", "metallicity", None]},
}

H, W = 13, 21


def _rng(seed=0):
    return np.random.default_rng(seed)


def _unit_normals(seed=0) -> np.ndarray:
    n = _rng(seed).normal(size=(H, W, 3)).astype(np.float32)
    return (n / np.linalg.norm(n, axis=2, keepdims=True)).astype(np.float32)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _read_png(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as img:
        img.load()
        return img.mode, np.asarray(img)


# ------------------------------------------------------------------------------------------------------------
# output_names


@pytest.mark.parametrize(
    "task, targets, stem, with_unc, expected",
    [
        ("depth", ["depth"], "img", False, ["img_depth.npy", "img_depth.png", "img_depth_colored.png"]),
        (
            "depth", ["depth"], "img", True,
            ["img_depth.npy", "img_depth.png", "img_depth_colored.png",
             "img_depth_uncertainty.npy", "img_depth_uncertainty.png"],
        ),
        ("normals", ["normals"], "a b", False, ["a b_normals.npy", "a b_normals.png"]),
        (
            "normals", ["normals"], "a b", True,
            ["a b_normals.npy", "a b_normals.png",
             "a b_normals_uncertainty.npy", "a b_normals_uncertainty.png"],
        ),
        (
            "intrinsics", ["albedo", "material"], "x", False,
            ["x_albedo.npy", "x_albedo.png", "x_material.npy", "x_material.png"],
        ),
        (
            "intrinsics", ["albedo", "shading", "residual"], "phö_to", True,
            [f"phö_to_{t}{s}" for t in ("albedo", "shading", "residual")
             for s in (".npy", ".png", "_uncertainty.npy", "_uncertainty.png")],
        ),
    ],
)
def test_output_names(task, targets, stem, with_unc, expected):
    names = output_names(task, targets, stem, with_unc)
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(expected)


def test_output_names_no_colored_png_outside_depth():
    for task, targets in (("normals", ["normals"]), ("intrinsics", ["albedo", "shading", "residual"])):
        for with_unc in (False, True):
            assert not any("colored" in n for n in output_names(task, targets, "s", with_unc))


# ------------------------------------------------------------------------------------------------------------
# write_prediction round trips


def _check_written(out_dir: Path, written: list[Path], task: str, output: MarigoldOutput, stem: str) -> None:
    expected = output_names(task, output.target_names, stem, output.uncertainty is not None)
    assert _listing(out_dir) == sorted(expected)  # exactly these files, no temporaries, nothing else
    assert sorted(p.name for p in written) == sorted(expected)
    assert all(Path(p).parent == out_dir for p in written)
    assert not any(name.startswith(TMP_PREFIX) for name in _listing(out_dir))
    assert all((out_dir / n).stat().st_size > 0 for n in expected)


def _check_npy(path: Path, expected: np.ndarray) -> None:
    arr = np.load(path, allow_pickle=False)
    assert arr.dtype == np.float32
    assert arr.shape == expected.shape
    np.testing.assert_array_equal(arr, expected.astype(np.float32))


@pytest.mark.parametrize("with_unc", [False, True])
def test_write_depth(tmp_path, with_unc):
    depth = _rng(1).random((H, W)).astype(np.float32)
    depth[0, :4] = [0.0, 1.0, 0.5, 0.25]
    unc = (_rng(2).random((H, W)) * 0.1).astype(np.float32) if with_unc else None
    out = MarigoldOutput(task="depth", targets={"depth": depth},
                         uncertainty={"depth": unc} if with_unc else None)
    written = write_prediction(tmp_path, "img", out)
    _check_written(tmp_path, written, "depth", out, "img")

    _check_npy(tmp_path / "img_depth.npy", depth)

    mode, png = _read_png(tmp_path / "img_depth.png")
    assert mode in ("I;16", "I")  # 16-bit greyscale
    assert png.shape == (H, W)
    png = png.astype(np.int64)
    assert png[0, :4].tolist() == [0, 65535, 32767, 16383]
    exact = np.floor(depth.astype(np.float64) * 65535)
    diff = png - exact
    # round-down of depth * 65535; the product is taken in float32, which may round x.9999.. up to x + 1
    frac = depth.astype(np.float64) * 65535 - exact
    assert np.all((diff == 0) | ((diff == 1) & (frac > 0.99)))
    assert np.mean(diff == 0) > 0.99

    mode, colored = _read_png(tmp_path / "img_depth_colored.png")
    assert mode == "RGB" and colored.dtype == np.uint8 and colored.shape == (H, W, 3)
    np.testing.assert_array_equal(colored, colorize_depth(depth))

    if with_unc:
        _check_npy(tmp_path / "img_depth_uncertainty.npy", unc)
        mode, heat = _read_png(tmp_path / "img_depth_uncertainty.png")
        assert mode == "RGB" and heat.shape == (H, W, 3)
        np.testing.assert_array_equal(heat, uncertainty_heatmap(unc))


def test_write_depth_out_of_range_and_float64(tmp_path):
    depth = np.array([[-0.5, 0.0, 1.0, 1.5]], dtype=np.float64)
    out = MarigoldOutput(task="depth", targets={"depth": depth})
    write_prediction(tmp_path, "edge", out)
    npy = np.load(tmp_path / "edge_depth.npy")
    assert npy.dtype == np.float32
    np.testing.assert_array_equal(npy, depth.astype(np.float32))  # raw values kept in the npy
    _, png = _read_png(tmp_path / "edge_depth.png")
    assert png.tolist() == [[0, 0, 65535, 65535]]  # clipped in the 16-bit PNG


@pytest.mark.parametrize("with_unc", [False, True])
def test_write_normals(tmp_path, with_unc):
    normals = _unit_normals(3)
    normals[0, 0] = (0.0, 0.0, 1.0)
    unc = _rng(4).random((H, W)).astype(np.float32) if with_unc else None
    out = MarigoldOutput(task="normals", targets={"normals": normals},
                         uncertainty={"normals": unc} if with_unc else None)
    written = write_prediction(tmp_path, "n", out)
    _check_written(tmp_path, written, "normals", out, "n")
    _check_npy(tmp_path / "n_normals.npy", normals)
    mode, png = _read_png(tmp_path / "n_normals.png")
    assert mode == "RGB" and png.shape == (H, W, 3)
    np.testing.assert_array_equal(png, normals_to_rgb(normals))
    assert png[0, 0].tolist() == [127, 127, 255]
    if with_unc:
        _check_npy(tmp_path / "n_normals_uncertainty.npy", unc)
        _, heat = _read_png(tmp_path / "n_normals_uncertainty.png")
        np.testing.assert_array_equal(heat, uncertainty_heatmap(unc))


@pytest.mark.parametrize("with_unc", [False, True])
def test_write_intrinsics_lighting(tmp_path, with_unc):
    rng = _rng(5)
    targets = {name: rng.random((H, W, 3)).astype(np.float32) * 0.5 for name in LIGHTING["target_names"]}
    targets["shading"][0, 0] = (0.5, 0.25, 0.0)  # the max of shading is 0.5
    unc = {name: rng.random((H, W, 3)).astype(np.float32) for name in targets} if with_unc else None
    out = MarigoldOutput(task="intrinsics", targets=targets, uncertainty=unc)
    written = write_prediction(tmp_path, "room", out, LIGHTING)
    _check_written(tmp_path, written, "intrinsics", out, "room")
    for name, arr in targets.items():
        _check_npy(tmp_path / f"room_{name}.npy", arr)
        mode, png = _read_png(tmp_path / f"room_{name}.png")
        assert mode == "RGB" and png.shape == (H, W, 3)
        np.testing.assert_array_equal(png, intrinsic_to_rgb(arr, LIGHTING[name]))
        if with_unc:
            _check_npy(tmp_path / f"room_{name}_uncertainty.npy", unc[name])
            _, heat = _read_png(tmp_path / f"room_{name}_uncertainty.png")
            assert heat.shape == (H, W, 3)
            np.testing.assert_array_equal(heat, uncertainty_heatmap(unc[name]))
    # shading is linear and up to scale: divided by its max 0.5, then gamma 1/2.2 -> 1.0, 0.5**(1/2.2), 0
    _, shading_png = _read_png(tmp_path / "room_shading.png")
    assert shading_png[0, 0].tolist() == [255, int(0.5 ** (1 / 2.2) * 255), 0]


def test_write_intrinsics_appearance(tmp_path):
    rng = _rng(6)
    targets = {name: rng.random((H, W, 3)).astype(np.float32) for name in APPEARANCE["target_names"]}
    out = MarigoldOutput(task="intrinsics", targets=targets)
    written = write_prediction(tmp_path, "obj", out, APPEARANCE)
    _check_written(tmp_path, written, "intrinsics", out, "obj")
    _, albedo = _read_png(tmp_path / "obj_albedo.png")
    np.testing.assert_array_equal(albedo, (targets["albedo"] * 255).astype(np.uint8))  # srgb: passthrough


def test_write_prediction_overwrites_and_creates_folder(tmp_path):
    out_dir = tmp_path / "new" / "out"
    first = MarigoldOutput(task="depth", targets={"depth": np.zeros((H, W), np.float32)})
    second = MarigoldOutput(task="depth", targets={"depth": np.full((H, W), 0.75, np.float32)})
    write_prediction(out_dir, "s", first)
    write_prediction(out_dir, "s", second)
    assert _listing(out_dir) == sorted(output_names("depth", ["depth"], "s", False))
    _check_npy(out_dir / "s_depth.npy", second.targets["depth"])
    _, png = _read_png(out_dir / "s_depth.png")
    assert np.all(png == 49151)


def test_two_stems_in_one_folder(tmp_path):
    for stem in ("a", "a_depth"):  # a stem that looks like another's output name
        out = MarigoldOutput(task="depth", targets={"depth": np.full((2, 3), 0.5, np.float32)})
        write_prediction(tmp_path, stem, out)
    expected = [n for stem in ("a", "a_depth") for n in output_names("depth", ["depth"], stem, False)]
    assert _listing(tmp_path) == sorted(expected)

"""Visualisations: exact colours against matplotlib and hand-computed values, shapes, dtypes, shape errors."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from marigold_toolkit.tasks.depth import colorize_depth, depth_to_uint16
from marigold_toolkit.tasks.intrinsics import intrinsic_to_rgb
from marigold_toolkit.tasks.normals import normals_to_rgb
from marigold_toolkit.visualize import side_by_side, uncertainty_heatmap


def _cmap_bytes(name: str, value: float) -> list[int]:
    return list(matplotlib.colormaps[name](value, bytes=True)[:3])


# ------------------------------------------------------------------------------------------------------------
# colorize_depth


def test_colorize_depth_spectral_ends():
    out = colorize_depth(np.array([[0.0, 1.0]], dtype=np.float32))
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3)
    assert out[0, 0].tolist() == _cmap_bytes("Spectral", 0.0)
    assert out[0, 1].tolist() == _cmap_bytes("Spectral", 1.0)
    # Spectral: near (0) is dark red, far (1) is blue-violet
    assert out[0, 0].tolist() == [158, 1, 66]
    assert out[0, 1].tolist() == [94, 79, 162]
    assert out.flags["C_CONTIGUOUS"]


def test_colorize_depth_matches_matplotlib_everywhere():
    depth = np.random.default_rng(0).random((9, 11)).astype(np.float32)
    expected = matplotlib.colormaps["Spectral"](depth, bytes=True)[..., :3]
    np.testing.assert_array_equal(colorize_depth(depth), expected)


def test_colorize_depth_clips_and_ranges():
    out = colorize_depth(np.array([[-1.0, 2.0]]))
    assert out[0, 0].tolist() == _cmap_bytes("Spectral", 0.0)
    assert out[0, 1].tolist() == _cmap_bytes("Spectral", 1.0)
    # vmin/vmax rescale before colouring
    out = colorize_depth(np.array([[2.0, 4.0, 3.0]]), vmin=2.0, vmax=4.0)
    assert out[0, 0].tolist() == _cmap_bytes("Spectral", 0.0)
    assert out[0, 1].tolist() == _cmap_bytes("Spectral", 1.0)
    assert out[0, 2].tolist() == _cmap_bytes("Spectral", 0.5)
    # another colormap
    out = colorize_depth(np.array([[0.0, 1.0]]), cmap="viridis")
    assert out[0, 0].tolist() == _cmap_bytes("viridis", 0.0)
    assert out[0, 1].tolist() == _cmap_bytes("viridis", 1.0)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 1), (2, 3, 3), ()])
def test_colorize_depth_shape_errors(shape):
    with pytest.raises(ValueError, match="depth: expected shape"):
        colorize_depth(np.zeros(shape))


@pytest.mark.parametrize("vmin, vmax", [(1.0, 1.0), (1.0, 0.0)])
def test_colorize_depth_invalid_range(vmin, vmax):
    with pytest.raises(ValueError, match="invalid range"):
        colorize_depth(np.zeros((2, 2)), vmin=vmin, vmax=vmax)


# ------------------------------------------------------------------------------------------------------------
# depth_to_uint16


def test_depth_to_uint16_values():
    depth = np.array(
        [[0.0, 0.25, 0.5, 0.75, 1.0], [-0.1, 1.1, 1e-6, 1.5 / 65535, 0.999999]], dtype=np.float32
    )
    out = depth_to_uint16(depth)
    assert out.dtype == np.uint16 and out.shape == (2, 5)
    # round-down of depth * 65535, clipped to [0, 1] first
    assert out.tolist() == [[0, 16383, 32767, 49151, 65535], [0, 65535, 0, 1, 65534]]


def test_depth_to_uint16_is_monotonic():
    depth = np.sort(np.random.default_rng(1).random(1000)).reshape(1, -1)
    out = depth_to_uint16(depth).astype(np.int64)
    assert np.all(np.diff(out) >= 0)
    assert np.all(np.abs(out - depth * 65535) <= 1)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 1)])
def test_depth_to_uint16_shape_errors(shape):
    with pytest.raises(ValueError):
        depth_to_uint16(np.zeros(shape))


# ------------------------------------------------------------------------------------------------------------
# normals_to_rgb


def test_normals_to_rgb_axes():
    n = np.array(
        [[[0, 0, 1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, -1]]], dtype=np.float32
    )
    out = normals_to_rgb(n)
    assert out.dtype == np.uint8 and out.shape == (1, 6, 3)
    assert out[0].tolist() == [
        [127, 127, 255],  # facing the viewer
        [255, 127, 127],
        [0, 127, 127],
        [127, 255, 127],
        [127, 0, 127],
        [127, 127, 0],
    ]


def test_normals_to_rgb_flips():
    # components chosen so that (n + 1) / 2 * 255 is never near an integer: float32 rounding cannot matter
    n = np.array([[[0.5, -0.3, 0.1], [0.0, 0.0, 1.0]]], dtype=np.float32)
    plain = normals_to_rgb(n)
    assert plain[0, 0].tolist() == [191, 89, 140]  # 191.25, 89.25, 140.25
    assert normals_to_rgb(n, flip_x=True)[0, 0].tolist() == [63, 89, 140]  # x -> -0.5: 63.75
    assert normals_to_rgb(n, flip_y=True)[0, 0].tolist() == [191, 165, 140]  # y -> 0.3: 165.75
    assert normals_to_rgb(n, flip_z=True)[0, 0].tolist() == [191, 89, 114]  # z -> -0.1: 114.75
    assert plain[0, 1].tolist() == [127, 127, 255]
    assert normals_to_rgb(n, flip_z=True)[0, 1].tolist() == [127, 127, 0]
    assert normals_to_rgb(n, flip_x=True, flip_y=True)[0, 1].tolist() == [127, 127, 255]
    # flipping every axis of the negated normals gives back the original picture
    np.testing.assert_array_equal(normals_to_rgb(-n, True, True, True), plain)


def test_normals_to_rgb_clips_out_of_range():
    out = normals_to_rgb(np.array([[[2.0, -2.0, 0.0]]]))
    assert out[0, 0].tolist() == [255, 0, 127]


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 2), (4, 4, 4), (1, 4, 4, 3)])
def test_normals_to_rgb_shape_errors(shape):
    with pytest.raises(ValueError, match="normals: expected shape"):
        normals_to_rgb(np.zeros(shape))


# ------------------------------------------------------------------------------------------------------------
# uncertainty_heatmap


def test_uncertainty_heatmap_shape_and_saturation():
    u = np.linspace(0.0, 1.0, 101, dtype=np.float32).reshape(1, 101)  # 95th percentile = 0.95
    out = uncertainty_heatmap(u)
    assert out.dtype == np.uint8 and out.shape == (1, 101, 3)
    assert out[0, 0].tolist() == _cmap_bytes("inferno", 0.0)
    top = _cmap_bytes("inferno", 1.0)
    for i in range(95, 101):  # everything at or above the 95th percentile is saturated
        assert out[0, i].tolist() == top
    assert out[0, 90].tolist() != top
    assert out[0, 50].tolist() == _cmap_bytes("inferno", float(np.float32(0.5) / np.float32(0.95)))


def test_uncertainty_heatmap_percentile_parameter():
    u = np.array([[0.0, 1.0, 2.0, 4.0]], dtype=np.float32)
    out = uncertainty_heatmap(u, saturation_percentile=100)  # max saturates
    assert out[0, 3].tolist() == _cmap_bytes("inferno", 1.0)
    assert out[0, 2].tolist() == _cmap_bytes("inferno", 0.5)
    assert out[0, 0].tolist() == _cmap_bytes("inferno", 0.0)


def test_uncertainty_heatmap_constant_zero():
    out = uncertainty_heatmap(np.zeros((3, 4)))
    assert out.shape == (3, 4, 3)
    assert np.all(out == np.array(_cmap_bytes("inferno", 0.0), dtype=np.uint8))


def test_uncertainty_heatmap_three_channels_averaged():
    u3 = np.random.default_rng(2).random((5, 6, 3)).astype(np.float32)
    out = uncertainty_heatmap(u3)
    assert out.shape == (5, 6, 3)
    np.testing.assert_array_equal(out, uncertainty_heatmap(u3.mean(axis=2)))


@pytest.mark.parametrize("shape", [(5,), (2, 2, 2, 2)])
def test_uncertainty_heatmap_shape_errors(shape):
    with pytest.raises(ValueError, match="uncertainty: expected shape"):
        uncertainty_heatmap(np.zeros(shape))


# ------------------------------------------------------------------------------------------------------------
# intrinsic_to_rgb


VALUES = np.array([[[0.0, 0.25, 0.5], [0.75, 1.0, 0.1]]], dtype=np.float32)


def _hand(values) -> list:
    return [[[int(v * 255) for v in px] for px in row] for row in values]


@pytest.mark.parametrize(
    "props", [None, {}, {"prediction_space": "srgb"}, {"prediction_space": "srgb", "up_to_scale": False}]
)
def test_intrinsic_srgb_passthrough(props):
    out = intrinsic_to_rgb(VALUES, props)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3)
    assert out.tolist() == [[[0, 63, 127], [191, 255, 25]]]


def test_intrinsic_linear_gamma():
    out = intrinsic_to_rgb(VALUES, {"prediction_space": "linear", "up_to_scale": False})
    expected = _hand(VALUES.astype(np.float64) ** (1 / 2.2))
    assert out.tolist() == expected
    assert out[0, 0, 2] == 186  # 0.5 ** (1 / 2.2) = 0.7297 -> 186


def test_intrinsic_linear_up_to_scale_divides_by_max():
    x = VALUES * 0.4  # max 0.4
    out = intrinsic_to_rgb(x, {"prediction_space": "linear", "up_to_scale": True})
    expected = _hand((x.astype(np.float64) / 0.4) ** (1 / 2.2))
    assert np.abs(out.astype(int) - np.array(expected)).max() <= 1  # float32 vs float64 rounding
    assert out[0, 1, 1] == 255  # the maximum becomes white
    assert out[0, 0, 2] == 186  # 0.2 / 0.4 = 0.5 -> gamma -> 186


def test_intrinsic_up_to_scale_large_values():
    x = np.full((2, 2, 3), 8.0, dtype=np.float32)
    x[0, 0] = 2.0
    out = intrinsic_to_rgb(x, {"prediction_space": "linear", "up_to_scale": True})
    assert out[1, 1].tolist() == [255, 255, 255]
    assert out[0, 0].tolist() == [int(0.25 ** (1 / 2.2) * 255)] * 3


def test_intrinsic_clipping():
    x = np.array([[[-0.5, 1.5, 0.5]]], dtype=np.float32)
    assert intrinsic_to_rgb(x).tolist() == [[[0, 255, 127]]]
    assert intrinsic_to_rgb(x, {"prediction_space": "linear"}).tolist() == [[[0, 255, 186]]]


def test_intrinsic_all_zero_up_to_scale_is_black():
    out = intrinsic_to_rgb(np.zeros((2, 2, 3)), {"prediction_space": "linear", "up_to_scale": True})
    assert np.all(out == 0)


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 1), (4, 4, 4)])
def test_intrinsic_shape_errors(shape):
    with pytest.raises(ValueError, match="intrinsic target: expected shape"):
        intrinsic_to_rgb(np.zeros(shape))


# ------------------------------------------------------------------------------------------------------------
# side_by_side


def test_side_by_side():
    a = np.full((4, 2, 3), 10, dtype=np.uint8)
    b = np.full((4, 3, 4), 20, dtype=np.uint8)  # alpha dropped
    c = np.full((4, 1, 3), 30, dtype=np.uint8)
    out = side_by_side(a, b, c)
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [10, 10, 20, 20, 20, 30]
    np.testing.assert_array_equal(side_by_side(a), a)


def test_side_by_side_of_visualisations():
    depth = np.random.default_rng(3).random((6, 8)).astype(np.float32)
    normals = np.zeros((6, 8, 3), np.float32)
    normals[..., 2] = 1
    out = side_by_side(colorize_depth(depth), normals_to_rgb(normals))
    assert out.shape == (6, 16, 3)
    np.testing.assert_array_equal(out[:, :8], colorize_depth(depth))
    assert np.all(out[:, 8:] == (127, 127, 255))


def test_side_by_side_height_mismatch():
    with pytest.raises(ValueError, match="same height"):
        side_by_side(np.zeros((4, 2, 3), np.uint8), np.zeros((5, 2, 3), np.uint8))

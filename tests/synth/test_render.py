"""Ground-truth conventions of the Mitsuba renderer on analytic scenes (planar depth, camera-frame normals,
albedo, material), plus determinism of procedural scenes."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("mitsuba")

from marigold_toolkit.synth import generate_scene, render_scene, sample_seed  # noqa: E402
from marigold_toolkit.synth.render import camera_rays, intrinsics  # noqa: E402

RES = (24, 32)
COLOR = [0.2, 0.4, 0.6]


def _diffuse(color=COLOR):
    return {"type": "diffuse", "color": list(color), "roughness": 1.0, "metallic": 0.0}


def _scene(objects, camera, lights=None):
    return {"family": "test", "seed": 3, "camera": {"up": [0.0, 1.0, 0.0], "fov_x_deg": 60.0, **camera},
            "objects": objects, "lights": lights or [{"type": "constant", "radiance": [1.0, 1.0, 1.0]}]}


def _plane(center, rotation, half=(50.0, 50.0), material=None):
    return {"name": "plane", "shape": "rectangle", "center": list(center), "half_size": list(half),
            "rotation": rotation, "material": material or _diffuse()}


@pytest.fixture(scope="module")
def facing():
    d = 3.0
    scene = _scene([_plane([0.0, 0.0, -d], [])], {"origin": [0.0, 0.0, 0.0], "target": [0.0, 0.0, -1.0]})
    return d, render_scene(scene, RES, spp=4)


def test_fronto_parallel_plane_planar_depth(facing):
    d, out = facing
    assert out["mask"].all()
    np.testing.assert_allclose(out["depth"], d, rtol=0.01)
    # Mitsuba's depth AOV is the RAY distance (longer off-axis), which is why it is converted
    K = out["intrinsics"]
    expected_ray = d * np.linalg.norm(camera_rays(K), axis=-1)
    np.testing.assert_allclose(out["depth_ray"], expected_ray, rtol=0.01)
    assert out["depth_ray"][0, 0] > 1.2 * d


def test_fronto_parallel_plane_normals_albedo_material(facing):
    _, out = facing
    np.testing.assert_allclose(out["normals"], np.broadcast_to([0.0, 0.0, 1.0], out["normals"].shape), atol=1e-4)
    np.testing.assert_allclose(out["albedo_linear"], np.broadcast_to(COLOR, out["albedo_linear"].shape), atol=1e-3)
    np.testing.assert_allclose(out["material"], np.broadcast_to([1.0, 0.0, 0.0], out["material"].shape), atol=1e-4)
    srgb = out["albedo_srgb"][0, 0]
    np.testing.assert_allclose(srgb, [0.4845, 0.6651, 0.7977], atol=2e-3)
    # shading = rgb / albedo, grey for a grey environment
    s = out["shading"][out["mask"]]
    assert np.all(s > 0)
    np.testing.assert_allclose(s.mean(0) / s.mean(), 1.0, atol=0.05)
    assert out["rgb"].dtype == np.uint8 and out["rgb"].shape == (*RES, 3)


def test_plane_turned_right_has_positive_x_normal():
    # rotated +30 deg about world Y: normal (sin 30, 0, cos 30) points to the image right and to the camera
    scene = _scene([_plane([0.0, 0.0, -3.0], [[[0, 1, 0], 30.0]])],
                   {"origin": [0.0, 0.0, 0.0], "target": [0.0, 0.0, -1.0]})
    out = render_scene(scene, RES, spp=2)
    assert out["mask"].all()
    np.testing.assert_allclose(out["normals"][out["mask"]].mean(0), [0.5, 0.0, math.sqrt(3) / 2], atol=1e-3)


def test_floor_seen_from_above_front():
    h, dist = 1.5, 3.0
    floor = _plane([0.0, 0.0, 0.0], [[[1, 0, 0], -90.0]], half=(5.0, 5.0))  # far edge 5 m away
    scene = _scene([floor], {"origin": [0.0, h, 0.0], "target": [0.0, 0.0, -dist]})
    out = render_scene(scene, RES, spp=2)
    tilt = math.atan2(h, dist)
    n = out["normals"][out["mask"]]
    assert len(n) > 0.3 * out["mask"].size
    np.testing.assert_allclose(n, np.broadcast_to([0.0, math.cos(tilt), math.sin(tilt)], n.shape), atol=1e-3)
    # every floor pixel's planar depth matches the ray/plane intersection
    K = out["intrinsics"]
    R = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(tilt), math.sin(tilt)], [0.0, -math.sin(tilt), math.cos(tilt)]])
    rays_world = camera_rays(K) @ R  # camera -> world (R rows: camera axes in world coordinates)
    t = np.where(rays_world[..., 1] < 0, h / np.maximum(-rays_world[..., 1], 1e-9), 0.0)  # z_cam = -1 => depth t
    full = out["mask"] & (t > 0) & (t < 20)
    np.testing.assert_allclose(out["depth"][full], t[full], rtol=0.01)
    # beyond the floor's far edge is environment: invalid
    assert not out["mask"][0].any() and (out["depth"][0] == 0).all() and (out["normals"][0] == 0).all()


def test_intrinsics_values():
    K = intrinsics(90.0, 24, 32)
    assert K["fx"] == pytest.approx(16.0) and K["fy"] == pytest.approx(16.0)
    assert (K["cx"], K["cy"], K["width"], K["height"]) == (15.5, 11.5, 32, 24)


def test_procedural_scene_determinism():
    a = render_scene(generate_scene(sample_seed(0, 0)), RES, spp=2)
    b = render_scene(generate_scene(sample_seed(0, 0)), RES, spp=2)
    c = render_scene(generate_scene(sample_seed(0, 1)), RES, spp=2)
    for k in ("rgb", "depth", "normals", "albedo_linear", "material", "mask"):
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["rgb"], c["rgb"])
    assert generate_scene(5) == generate_scene(5) and generate_scene(5) != generate_scene(6)


@pytest.mark.parametrize("family", ["room", "tabletop", "outdoor"])
def test_families_render_sane(family):
    scene = generate_scene(11, [family])
    assert scene["family"] == family
    assert 40.0 <= scene["camera"]["fov_x_deg"] <= 90.0
    assert 1 <= len(scene["lights"]) <= 2
    out = render_scene(scene, RES, spp=2)
    m = out["mask"]
    assert m.mean() > 0.3
    if family == "room":
        assert m.mean() > 0.99  # closed room: no background
    if family == "outdoor":
        assert out["depth"][m].max() > 5.0  # metres: a ground running into the distance
    assert (out["depth"][m] > 0).all() and (out["depth"][~m] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(out["normals"][m], axis=-1), 1.0, atol=1e-4)
    assert ((out["material"] >= 0) & (out["material"] <= 1)).all()


def test_unknown_family():
    with pytest.raises(ValueError, match="unknown scene families"):
        generate_scene(0, ["underwater"])

"""The scene generators: new mesh shapes (analytic volumes, outward faces), rolled cameras (analytic normals
after rendering), the geometry / image render modes, and the held-out generator's separation from training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marigold_toolkit.synth.meshes import capsule_mesh, cone_mesh, torus_mesh
from marigold_toolkit.synth.scene import (
    HELDOUT, HELDOUT_FAMILIES, HELDOUT_SHAPES, SCENE_BUILDERS, SCENE_FAMILIES, SHAPES, _camera, generate_scene,
)

RES = (24, 32)


def _signed_volume(v, f) -> float:
    a, b, c = (v[f[:, k]].astype(np.float64) for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


@pytest.mark.parametrize("mesh, volume, welded", [
    (torus_mesh([1, 2, 3], 1.0, 0.25, yaw_deg=30, tilt_deg=90, segments=96, rings=32), 2 * math.pi**2 * 0.25**2,
     True),
    # the cone's side and base have their own rim vertices (a sharp edge), so its edges are not shared
    (cone_mesh([0, 0, 0], 1.0, 2.0, segments=192), math.pi * 2.0 / 3.0, False),
    (capsule_mesh([0, 1, 0], 0.5, 1.0, tilt_deg=90, subdivisions=4), math.pi * 0.25 * 2.0 + 4 / 3 * math.pi * 0.125,
     True),
])
def test_meshes_are_closed_outward_and_have_the_analytic_volume(mesh, volume, welded):
    v, f, uv = mesh
    # positive signed volume <=> faces counter-clockwise seen from outside (normals point out)
    np.testing.assert_allclose(_signed_volume(v, f), volume, rtol=0.01)
    if welded:  # closed: every edge is shared by exactly two faces, in opposite directions
        edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        fwd = {tuple(e) for e in edges.tolist()}
        assert len(fwd) == len(edges) and all((b, a) in fwd for a, b in fwd)
    assert uv.shape == (len(v), 2) and np.isfinite(uv).all()


def test_mesh_poses():
    v, _, _ = capsule_mesh([0, 0, 0], 0.5, 1.0, tilt_deg=90, yaw_deg=90)    # lying along X
    np.testing.assert_allclose(v.min(0), [-1.5, -0.5, -0.5], atol=1e-5)
    np.testing.assert_allclose(v.max(0), [1.5, 0.5, 0.5], atol=1e-5)
    v, _, _ = torus_mesh([0, 0, 0], 1.0, 0.2)                              # flat ring in XZ
    np.testing.assert_allclose(v.max(0), [1.2, 0.2, 1.2], atol=1e-3)
    r = np.hypot(v[:, 0], v[:, 2])
    assert r.min() >= 0.8 - 1e-5 and r.max() <= 1.2 + 1e-5
    v, _, _ = cone_mesh([1, 0, 0], 0.5, 2.0)
    np.testing.assert_allclose(v[:, 1].max(), 2.0) and np.testing.assert_allclose(v[:, 1].min(), 0.0)


@pytest.mark.parametrize("roll", [0.0, 20.0, -35.0])
def test_rolled_camera_up_vector(roll):
    cam = _camera([0, 1, 0], [0, 1, -1], 60.0, roll)
    up = np.asarray(cam["up"])
    np.testing.assert_allclose(np.linalg.norm(up), 1.0, atol=1e-6)
    np.testing.assert_allclose(up, [math.sin(math.radians(roll)), math.cos(math.radians(roll)), 0.0], atol=1e-6)


def test_training_and_heldout_generators_are_disjoint():
    assert not set(SCENE_FAMILIES) & set(HELDOUT_FAMILIES) and set(SCENE_BUILDERS) == {*SCENE_FAMILIES, *HELDOUT_FAMILIES}
    assert not set(SHAPES) & set(HELDOUT_SHAPES)
    for seed in range(60):
        train, held = generate_scene(seed), generate_scene(seed, HELDOUT_FAMILIES)
        assert train["family"] in SCENE_FAMILIES and held["family"] in HELDOUT_FAMILIES
        # held-out objects (not architecture) use only held-out shapes, training never uses them
        held_shapes = {o["shape"] for o in held["objects"] if o["name"].startswith("object_")}
        assert held_shapes <= set(HELDOUT_SHAPES)
        assert not {o["shape"] for o in train["objects"]} & set(HELDOUT_SHAPES)
        # fields of view: training 40-80 degrees, held-out outside it
        assert 40.0 <= train["camera"]["fov_x_deg"] <= 80.0
        fov = held["camera"]["fov_x_deg"]
        assert any(lo <= fov <= hi for lo, hi in HELDOUT["fov_deg"]) and not 40.0 < fov < 80.0


mitsuba = pytest.importorskip("mitsuba")

from marigold_toolkit.synth import render_dataset, render_scene  # noqa: E402
from marigold_toolkit.synth.writer import MAP_OUTPUTS, sample_complete  # noqa: E402


@pytest.mark.parametrize("roll", [0.0, 25.0])
def test_rolled_camera_sees_the_floor_normal_rolled(roll):
    """A camera 1 m over an infinite floor looking 10 degrees down, rolled by ``roll``: the floor's camera-frame
    normal is the world up seen from the rolled camera, (-sin r cos p, cos r cos p, sin p) for pitch p = 10."""
    floor = {"name": "floor", "shape": "rectangle", "center": [0, 0, 0], "half_size": [100, 100],
             "rotation": [[[1, 0, 0], -90.0]], "material": {"type": "diffuse", "color": [.5, .5, .5],
                                                           "roughness": 1.0, "metallic": 0.0}}
    p = math.radians(10.0)
    cam = _camera([0, 1, 0], [0, 1 - math.sin(p), -math.cos(p)], 60.0, roll)
    scene = {"family": "test", "seed": 0, "camera": cam, "objects": [floor],
             "lights": [{"type": "constant", "radiance": [1, 1, 1]}]}
    out = render_scene(scene, RES, spp=2, maps="geometry")
    r = math.radians(roll)
    expected = [-math.sin(r) * math.cos(p), math.cos(r) * math.cos(p), math.sin(p)]
    np.testing.assert_allclose(out["normals"][out["mask"]], np.broadcast_to(expected, (int(out["mask"].sum()), 3)),
                               atol=1e-3)
    # the horizon (the row where the floor ends) tilts with the roll: rows differ between left and right columns
    first_valid = out["mask"].argmax(0)
    assert (abs(int(first_valid[0]) - int(first_valid[-1])) > 3) == (roll != 0.0)


@pytest.mark.parametrize("family", list(SCENE_BUILDERS))
def test_every_family_renders_sane(family):
    scene = generate_scene(5, [family])
    out = render_scene(scene, RES, spp=2, maps="geometry")
    m = out["mask"]
    assert m.mean() > 0.3 and (out["depth"][m] > 0).all() and (out["depth"][~m] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(out["normals"][m], axis=-1), 1.0, atol=1e-3)
    assert "albedo_linear" not in out and out["rgb"].shape == (*RES, 3)


def test_render_modes_agree_and_write_only_their_files(tmp_path):
    scene = generate_scene(3)
    full = render_scene(scene, RES, spp=2)
    geo = render_scene(scene, RES, spp=2, maps="geometry")
    img = render_scene(scene, RES, spp=2, maps="image")
    for k in ("rgb", "depth", "normals", "mask", "material"):
        np.testing.assert_array_equal(full[k], geo[k])
    # the image pass is the same path tracing without AOVs: the same radiance up to sampling noise
    assert set(img) == {"rgb", "rgb_linear", "intrinsics", "exposure"}
    assert np.abs(img["rgb"].astype(float) - full["rgb"]).mean() < 25
    with pytest.raises(ValueError, match="maps="):
        render_scene(scene, RES, spp=2, maps="albedo")
    for maps in ("geometry", "image"):
        root = tmp_path / maps
        assert render_dataset(root, 2, seed=1, resolution=RES, spp=2, progress=False, maps=maps) == 2
        folders = {p.name for p in root.iterdir()}
        assert folders == {name for name, _ in MAP_OUTPUTS[maps]}
        assert sample_complete(root, "000001", maps) and not sample_complete(root, "000001", "all")
        assert render_dataset(root, 2, seed=1, resolution=RES, spp=2, progress=False, maps=maps) == 0

"""Generated meshes (blob, terrain), the sun light and the intrinsic decomposition I = A * S + R."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marigold_toolkit.synth.meshes import blob_mesh, icosphere, terrain_mesh
from marigold_toolkit.synth.scene import terrain_height

RES = (24, 32)


def _diffuse(color=(0.5, 0.5, 0.5)):
    return {"type": "diffuse", "color": list(color), "roughness": 1.0, "metallic": 0.0}


def _scene(objects, lights, origin=(0.0, 0.0, 0.0), target=(0.0, 0.0, -1.0), fov=60.0):
    return {"family": "test", "seed": 1, "objects": objects, "lights": lights,
            "camera": {"origin": list(origin), "target": list(target), "up": [0.0, 1.0, 0.0], "fov_x_deg": fov}}


# ---- pure numpy geometry -------------------------------------------------------------------------------------
def test_icosphere_counts_and_unit_radius():
    v, f = icosphere(2)
    assert f.shape == (20 * 4**2, 3) and v.shape == (162, 3)  # V = 10 * 4**k + 2
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-12)
    # outward winding: every face normal points away from the centre
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert (np.einsum("ij,ij->i", n, v[f].mean(1)) > 0).all()


def test_blob_radius_follows_bumps():
    v, f, uv = blob_mesh([1.0, 2.0, 3.0], 0.5, [])
    np.testing.assert_allclose(np.linalg.norm(v - [1.0, 2.0, 3.0], axis=1), 0.5, atol=1e-6)
    v2, _, _ = blob_mesh([0.0, 0.0, 0.0], 1.0, [[0.0, 1.0, 0.0, 0.3, 2.0]])
    top = v2[np.argmax(v2[:, 1])]
    np.testing.assert_allclose(top, [0.0, 1.3, 0.0], atol=1e-6)  # 1 + 0.3 * (d . u) ** 2 at d = u
    assert np.linalg.norm(v2, axis=1).min() == pytest.approx(1.0, abs=1e-6)  # the lower half is untouched
    assert uv.min() >= 0 and uv.max() <= 1 and f.dtype == np.uint32


def test_terrain_heights_and_upward_faces():
    waves = [[0.3, -0.2, 0.5, 0.4], [0.1, 0.05, 1.0, 0.2]]
    v, f, uv = terrain_mesh([1.0, 0.5, -2.0], [10.0, 8.0], waves, resolution=17)
    assert v.shape == (17 * 17, 3) and f.shape == (2 * 16 * 16, 3)
    expected = 0.5 + terrain_height(waves, v[:, 0] - 1.0, v[:, 2] + 2.0)
    np.testing.assert_allclose(v[:, 1], expected, atol=1e-5)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert (n[:, 1] > 0).all()
    assert uv.min() == 0.0 and uv.max() == 1.0


# ---- rendered ------------------------------------------------------------------------------------------------
mitsuba = pytest.importorskip("mitsuba")
from marigold_toolkit.synth import generate_scene, render_scene  # noqa: E402


def test_blob_renders_like_the_sphere_it_approximates():
    sphere = {"name": "s", "shape": "sphere", "center": [0.0, 0.0, -3.0], "radius": 1.0, "material": _diffuse()}
    blob = {"name": "s", "shape": "blob", "center": [0.0, 0.0, -3.0], "radius": 1.0, "bumps": [],
            "material": _diffuse()}
    light = [{"type": "constant", "radiance": [1.0, 1.0, 1.0]}]
    a = render_scene(_scene([sphere], light), RES, spp=4)
    b = render_scene(_scene([blob], light), RES, spp=4)
    both = a["mask"] & b["mask"]
    assert both.sum() > 0.9 * a["mask"].sum()
    # a subdivision-3 icosphere is within ~0.3 % of the radius; shading normals are interpolated vertex normals
    np.testing.assert_allclose(b["depth"][both], a["depth"][both], rtol=0.01)
    cos = (a["normals"][both] * b["normals"][both]).sum(-1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).mean() < 3.0


def test_flat_terrain_is_a_floor_and_sun_irradiance_is_physical():
    """A flat terrain 1.5 m below a camera looking straight down; a sun from straight above with irradiance E
    on a Lambertian floor of albedo rho gives radiance rho * E / pi (no sky), shading E / pi, no residual."""
    rho, E = 0.6, 2.0
    floor = {"name": "g", "shape": "terrain", "center": [0.0, -1.5, 0.0], "half_size": [20.0, 20.0], "waves": [],
             "material": _diffuse([rho] * 3)}
    sun = [{"type": "sun", "direction": [0.0, -1.0, 0.0], "irradiance": [E, E, E]}]
    scene = _scene([floor], sun, target=(0.0, -1.0, 0.0))
    scene["camera"]["up"] = [0.0, 0.0, -1.0]
    out = render_scene(scene, RES, spp=4, exposure=1.0)
    assert out["mask"].all()
    np.testing.assert_allclose(out["depth"], 1.5, rtol=0.01)  # ray distance averaged over jittered samples
    np.testing.assert_allclose(out["normals"], np.broadcast_to([0.0, 0.0, 1.0], out["normals"].shape), atol=1e-3)
    np.testing.assert_allclose(out["rgb_linear"], rho * E / math.pi, rtol=1e-3)
    np.testing.assert_allclose(out["shading"], E / math.pi, rtol=1e-3)
    np.testing.assert_allclose(out["residual"], 0.0, atol=1e-6)


def _decomposition(material):
    ball = {"name": "b", "shape": "sphere", "center": [0.0, 0.0, -2.5], "radius": 0.8, "material": material}
    back = {"name": "w", "shape": "rectangle", "center": [0.0, 0.0, -4.0], "half_size": [10.0, 10.0],
            "rotation": [], "material": _diffuse([0.3, 0.5, 0.7])}
    lights = [{"type": "constant", "radiance": [0.5, 0.5, 0.5]},
              {"type": "point", "position": [1.0, 1.5, 0.0], "intensity": [4.0, 4.0, 4.0]}]
    return render_scene(_scene([ball, back], lights), RES, spp=8, exposure=1.0)


def test_all_diffuse_scene_has_zero_residual():
    out = _decomposition(_diffuse([0.8, 0.2, 0.2]))
    m = out["mask"]
    np.testing.assert_allclose(out["residual"][m], 0.0, atol=1e-6)  # I - A * (I_d / A), float rounding
    np.testing.assert_allclose(out["albedo_linear"] * out["shading"] + out["residual"], out["rgb_linear"],
                               atol=1e-6)


def test_conductor_and_plastic_put_light_in_the_residual():
    for mat in ({"type": "conductor", "color": [0.9, 0.9, 0.9], "roughness": 0.2, "metallic": 1.0},
                {"type": "plastic", "color": [0.2, 0.2, 0.8], "roughness": 0.1, "metallic": 0.0}):
        out = _decomposition(mat)
        m = out["mask"]
        ok = m & (out["albedo_linear"].min(-1) > 1e-3)
        recon = out["albedo_linear"] * out["shading"] + out["residual"]
        np.testing.assert_allclose(recon[ok], out["rgb_linear"][ok], atol=1e-5)
        centre = out["residual"][RES[0] // 2 - 3: RES[0] // 2 + 3, RES[1] // 2 - 3: RES[1] // 2 + 3]
        assert np.abs(centre).mean() > 1e-3, mat["type"]


def test_outdoor_scene_structure():
    scene = generate_scene(3, ["outdoor"])
    kinds = {o["shape"] for o in scene["objects"]}
    assert "terrain" in kinds and {l["type"] for l in scene["lights"]} == {"constant", "sun"}
    cam_y = scene["camera"]["origin"][1]
    ground = scene["objects"][0]
    assert 0.5 <= cam_y - terrain_height(ground["waves"], 0.0, 0.0) <= 3.0

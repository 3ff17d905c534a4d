"""Render a scene description (:mod:`~marigold_toolkit.synth.scene`) with Mitsuba 3 into RGB + ground truth.

Three passes per sample, all with a box pixel filter and the same sample count, so every map is the average over
the same pixel footprint:

1. ``aov`` integrator (``depth``, ``sh_normal``) around a ``path`` integrator: linear HDR RGB, ray distance and
   world-space shading normals;
2. ``aov`` (``albedo``) around a ``path`` integrator on a copy of the scene whose BSDFs are all ``diffuse``
   with the base colour (texture included), same lights: linear albedo (also for conductors, where Mitsuba's
   albedo AOV of the real BSDF is not a base colour) and the radiance of the all-diffuse scene ``I_d``;
3. ``aov`` (``albedo``) on a copy whose BSDFs are ``diffuse`` with reflectance ``(roughness, metallic, 1)``:
   the material maps, and coverage (fraction of the pixel's samples that hit a surface) in the third channel.

Mitsuba's ``depth`` AOV is the distance along the (unit) camera ray (tested); it is converted to planar depth
``z = distance / |((u - cx) / fx, (v - cy) / fy, 1)|``.

Intrinsic decomposition (the Marigold-IID-lighting model ``I = A * S + R``, all linear): ``A`` the albedo,
``S = I_d / A`` the diffuse shading (the light a white diffuse surface would reflect, inter-reflections of the
diffuse scene included) and ``R = I - A * S = I - I_d`` the residual (specular / non-diffuse light; signed:
a dark conductor lit like a bright diffuse surface has ``R < 0``). With every material diffuse, ``R`` is
0 up to float rounding (both passes trace the same paths).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np

from .meshes import blob_mesh, capsule_mesh, cone_mesh, terrain_mesh, torus_mesh

logger = logging.getLogger(__name__)

DEFAULT_VARIANT = "scalar_rgb"
COVERAGE_EPS = 1e-4
ALBEDO_EPS = 1e-4


def _mitsuba():
    """Import Mitsuba and select the variant (``MARIGOLD_SYNTH_VARIANT``, default ``scalar_rgb``)."""
    try:
        import mitsuba as mi
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the synthetic renderer needs Mitsuba 3: pip install 'marigold-toolkit[synth]'") from e
    variant = os.environ.get("MARIGOLD_SYNTH_VARIANT", DEFAULT_VARIANT)
    if mi.variant() != variant:
        mi.set_variant(variant)
    return mi


# ---- colour -------------------------------------------------------------------------------------------------
def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB transfer function on values clipped to [0, 1]."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(np.float32)


# ---- camera geometry ------------------------------------------------------------------------------------------
def intrinsics(fov_x_deg: float, height: int, width: int) -> dict[str, float]:
    """Pinhole intrinsics of Mitsuba's ``perspective`` sensor (``fov_axis="x"``), OpenCV pixel convention
    (pixel ``(u, v)`` = column, row; pixel centres at integer coordinates, so ``cx = W / 2 - 0.5``)."""
    fx = (width / 2.0) / math.tan(math.radians(fov_x_deg) / 2.0)
    return {"fx": fx, "fy": fx, "cx": width / 2.0 - 0.5, "cy": height / 2.0 - 0.5,
            "width": int(width), "height": int(height)}


def camera_rays(K: dict[str, float]) -> np.ndarray:
    """[H, W, 3] un-normalised ray directions in the Marigold camera frame (X right, Y up, Z towards the
    viewer), with Z = -1 (so the planar depth of a point at ray distance ``t`` is ``t / |ray|``)."""
    v, u = np.mgrid[0:K["height"], 0:K["width"]].astype(np.float64)
    x = (u - K["cx"]) / K["fx"]
    y = -(v - K["cy"]) / K["fy"]
    return np.stack([x, y, -np.ones_like(x)], axis=-1)


def camera_basis(camera: dict[str, Any]) -> np.ndarray:
    """3x3 matrix whose rows are the Marigold camera axes (right, up, backwards) in world coordinates, so that
    ``n_cam = R @ n_world``. Mitsuba's ``look_at`` builds local axes (left, up, forward); image right is -left."""
    origin, target, up = (np.asarray(camera[k], dtype=np.float64) for k in ("origin", "target", "up"))
    d = target - origin
    d /= np.linalg.norm(d)
    left = np.cross(up, d)
    left /= np.linalg.norm(left)
    new_up = np.cross(d, left)
    return np.stack([-left, new_up, -d])


def ray_distance_to_planar(distance: np.ndarray, K: dict[str, float]) -> np.ndarray:
    return (distance / np.linalg.norm(camera_rays(K), axis=-1)).astype(np.float32)


def world_normals_to_camera(normals: np.ndarray, camera: dict[str, Any], K: dict[str, float]) -> np.ndarray:
    """World-space normals [H, W, 3] -> unit camera-frame normals (Marigold convention), flipped to face the
    camera; zero vectors stay zero."""
    n = normals.astype(np.float64) @ camera_basis(camera).T
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 1e-8, n / np.maximum(norm, 1e-12), 0.0)
    facing_away = (n * camera_rays(K)).sum(-1, keepdims=True) > 0
    return np.where(facing_away, -n, n).astype(np.float32)


# ---- scene description -> Mitsuba dict -----------------------------------------------------------------------
def _rgb(v) -> dict[str, Any]:
    return {"type": "rgb", "value": [float(c) for c in v]}


def _colour_texture(mat: dict[str, Any]) -> dict[str, Any]:
    if "color2" not in mat:
        return _rgb(mat["color"])
    mi = _mitsuba()
    s = float(mat.get("checker_scale", 4.0))
    return {"type": "checkerboard", "color0": _rgb(mat["color"]), "color1": _rgb(mat["color2"]),
            "to_uv": mi.ScalarTransform4f().scale([s, s, 1.0])}


def _bsdf(mat: dict[str, Any], mode: str, flat: bool) -> dict[str, Any]:
    if mode == "albedo":
        bsdf: dict[str, Any] = {"type": "diffuse", "reflectance": _colour_texture(mat)}
    elif mode == "material":
        bsdf = {"type": "diffuse", "reflectance": _rgb([mat["roughness"], mat["metallic"], 1.0])}
    elif mat["type"] == "diffuse":
        bsdf = {"type": "diffuse", "reflectance": _colour_texture(mat)}
    elif mat["type"] == "plastic":
        bsdf = {"type": "roughplastic", "distribution": "ggx", "alpha": float(mat["roughness"]) ** 2,
                "diffuse_reflectance": _colour_texture(mat)}
    elif mat["type"] == "conductor":
        bsdf = {"type": "roughconductor", "distribution": "ggx", "material": "Al",
                "alpha": float(mat["roughness"]) ** 2, "specular_reflectance": _colour_texture(mat)}
    else:
        raise ValueError(f"unknown material type {mat['type']!r}")
    return {"type": "twosided", "bsdf": bsdf} if flat else bsdf


def _rect_transform(center, half_size, rotation):
    mi = _mitsuba()
    t = mi.ScalarTransform4f().translate([float(c) for c in center])
    for axis, angle in rotation:
        t = t @ mi.ScalarTransform4f().rotate([float(a) for a in axis], float(angle))
    return t @ mi.ScalarTransform4f().scale([float(half_size[0]), float(half_size[1]), 1.0])


def _shapes(obj: dict[str, Any], mode: str) -> dict[str, dict[str, Any]]:
    mi = _mitsuba()
    T = mi.ScalarTransform4f
    name, shape, mat = obj["name"], obj["shape"], obj["material"]
    if shape == "sphere":
        return {name: {"type": "sphere", "center": [float(c) for c in obj["center"]], "radius": float(obj["radius"]),
                       "bsdf": _bsdf(mat, mode, False)}}
    if shape == "cube":
        to_world = (T().translate([float(c) for c in obj["center"]]) @ T().rotate([0, 1, 0], float(obj["yaw_deg"]))
                    @ T().scale([float(h) for h in obj["half_size"]]))
        return {name: {"type": "cube", "to_world": to_world, "bsdf": _bsdf(mat, mode, False)}}
    if shape == "rectangle":
        return {name: {"type": "rectangle", "to_world": _rect_transform(obj["center"], obj["half_size"],
                                                                         obj["rotation"]),
                       "bsdf": _bsdf(mat, mode, True)}}
    if shape == "cylinder":
        p0, p1, r = np.asarray(obj["p0"], float), np.asarray(obj["p1"], float), float(obj["radius"])
        axis = (p1 - p0) / np.linalg.norm(p1 - p0)
        # disks face +Z; rotate +Z onto the axis (the cylinders here are vertical, but stay general)
        z = np.array([0.0, 0.0, 1.0])
        rot_axis = np.cross(z, axis)
        angle = math.degrees(math.atan2(np.linalg.norm(rot_axis), float(z @ axis)))
        rot = T().rotate((rot_axis if np.linalg.norm(rot_axis) > 1e-9 else [1.0, 0.0, 0.0]), angle)
        return {
            name: {"type": "cylinder", "p0": p0.tolist(), "p1": p1.tolist(), "radius": r,
                   "bsdf": _bsdf(mat, mode, True)},
            f"{name}_cap0": {"type": "disk", "to_world": T().translate(p0.tolist()) @ rot @ T().scale([r, r, 1.0]),
                             "bsdf": _bsdf(mat, mode, True)},
            f"{name}_cap1": {"type": "disk", "to_world": T().translate(p1.tolist()) @ rot @ T().scale([r, r, 1.0]),
                             "bsdf": _bsdf(mat, mode, True)},
        }
    if shape in MESH_SHAPES:
        v, f, uv = MESH_SHAPES[shape](obj)
        return {name: _mesh(name, v, f, uv, _bsdf(mat, mode, shape == "terrain"))}
    raise ValueError(f"unknown shape {shape!r}")


#: the generated-mesh shapes: description -> (vertices, faces, uv)
MESH_SHAPES = {
    "blob": lambda o: blob_mesh(o["center"], float(o["radius"]), o["bumps"]),
    "terrain": lambda o: terrain_mesh(o["center"], o["half_size"], o["waves"]),
    "torus": lambda o: torus_mesh(o["center"], float(o["major_radius"]), float(o["minor_radius"]),
                                  float(o.get("yaw_deg", 0.0)), float(o.get("tilt_deg", 0.0))),
    "cone": lambda o: cone_mesh(o["base_center"], float(o["radius"]), float(o["height"])),
    "capsule": lambda o: capsule_mesh(o["center"], float(o["radius"]), float(o["half_length"]),
                                      float(o.get("yaw_deg", 0.0)), float(o.get("tilt_deg", 0.0))),
}


def _mesh(name: str, vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, bsdf: dict[str, Any]):
    """An in-memory Mitsuba mesh with smooth (recomputed) vertex normals."""
    mi = _mitsuba()
    props = mi.Properties()
    props["bsdf"] = mi.load_dict(bsdf)
    mesh = mi.Mesh(name, len(vertices), len(faces), props=props, has_vertex_normals=True,
                   has_vertex_texcoords=True)
    params = mi.traverse(mesh)
    params["vertex_positions"] = type(params["vertex_positions"])(np.ascontiguousarray(vertices, np.float32).ravel())
    params["vertex_texcoords"] = type(params["vertex_texcoords"])(np.ascontiguousarray(uv, np.float32).ravel())
    params["faces"] = type(params["faces"])(np.ascontiguousarray(faces, np.uint32).ravel())
    params.update()
    mesh.recompute_vertex_normals()
    return mesh


#: the path tracer of the shaded and the all-diffuse passes: one setting, so that R = I - I_d compares like
#: with like (and is 0 where every material is diffuse)
PATH_TRACER = {"type": "path", "max_depth": 6}
LIGHT_MATERIAL = {"type": "diffuse", "color": [0.8, 0.8, 0.8], "roughness": 1.0, "metallic": 0.0}


def to_mitsuba_dict(scene: dict[str, Any], resolution: tuple[int, int], spp: int, mode: str = "shade",
                    seed: int = 0) -> dict[str, Any]:
    """Mitsuba scene dict. ``mode``: ``"shade"`` (real materials + lights, path tracing with depth / normal
    AOVs), ``"image"`` (the same path tracing, no AOVs), ``"albedo"`` (diffuse base colours, albedo AOV) or ``"material"`` (diffuse (roughness, metallic, 1),
    albedo AOV). ``"albedo"`` also path-traces the all-diffuse scene with the same lights (``I_d``)."""
    mi = _mitsuba()
    h, w = (int(x) for x in resolution)
    cam = scene["camera"]
    if mode == "shade":
        integrator = {"type": "aov", "aovs": "dd:depth,nn:sh_normal", "img": dict(PATH_TRACER)}
    elif mode == "image":
        integrator = dict(PATH_TRACER)
    elif mode == "albedo":
        integrator = {"type": "aov", "aovs": "aa:albedo", "img": dict(PATH_TRACER)}
    elif mode == "material":
        integrator = {"type": "aov", "aovs": "aa:albedo"}
    else:
        raise ValueError(f"unknown render mode {mode!r}")
    out: dict[str, Any] = {
        "type": "scene",
        "integrator": integrator,
        "sensor": {
            "type": "perspective", "fov": float(cam["fov_x_deg"]), "fov_axis": "x",
            "near_clip": 1e-3, "far_clip": 1e4,
            "to_world": mi.ScalarTransform4f().look_at(origin=[float(c) for c in cam["origin"]],
                                                       target=[float(c) for c in cam["target"]],
                                                       up=[float(c) for c in cam["up"]]),
            "film": {"type": "hdrfilm", "width": w, "height": h, "rfilter": {"type": "box"},
                     "pixel_format": "rgba"},
            "sampler": {"type": "independent", "sample_count": int(spp), "seed": int(seed)},
        },
    }
    for obj in scene["objects"]:
        out.update(_shapes(obj, mode))
    for i, light in enumerate(scene["lights"]):
        kind = light["type"]
        if kind == "area":
            shape = {"type": "rectangle",
                     "to_world": _rect_transform(light["center"], light["half_size"], light["rotation"]),
                     "bsdf": _bsdf(LIGHT_MATERIAL, mode, True)}
            if mode != "material":
                shape["emitter"] = {"type": "area", "radiance": _rgb(light["radiance"])}
            out[f"light_{i}"] = shape
        elif mode == "material":
            continue
        elif kind == "point":
            out[f"light_{i}"] = {"type": "point", "position": [float(c) for c in light["position"]],
                                 "intensity": _rgb(light["intensity"])}
        elif kind == "constant":
            out[f"light_{i}"] = {"type": "constant", "radiance": _rgb(light["radiance"])}
        elif kind == "sun":
            out[f"light_{i}"] = {"type": "directional", "direction": [float(c) for c in light["direction"]],
                                 "irradiance": _rgb(light["irradiance"])}
        else:
            raise ValueError(f"unknown light type {kind!r}")
    return out


def _render(scene_dict: dict[str, Any]) -> np.ndarray:
    mi = _mitsuba()
    s = mi.load_dict(scene_dict)
    return np.array(s.integrator().render(s, s.sensors()[0]), dtype=np.float32)


#: what :func:`render_scene` can render: every map (three passes), the geometry maps (RGB, depth, normals,
#: material and mask: no all-diffuse pass) or the image alone (one path-traced pass, no AOVs)
RENDER_MAPS = ("all", "geometry", "image")


def render_scene(scene: dict[str, Any], resolution: tuple[int, int] = (120, 160), spp: int = 16,
                 exposure: float | str = "auto", maps: str = "all") -> dict[str, Any]:
    """Render one scene description. Returns float32 maps ``[H, W(, C)]``:

    ``rgb`` (uint8 sRGB), ``rgb_linear`` (after exposure), ``depth`` (planar, metres, 0 = invalid),
    ``depth_ray`` (Mitsuba's ray distance), ``normals`` (unit, camera frame, 0 = invalid), ``albedo_linear``,
    ``albedo_srgb``, ``material`` (roughness, metallicity, 0), ``shading`` (diffuse shading ``I_d / A``
    after exposure, where albedo > 1e-4 and ``mask``, else 0), ``residual`` (``rgb_linear - A * shading``, signed,
    0 outside ``mask``), ``mask`` (bool: every sample of the pixel hit a surface), ``coverage``,
    plus ``intrinsics`` (dict) and ``exposure`` (float).

    ``exposure``: a linear scale applied to the HDR radiance, or ``"auto"`` (the 90th percentile of the
    luminance maps to 0.8, clamped to [1/16, 16]).

    ``maps`` (one of :data:`RENDER_MAPS`): ``"all"``; ``"geometry"`` leaves out the all-diffuse pass (no
    albedo, shading or residual; about half the time); ``"image"`` renders only ``rgb`` / ``rgb_linear`` (one
    pass without AOVs; for image-only pretraining data).
    """
    if maps not in RENDER_MAPS:
        raise ValueError(f"maps={maps!r}: expected one of {', '.join(RENDER_MAPS)}")
    h, w = (int(x) for x in resolution)
    seed = int(scene.get("seed", 0))
    K = intrinsics(float(scene["camera"]["fov_x_deg"]), h, w)
    shade = _render(to_mitsuba_dict(scene, (h, w), spp, "image" if maps == "image" else "shade", seed))
    if shade.shape[-1] != (4 if maps == "image" else 8):
        raise RuntimeError(f"unexpected Mitsuba channel count {shade.shape}")
    radiance = np.maximum(shade[..., :3], 0.0)
    if exposure == "auto":
        lum = radiance @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
        p90 = float(np.percentile(lum, 90)) if lum.size else 1.0
        exposure = float(np.clip(0.8 / max(p90, 1e-6), 1.0 / 16.0, 16.0))
    exposure = float(exposure)
    rgb_linear = (radiance * exposure).astype(np.float32)
    out: dict[str, Any] = {"rgb": np.round(linear_to_srgb(rgb_linear) * 255.0).astype(np.uint8),
                           "rgb_linear": rgb_linear, "intrinsics": K, "exposure": exposure}
    if maps == "image":
        return out

    material = _render(to_mitsuba_dict(scene, (h, w), spp, "material", seed))
    if material.shape[-1] != 3:
        raise RuntimeError(f"unexpected Mitsuba AOV channel count {material.shape}")
    coverage = np.clip(material[..., 2], 0.0, 1.0)
    mask = coverage >= 1.0 - COVERAGE_EPS
    depth_ray = np.where(mask, shade[..., 4], 0.0).astype(np.float32)
    normals = world_normals_to_camera(shade[..., 5:8], scene["camera"], K)
    mat = np.clip(material, 0.0, 1.0).astype(np.float32)
    # divide by coverage: the material pass is a plain average over all samples, misses included
    mat[..., :2] = np.where(coverage[..., None] > COVERAGE_EPS,
                            mat[..., :2] / np.maximum(coverage[..., None], COVERAGE_EPS), 0.0)
    mat[..., 2] = 0.0
    out.update(depth=np.where(mask, ray_distance_to_planar(depth_ray, K), 0.0).astype(np.float32),
               depth_ray=depth_ray, normals=np.where(mask[..., None], normals, 0.0).astype(np.float32),
               material=np.clip(mat, 0.0, 1.0), mask=mask, coverage=coverage.astype(np.float32))
    if maps == "geometry":
        return out

    albedo = _render(to_mitsuba_dict(scene, (h, w), spp, "albedo", seed))
    if albedo.shape[-1] != 7:
        raise RuntimeError(f"unexpected Mitsuba AOV channel count {albedo.shape}")
    diffuse_linear = (np.maximum(albedo[..., :3], 0.0) * exposure).astype(np.float32)
    albedo_linear = np.clip(albedo[..., 4:7], 0.0, 1.0).astype(np.float32)
    ok = (albedo_linear > ALBEDO_EPS) & mask[..., None]
    shading = np.where(ok, diffuse_linear / np.where(ok, albedo_linear, 1.0), 0.0).astype(np.float32)
    residual = np.where(mask[..., None], rgb_linear - albedo_linear * shading, 0.0).astype(np.float32)
    out.update(albedo_linear=albedo_linear, albedo_srgb=linear_to_srgb(albedo_linear), shading=shading,
               residual=residual)
    return out

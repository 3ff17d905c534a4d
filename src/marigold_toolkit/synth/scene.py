"""Procedural scene descriptions: plain, JSON-serialisable dicts drawn from a numpy ``Generator``.

Nothing here imports Mitsuba; :mod:`~marigold_toolkit.synth.render` turns a description into a Mitsuba scene.
World frame: Y up, metres. A description is a dict with

* ``family``: ``"room"``, ``"tabletop"`` or ``"outdoor"``;
* ``camera``: ``origin``, ``target``, ``up`` (world, metres), ``fov_x_deg`` (horizontal field of view);
* ``objects``: list of ``{"name", "shape", ...geometry..., "material"}`` where ``shape`` is ``sphere``
  (``center``, ``radius``), ``cube`` (``center``, ``half_size`` [3], ``yaw_deg``), ``cylinder`` (``p0``,
  ``p1``, ``radius``; capped with two disks) or ``rectangle`` (``center``, ``half_size`` [2], ``rotation``:
  a list of ``[axis, degrees]`` applied to the unit XY-plane rectangle, whose normal is +Z), ``blob`` (a
  generated mesh: an icosphere of ``radius`` around ``center`` displaced by ``bumps`` = ``[[dx, dy, dz,
  amplitude, sharpness], ...]``, see :mod:`~marigold_toolkit.synth.meshes`) or ``terrain`` (a generated
  height-field mesh over ``center`` +- ``half_size`` [2] with ``waves`` = ``[[kx, kz, phase, amplitude], ...]``);
* ``material``: ``type`` (``diffuse`` / ``plastic`` / ``conductor``), ``color`` (linear RGB base colour),
  optional ``color2`` + ``checker_scale`` (checkerboard texture), ``roughness`` (perceptual, Mitsuba
  ``alpha = roughness**2``; 1 for diffuse), ``metallic`` (1 for conductors, else 0);
* ``lights``: list of ``{"type": "area", "center", "half_size", "rotation", "radiance"}``,
  ``{"type": "point", "position", "intensity"}``, ``{"type": "constant", "radiance"}`` (uniform sky) or
  ``{"type": "sun", "direction", "irradiance"}`` (a directional light; ``direction`` is where the light travels).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SCENE_FAMILIES = ("room", "tabletop", "outdoor")
MATERIAL_TYPES = ("diffuse", "plastic", "conductor")
SHAPES = ("sphere", "cube", "cylinder", "blob")


def _f(x) -> Any:
    """numpy scalars/arrays -> plain Python floats/lists (JSON)."""
    return np.asarray(x, dtype=float).round(6).tolist()


def random_material(rng: np.random.Generator, texture_prob: float = 0.3) -> dict[str, Any]:
    kind = MATERIAL_TYPES[int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
    mat: dict[str, Any] = {"type": kind, "color": _f(rng.uniform(0.05, 0.95, 3))}
    if rng.random() < texture_prob:
        mat["color2"] = _f(rng.uniform(0.05, 0.95, 3))
        mat["checker_scale"] = float(rng.integers(2, 9))
    if kind == "diffuse":
        mat["roughness"], mat["metallic"] = 1.0, 0.0
    elif kind == "plastic":
        mat["roughness"], mat["metallic"] = round(float(rng.uniform(0.1, 0.8)), 6), 0.0
    else:
        mat["roughness"], mat["metallic"] = round(float(rng.uniform(0.1, 0.6)), 6), 1.0
    return mat


def diffuse_material(color, roughness: float = 1.0) -> dict[str, Any]:
    return {"type": "diffuse", "color": _f(color), "roughness": float(roughness), "metallic": 0.0}


def random_object(rng: np.random.Generator, name: str, xz, floor_y: float, size_range=(0.1, 0.4)) -> dict:
    """A random primitive resting on the plane ``y = floor_y`` at horizontal position ``xz``."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    s = float(rng.uniform(*size_range))
    x, z = float(xz[0]), float(xz[1])
    obj: dict[str, Any] = {"name": name, "shape": shape, "material": random_material(rng)}
    if shape == "sphere":
        obj.update(center=_f([x, floor_y + s, z]), radius=round(s, 6))
    elif shape == "cube":
        half = np.array([s, s * rng.uniform(0.5, 1.5), s * rng.uniform(0.5, 1.5)])
        obj.update(center=_f([x, floor_y + half[1], z]), half_size=_f(half), yaw_deg=round(float(rng.uniform(0, 90)), 6))
    elif shape == "cylinder":
        h = s * rng.uniform(1.0, 3.0)
        r = s * rng.uniform(0.4, 0.8)
        obj.update(p0=_f([x, floor_y, z]), p1=_f([x, floor_y + h, z]), radius=round(r, 6))
    else:
        obj.update(center=_f([x, floor_y + 0.8 * s, z]), radius=round(s, 6), bumps=random_bumps(rng))
    return obj


def random_bumps(rng: np.random.Generator, n_max: int = 6) -> list[list[float]]:
    """2..n_max smooth radial bumps/dents for a ``blob``: unit direction, relative amplitude, sharpness."""
    bumps = []
    for _ in range(int(rng.integers(2, n_max + 1))):
        d = rng.normal(size=3)
        d /= max(float(np.linalg.norm(d)), 1e-9)
        bumps.append(_f([*d, rng.uniform(-0.25, 0.35), rng.uniform(1.0, 6.0)]))
    return bumps


def terrain_height(waves, x, z):
    """Height of a ``terrain`` at world ``(x, z)`` relative to its centre (works on arrays)."""
    h = np.zeros(np.broadcast(np.asarray(x), np.asarray(z)).shape)
    for kx, kz, phase, amp in waves:
        h = h + amp * np.sin(kx * np.asarray(x) + kz * np.asarray(z) + phase)
    return h


def _place(rng: np.random.Generator, n: int, x_range, z_range) -> np.ndarray:
    return np.stack([rng.uniform(*x_range, n), rng.uniform(*z_range, n)], axis=1)


def _camera(origin, target, fov) -> dict[str, Any]:
    return {"origin": _f(origin), "target": _f(target), "up": [0.0, 1.0, 0.0], "fov_x_deg": round(float(fov), 6)}


def room_scene(rng: np.random.Generator) -> dict[str, Any]:
    """A closed box room (floor, ceiling, four walls) with 2-6 objects on the floor, lit by a ceiling area light
    and optionally a point light."""
    hx, hz = rng.uniform(1.5, 3.0), rng.uniform(1.5, 3.0)   # half extents
    height = rng.uniform(2.4, 3.2)
    wall = lambda: diffuse_material(rng.uniform(0.3, 0.9) * np.ones(3) * rng.uniform(0.8, 1.0, 3))  # noqa: E731
    objects: list[dict] = [
        {"name": "floor", "shape": "rectangle", "center": [0.0, 0.0, 0.0], "half_size": _f([hx, hz]),
         "rotation": [[[1, 0, 0], -90.0]], "material": random_material(rng, texture_prob=0.5)},
        {"name": "ceiling", "shape": "rectangle", "center": _f([0.0, height, 0.0]), "half_size": _f([hx, hz]),
         "rotation": [[[1, 0, 0], 90.0]], "material": wall()},
        {"name": "wall_back", "shape": "rectangle", "center": _f([0.0, height / 2, -hz]),
         "half_size": _f([hx, height / 2]), "rotation": [], "material": wall()},
        {"name": "wall_front", "shape": "rectangle", "center": _f([0.0, height / 2, hz]),
         "half_size": _f([hx, height / 2]), "rotation": [[[0, 1, 0], 180.0]], "material": wall()},
        {"name": "wall_left", "shape": "rectangle", "center": _f([-hx, height / 2, 0.0]),
         "half_size": _f([hz, height / 2]), "rotation": [[[0, 1, 0], 90.0]], "material": wall()},
        {"name": "wall_right", "shape": "rectangle", "center": _f([hx, height / 2, 0.0]),
         "half_size": _f([hz, height / 2]), "rotation": [[[0, 1, 0], -90.0]], "material": wall()},
    ]
    n = int(rng.integers(2, 7))
    for i, xz in enumerate(_place(rng, n, (-hx + 0.5, hx - 0.5), (-hz + 0.5, hz - 0.5))):
        objects.append(random_object(rng, f"object_{i}", xz, 0.0, (0.15, 0.45)))
    lights: list[dict] = [{
        "type": "area", "center": _f([rng.uniform(-0.5, 0.5) * hx, height - 0.01, rng.uniform(-0.5, 0.5) * hz]),
        "half_size": _f(rng.uniform(0.3, 0.7, 2)), "rotation": [[[1, 0, 0], 90.0]],
        "radiance": _f(rng.uniform(8.0, 20.0) * rng.uniform(0.8, 1.0, 3)),
    }]
    if rng.random() < 0.5:
        lights.append({"type": "point", "position": _f([rng.uniform(-0.7, 0.7) * hx, height * 0.8,
                                                        rng.uniform(-0.7, 0.7) * hz]),
                       "intensity": _f(rng.uniform(2.0, 8.0) * np.ones(3))})
    # camera near the front wall, looking towards the back with a downward tilt
    cam_h = rng.uniform(1.0, 2.0)
    origin = np.array([rng.uniform(-0.5, 0.5) * hx, cam_h, hz - rng.uniform(0.3, 0.8)])
    tilt = math.radians(rng.uniform(5.0, 35.0))
    yaw = math.radians(rng.uniform(-25.0, 25.0))
    direction = np.array([math.sin(yaw) * math.cos(tilt), -math.sin(tilt), -math.cos(yaw) * math.cos(tilt)])
    return {"family": "room", "camera": _camera(origin, origin + direction, rng.uniform(40.0, 80.0)),
            "objects": objects, "lights": lights}


def tabletop_scene(rng: np.random.Generator) -> dict[str, Any]:
    """A table top (finite rectangle, the rest is environment = invalid depth) with 3-8 clutter objects, lit by a
    constant environment plus an area or point light."""
    hx, hz = rng.uniform(0.6, 1.2), rng.uniform(0.4, 0.8)
    objects: list[dict] = [{"name": "table", "shape": "rectangle", "center": [0.0, 0.0, 0.0],
                            "half_size": _f([hx, hz]), "rotation": [[[1, 0, 0], -90.0]],
                            "material": random_material(rng, texture_prob=0.5)}]
    n = int(rng.integers(3, 9))
    for i, xz in enumerate(_place(rng, n, (-hx * 0.8, hx * 0.8), (-hz * 0.8, hz * 0.8))):
        objects.append(random_object(rng, f"object_{i}", xz, 0.0, (0.04, 0.15)))
    lights: list[dict] = [{"type": "constant", "radiance": _f(rng.uniform(0.3, 1.0) * rng.uniform(0.8, 1.0, 3))}]
    if rng.random() < 0.5:
        lights.append({"type": "area", "center": _f([rng.uniform(-1, 1), rng.uniform(1.5, 2.5), rng.uniform(-1, 1)]),
                       "half_size": _f(rng.uniform(0.2, 0.5, 2)), "rotation": [[[1, 0, 0], 90.0]],
                       "radiance": _f(rng.uniform(5.0, 15.0) * np.ones(3))})
    else:
        lights.append({"type": "point", "position": _f([rng.uniform(-1, 1), rng.uniform(1.0, 2.0), rng.uniform(-1, 1)]),
                       "intensity": _f(rng.uniform(1.0, 4.0) * np.ones(3))})
    dist = rng.uniform(0.8, 1.8)
    elev = math.radians(rng.uniform(20.0, 60.0))
    azim = math.radians(rng.uniform(-40.0, 40.0))
    origin = np.array([dist * math.cos(elev) * math.sin(azim), dist * math.sin(elev),
                       dist * math.cos(elev) * math.cos(azim)])
    target = np.array([rng.uniform(-0.15, 0.15), rng.uniform(0.0, 0.1), rng.uniform(-0.15, 0.15)])
    return {"family": "tabletop", "camera": _camera(origin, target, rng.uniform(40.0, 80.0)),
            "objects": objects, "lights": lights}


def outdoor_scene(rng: np.random.Generator) -> dict[str, Any]:
    """An outdoor-like ground: a large rolling height-field terrain (generated mesh) with rocks (blobs), posts,
    boxes and spheres scattered 2-25 m from the camera, under a uniform sky plus a sun; beyond the terrain is
    sky (invalid depth). Camera at eye height (1.2-2.5 m) looking slightly down."""
    half = float(rng.uniform(30.0, 50.0))
    waves = [_f([rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0, 2 * math.pi), rng.uniform(0.05, 0.5)])
             for _ in range(int(rng.integers(1, 4)))]
    ground = random_material(rng, texture_prob=0.7)
    if ground["type"] == "conductor":
        ground = diffuse_material(ground["color"])
    if "color2" in ground:
        ground["checker_scale"] = float(rng.integers(20, 80))
    objects: list[dict] = [{"name": "ground", "shape": "terrain", "center": [0.0, 0.0, 0.0],
                            "half_size": [half, half], "waves": waves, "material": ground}]
    cam_h = rng.uniform(1.2, 2.5)
    yaw = math.radians(rng.uniform(-180.0, 180.0))
    forward = np.array([math.sin(yaw), 0.0, -math.cos(yaw)])
    right = np.array([math.cos(yaw), 0.0, math.sin(yaw)])
    n = int(rng.integers(4, 12))
    for i in range(n):
        dist, lateral = rng.uniform(2.0, 25.0), rng.uniform(-0.6, 0.6)
        xz = (forward * dist + right * lateral * dist)[[0, 2]]
        y = float(terrain_height(waves, xz[0], xz[1]))
        size = (0.2, 1.5) if rng.random() < 0.7 else (1.0, 3.0)
        objects.append(random_object(rng, f"object_{i}", xz, y, size))
    elev = math.radians(rng.uniform(15.0, 70.0))
    azim = rng.uniform(0, 2 * math.pi)
    direction = -np.array([math.cos(elev) * math.cos(azim), math.sin(elev), math.cos(elev) * math.sin(azim)])
    sky = rng.uniform(0.3, 1.0) * np.array([rng.uniform(0.6, 0.9), rng.uniform(0.8, 0.95), 1.0])
    lights = [{"type": "constant", "radiance": _f(sky)},
              {"type": "sun", "direction": _f(direction),
               "irradiance": _f(rng.uniform(1.5, 5.0) * np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 1.0)]))}]
    origin = np.array([0.0, float(terrain_height(waves, 0.0, 0.0)) + cam_h, 0.0])
    tilt = math.radians(rng.uniform(0.0, 20.0))
    look = forward * math.cos(tilt) + np.array([0.0, -math.sin(tilt), 0.0])
    return {"family": "outdoor", "camera": _camera(origin, origin + look, rng.uniform(50.0, 90.0)),
            "objects": objects, "lights": lights}


SCENE_BUILDERS = {"room": room_scene, "tabletop": tabletop_scene, "outdoor": outdoor_scene}


def sample_seed(base_seed: int, index: int) -> int:
    """Deterministic per-sample seed (a 31-bit int) from the dataset seed and the sample index."""
    return int(np.random.SeedSequence([int(base_seed), int(index)]).generate_state(1, dtype=np.uint32)[0] >> 1)


def generate_scene(seed: int, families: tuple[str, ...] | list[str] = SCENE_FAMILIES) -> dict[str, Any]:
    """The scene description of one sample: the family is drawn uniformly from ``families``."""
    families = tuple(families)
    unknown = [f for f in families if f not in SCENE_BUILDERS]
    if not families or unknown:
        raise ValueError(f"unknown scene families {unknown!r}; known: {', '.join(SCENE_FAMILIES)}")
    rng = np.random.default_rng(int(seed))
    family = families[int(rng.integers(len(families)))]
    scene = SCENE_BUILDERS[family](rng)
    scene["seed"] = int(seed)
    return scene

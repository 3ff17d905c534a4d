"""Procedural scene descriptions: plain, JSON-serialisable dicts drawn from a numpy ``Generator``.

Nothing here imports Mitsuba; :mod:`~marigold_toolkit.synth.render` turns a description into a Mitsuba scene.
World frame: Y up, metres. A description is a dict with

* ``family``: one of :data:`SCENE_FAMILIES` (the training families: ``room`` — a furnished room —,
  ``tabletop``, ``outdoor``, ``closeup``) or :data:`HELDOUT_FAMILIES` (``corridor``, ``street``, ``desk``: the
  second held-out generator, see :data:`HELDOUT`);
* ``camera``: ``origin``, ``target``, ``up`` (world, metres; ``up`` is tilted about the view axis for a rolled
  camera), ``fov_x_deg`` (horizontal field of view);
* ``objects``: list of ``{"name", "shape", ...geometry..., "material"}`` where ``shape`` is ``sphere``
  (``center``, ``radius``), ``cube`` (``center``, ``half_size`` [3], ``yaw_deg``), ``cylinder`` (``p0``,
  ``p1``, ``radius``; capped with two disks) or ``rectangle`` (``center``, ``half_size`` [2], ``rotation``:
  a list of ``[axis, degrees]`` applied to the unit XY-plane rectangle, whose normal is +Z), ``blob`` (a
  generated mesh: an icosphere of ``radius`` around ``center`` displaced by ``bumps`` = ``[[dx, dy, dz,
  amplitude, sharpness], ...]``, see :mod:`~marigold_toolkit.synth.meshes`), ``terrain`` (a generated
  height-field mesh over ``center`` +- ``half_size`` [2] with ``waves`` = ``[[kx, kz, phase, amplitude], ...]``),
  or the shapes only the held-out generator uses: ``torus`` (``center``, ``major_radius``, ``minor_radius``,
  ``yaw_deg``, ``tilt_deg``), ``cone`` (``base_center``, ``radius``, ``height``), ``capsule`` (``center``,
  ``radius``, ``half_length``, ``yaw_deg``, ``tilt_deg``);
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

MATERIAL_TYPES = ("diffuse", "plastic", "conductor")
#: the object shapes of the training families; the held-out families use only :data:`HELDOUT_SHAPES`
SHAPES = ("sphere", "cube", "cylinder", "blob")
HELDOUT_SHAPES = ("torus", "cone", "capsule")


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


def random_object(rng: np.random.Generator, name: str, xz, floor_y: float, size_range=(0.1, 0.4),
                  shapes: tuple[str, ...] = SHAPES) -> dict:
    """A random object of one of ``shapes`` resting on the plane ``y = floor_y`` at horizontal position ``xz``;
    ``size_range`` bounds its characteristic size (radius / half width) in metres."""
    shape = shapes[int(rng.integers(len(shapes)))]
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
    elif shape == "blob":
        obj.update(center=_f([x, floor_y + 0.8 * s, z]), radius=round(s, 6), bumps=random_bumps(rng))
    elif shape == "torus":
        minor = s * rng.uniform(0.2, 0.45)
        standing = rng.random() < 0.4
        obj.update(center=_f([x, floor_y + (s + minor if standing else minor), z]), major_radius=round(s, 6),
                   minor_radius=round(float(minor), 6), yaw_deg=round(float(rng.uniform(0, 180)), 6),
                   tilt_deg=90.0 if standing else 0.0)
    elif shape == "cone":
        obj.update(base_center=_f([x, floor_y, z]), radius=round(s, 6),
                   height=round(float(s * rng.uniform(1.0, 3.0)), 6))
    elif shape == "capsule":
        r = s * rng.uniform(0.35, 0.6)
        half = s * rng.uniform(0.4, 1.5)
        lying = rng.random() < 0.5
        obj.update(center=_f([x, floor_y + (r if lying else r + half), z]), radius=round(float(r), 6),
                   half_length=round(float(half), 6), yaw_deg=round(float(rng.uniform(0, 180)), 6),
                   tilt_deg=90.0 if lying else 0.0)
    else:
        raise ValueError(f"unknown shape {shape!r}")
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


def _camera(origin, target, fov, roll_deg: float = 0.0) -> dict[str, Any]:
    """Camera dict looking from ``origin`` at ``target``; ``roll_deg`` turns the image counter-clockwise about
    the view axis (``up`` is world +Y made orthogonal to the view direction, then rolled)."""
    origin, target = np.asarray(origin, float), np.asarray(target, float)
    d = (target - origin) / np.linalg.norm(target - origin)
    up = np.array([0.0, 1.0, 0.0]) - d[1] * d
    up /= np.linalg.norm(up)
    roll = math.radians(float(roll_deg))
    up = up * math.cos(roll) + np.cross(d, up) * math.sin(roll)
    up = up if roll_deg else np.array([0.0, 1.0, 0.0])   # an unrolled camera keeps the plain world up
    return {"origin": _f(origin), "target": _f(target), "up": _f(up), "fov_x_deg": round(float(fov), 6)}


def _view(origin, yaw_deg: float, pitch_deg: float, fov: float, roll_deg: float = 0.0) -> dict[str, Any]:
    """Camera at ``origin`` looking along heading ``yaw_deg`` (0 = -Z, 90 = +X) tilted up by ``pitch_deg``."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    d = np.array([math.sin(y) * math.cos(p), math.sin(p), -math.cos(y) * math.cos(p)])
    return _camera(origin, np.asarray(origin, float) + d, fov, roll_deg)


def _roll(rng: np.random.Generator, max_deg: float, p: float = 0.5) -> float:
    """Camera roll: 0 with probability ``1 - p``, else uniform in +- ``max_deg``."""
    return round(float(rng.uniform(-max_deg, max_deg)), 6) if rng.random() < p else 0.0


def _wall_material(rng: np.random.Generator) -> dict[str, Any]:
    if rng.random() < 0.25:
        return random_material(rng, texture_prob=0.6)
    return diffuse_material(rng.uniform(0.3, 0.9) * np.ones(3) * rng.uniform(0.75, 1.0, 3))


def _rect(name, center, half_size, rotation, material) -> dict[str, Any]:
    return {"name": name, "shape": "rectangle", "center": _f(center), "half_size": _f(half_size),
            "rotation": rotation, "material": material}


def _box(name, center, half_size, yaw_deg, material) -> dict[str, Any]:
    return {"name": name, "shape": "cube", "center": _f(center), "half_size": _f(half_size),
            "yaw_deg": round(float(yaw_deg), 6), "material": material}


def _box_room(rng: np.random.Generator, hx: float, hz: float, height: float, length_z: float | None = None):
    """Floor, ceiling and four walls of a closed room ``[-hx, hx] x [0, height] x [-hz, hz]`` (rectangles
    facing inwards; ``length_z`` moves the back wall to ``-length_z`` instead of ``-hz``)."""
    back = -(length_z if length_z is not None else hz)
    cz, dz = (hz + back) / 2, (hz - back) / 2
    return [
        _rect("floor", [0, 0, cz], [hx, dz], [[[1, 0, 0], -90.0]], random_material(rng, texture_prob=0.5)),
        _rect("ceiling", [0, height, cz], [hx, dz], [[[1, 0, 0], 90.0]], _wall_material(rng)),
        _rect("wall_back", [0, height / 2, back], [hx, height / 2], [], _wall_material(rng)),
        _rect("wall_front", [0, height / 2, hz], [hx, height / 2], [[[0, 1, 0], 180.0]], _wall_material(rng)),
        _rect("wall_left", [-hx, height / 2, cz], [dz, height / 2], [[[0, 1, 0], 90.0]], _wall_material(rng)),
        _rect("wall_right", [hx, height / 2, cz], [dz, height / 2], [[[0, 1, 0], -90.0]], _wall_material(rng)),
    ]


def _table(rng: np.random.Generator, name: str, x: float, z: float, yaw: float, top_y: float, hx: float,
           hz: float) -> list[dict]:
    """A table: a box top at height ``top_y`` and four cylinder legs."""
    mat = random_material(rng, texture_prob=0.3)
    th = 0.025
    out = [_box(f"{name}_top", [x, top_y - th, z], [hx, th, hz], yaw, mat)]
    c, s_ = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    for k, (ux, uz) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
        lx, lz = ux * (hx - 0.05), uz * (hz - 0.05)
        px, pz = x + c * lx + s_ * lz, z - s_ * lx + c * lz
        out.append({"name": f"{name}_leg{k}", "shape": "cylinder", "p0": _f([px, 0.0, pz]),
                    "p1": _f([px, top_y - 2 * th, pz]), "radius": 0.025, "material": mat})
    return out


def _room_lights(rng: np.random.Generator, hx: float, hz: float, height: float, z_range=None) -> list[dict]:
    z0, z1 = z_range if z_range is not None else (-hz, hz)
    lights: list[dict] = [{
        "type": "area", "center": _f([rng.uniform(-0.5, 0.5) * hx, height - 0.01, rng.uniform(z0, z1) * 0.5]),
        "half_size": _f(rng.uniform(0.3, 0.7, 2)), "rotation": [[[1, 0, 0], 90.0]],
        "radiance": _f(rng.uniform(6.0, 20.0) * rng.uniform(0.75, 1.0, 3)),
    }]
    if rng.random() < 0.5:
        lights.append({"type": "point", "position": _f([rng.uniform(-0.7, 0.7) * hx, height * rng.uniform(0.5, 0.9),
                                                        rng.uniform(z0, z1) * 0.7]),
                       "intensity": _f(rng.uniform(2.0, 8.0) * rng.uniform(0.7, 1.0, 3))})
    return lights


def room_scene(rng: np.random.Generator) -> dict[str, Any]:
    """A closed, furnished room: floor, ceiling, four walls; 0-2 tables (with clutter on top), 0-2 cabinets or
    shelves against the walls, 0-1 sofa-like low box, 1-5 objects of many sizes on the floor. Lit by a ceiling
    area light and optionally a point light. The camera stands anywhere inside, at 0.6-2 m, heading into the room (+-70 degrees),
    pitched -55..+20 degrees (looking down at the floor and tables, or up at walls), sometimes rolled."""
    hx, hz = rng.uniform(1.5, 4.0), rng.uniform(1.5, 4.0)
    height = rng.uniform(2.4, 3.2)
    objects = _box_room(rng, hx, hz, height)
    for i in range(int(rng.integers(0, 3))):
        thx, thz = rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.5)
        x, z = rng.uniform(-hx + 0.9, hx - 0.9), rng.uniform(-hz + 0.9, hz - 0.9)
        top = rng.uniform(0.45, 0.8)
        objects += _table(rng, f"table{i}", x, z, rng.uniform(0, 90), top, thx, thz)
        for j, xz in enumerate(_place(rng, int(rng.integers(0, 4)), (x - thx * .6, x + thx * .6), (z - thz * .6, z + thz * .6))):
            objects.append(random_object(rng, f"table{i}_obj{j}", xz, top, (0.03, 0.12)))
    for i in range(int(rng.integers(0, 3))):   # cabinets / shelves against a wall
        side = int(rng.integers(4))
        w, d, h = rng.uniform(0.3, 1.0), rng.uniform(0.15, 0.35), rng.uniform(0.4, min(2.2, height - 0.1)) / 2
        along = rng.uniform(-0.6, 0.6)
        if side < 2:
            center, half = [along * hx, h, (hz - d) * (1 if side else -1)], [w, h, d]
        else:
            center, half = [(hx - d) * (1 if side == 3 else -1), h, along * hz], [d, h, w]
        objects.append(_box(f"cabinet{i}", center, half, 0.0, random_material(rng, texture_prob=0.3)))
    if rng.random() < 0.5:
        objects.append(_box("sofa", [rng.uniform(-0.5, 0.5) * hx, 0.22, rng.uniform(-0.5, 0.5) * hz],
                            [rng.uniform(0.4, 1.0), 0.22, rng.uniform(0.3, 0.5)], rng.uniform(0, 180),
                            random_material(rng, texture_prob=0.4)))
    for i, xz in enumerate(_place(rng, int(rng.integers(1, 6)), (-hx + 0.4, hx - 0.4), (-hz + 0.4, hz - 0.4))):
        objects.append(random_object(rng, f"object_{i}", xz, 0.0, (0.05, 0.5)))
    origin = np.array([rng.uniform(-0.8, 0.8) * (hx - 0.3), rng.uniform(0.6, 2.0), rng.uniform(-0.8, 0.8) * (hz - 0.3)])
    # heading: towards the far side of the room (away from the nearest walls), +-70 degrees
    away = math.degrees(math.atan2(-origin[0], origin[2])) if np.hypot(origin[0], origin[2]) > 0.2 \
        else rng.uniform(-180, 180)
    cam = _view(origin, away + rng.uniform(-70, 70), rng.uniform(-55.0, 20.0), rng.uniform(40.0, 80.0), _roll(rng, 12.0))
    return {"family": "room", "camera": cam, "objects": objects, "lights": _room_lights(rng, hx, hz, height)}


def tabletop_scene(rng: np.random.Generator) -> dict[str, Any]:
    """A table top (finite rectangle; beyond it environment = invalid depth, or, half of the time, a floor and a
    back wall) with 3-10 clutter objects of 3-20 cm, lit by a constant environment plus an area or point
    light; the camera 0.4-2.2 m away looking down at 15-85 degrees of elevation, sometimes rolled."""
    hx, hz = rng.uniform(0.5, 1.2), rng.uniform(0.35, 0.8)
    top = rng.uniform(0.6, 0.8)
    objects: list[dict] = [_rect("table", [0.0, top, 0.0], [hx, hz], [[[1, 0, 0], -90.0]],
                                 random_material(rng, texture_prob=0.5))]
    if rng.random() < 0.5:
        back = -hz - rng.uniform(0.1, 1.5)
        objects += [_rect("floor", [0, 0, back + 4], [4, 4], [[[1, 0, 0], -90.0]], random_material(rng, 0.5)),
                    _rect("wall", [0, 1.5, back], [4, 1.5], [], _wall_material(rng))]
    for i, xz in enumerate(_place(rng, int(rng.integers(3, 11)), (-hx * 0.85, hx * 0.85), (-hz * 0.85, hz * 0.85))):
        objects.append(random_object(rng, f"object_{i}", xz, top, (0.03, 0.2)))
    lights: list[dict] = [{"type": "constant", "radiance": _f(rng.uniform(0.3, 1.0) * rng.uniform(0.8, 1.0, 3))}]
    if rng.random() < 0.5:
        lights.append({"type": "area", "center": _f([rng.uniform(-1, 1), top + rng.uniform(1.0, 2.0), rng.uniform(-1, 1)]),
                       "half_size": _f(rng.uniform(0.2, 0.5, 2)), "rotation": [[[1, 0, 0], 90.0]],
                       "radiance": _f(rng.uniform(5.0, 15.0) * np.ones(3))})
    else:
        lights.append({"type": "point", "position": _f([rng.uniform(-1, 1), top + rng.uniform(0.5, 1.5), rng.uniform(-1, 1)]),
                       "intensity": _f(rng.uniform(1.0, 4.0) * np.ones(3))})
    dist = rng.uniform(0.4, 2.2)
    elev = math.radians(rng.uniform(15.0, 85.0))
    azim = math.radians(rng.uniform(-60.0, 60.0))
    origin = np.array([dist * math.cos(elev) * math.sin(azim), top + dist * math.sin(elev),
                       dist * math.cos(elev) * math.cos(azim)])
    target = np.array([rng.uniform(-0.3, 0.3) * hx, top + rng.uniform(0.0, 0.1), rng.uniform(-0.3, 0.3) * hz])
    return {"family": "tabletop", "camera": _camera(origin, target, rng.uniform(40.0, 80.0), _roll(rng, 12.0)),
            "objects": objects, "lights": lights}


def outdoor_scene(rng: np.random.Generator) -> dict[str, Any]:
    """An outdoor-like ground: a large rolling height-field terrain (generated mesh) with rocks (blobs), posts,
    boxes, spheres, trees (trunk + crown) and building-sized blocks scattered 1-40 m from the camera, under a
    uniform sky plus a sun; beyond the terrain is sky (invalid depth). Camera at 0.5-3 m above the ground,
    pitched -35..+10 degrees, sometimes slightly rolled."""
    half = float(rng.uniform(40.0, 60.0))
    waves = [_f([rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0, 2 * math.pi), rng.uniform(0.05, 0.5)])
             for _ in range(int(rng.integers(1, 4)))]
    ground = random_material(rng, texture_prob=0.7)
    if ground["type"] == "conductor":
        ground = diffuse_material(ground["color"])
    if "color2" in ground:
        ground["checker_scale"] = float(rng.integers(20, 80))
    objects: list[dict] = [{"name": "ground", "shape": "terrain", "center": [0.0, 0.0, 0.0],
                            "half_size": [half, half], "waves": waves, "material": ground}]
    cam_h = rng.uniform(0.5, 3.0)
    yaw_deg = rng.uniform(-180.0, 180.0)
    yaw = math.radians(yaw_deg)
    forward = np.array([math.sin(yaw), 0.0, -math.cos(yaw)])
    right = np.array([math.cos(yaw), 0.0, math.sin(yaw)])
    for i in range(int(rng.integers(4, 14))):
        dist, lateral = rng.uniform(1.0, 40.0), rng.uniform(-0.7, 0.7)
        xz = (forward * dist + right * lateral * dist)[[0, 2]]
        y = float(terrain_height(waves, xz[0], xz[1]))
        kind = rng.random()
        if kind < 0.15:   # a tree: trunk + crown
            h, r = rng.uniform(1.5, 5.0), rng.uniform(0.08, 0.3)
            crown = rng.uniform(0.6, 2.0)
            objects.append({"name": f"object_{i}", "shape": "cylinder", "p0": _f([xz[0], y, xz[1]]),
                            "p1": _f([xz[0], y + h, xz[1]]), "radius": round(float(r), 6),
                            "material": diffuse_material(rng.uniform(0.1, 0.4, 3))})
            objects.append({"name": f"object_{i}_crown", "shape": "blob", "center": _f([xz[0], y + h + crown * 0.6, xz[1]]),
                            "radius": round(float(crown), 6), "bumps": random_bumps(rng),
                            "material": diffuse_material(rng.uniform([0.05, 0.2, 0.02], [0.3, 0.6, 0.2]))})
        elif kind < 0.25 and dist > 8:   # a building-sized block
            hh = rng.uniform(2.0, 8.0)
            objects.append(_box(f"object_{i}", [xz[0], y + hh - 0.5, xz[1]], [rng.uniform(2, 6), hh, rng.uniform(2, 6)],
                                rng.uniform(0, 90), random_material(rng, texture_prob=0.5)))
        else:
            size = (0.1, 1.5) if rng.random() < 0.7 else (1.0, 3.0)
            objects.append(random_object(rng, f"object_{i}", xz, y, size))
    elev = math.radians(rng.uniform(15.0, 70.0))
    azim = rng.uniform(0, 2 * math.pi)
    direction = -np.array([math.cos(elev) * math.cos(azim), math.sin(elev), math.cos(elev) * math.sin(azim)])
    sky = rng.uniform(0.3, 1.0) * np.array([rng.uniform(0.6, 0.9), rng.uniform(0.8, 0.95), 1.0])
    lights = [{"type": "constant", "radiance": _f(sky)},
              {"type": "sun", "direction": _f(direction),
               "irradiance": _f(rng.uniform(1.5, 5.0) * np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 1.0)]))}]
    origin = np.array([0.0, float(terrain_height(waves, 0.0, 0.0)) + cam_h, 0.0])
    cam = _view(origin, yaw_deg, rng.uniform(-35.0, 10.0), rng.uniform(45.0, 80.0), _roll(rng, 8.0))
    return {"family": "outdoor", "camera": cam, "objects": objects, "lights": lights}


def closeup_scene(rng: np.random.Generator) -> dict[str, Any]:
    """A wall 0.6-4 m in front of the camera over a floor, with 2-7 objects standing between (many distances,
    sizes 5-50 cm, some stacked on boxes); the camera at 0.3-1.8 m pitched -35..+35 degrees (looking down at
    the objects or up at the wall), sometimes rolled. A room corner (a side wall) half of the time."""
    wall_d = rng.uniform(0.6, 4.0)
    objects: list[dict] = [
        _rect("floor", [0, 0, -wall_d + 3], [5, 3], [[[1, 0, 0], -90.0]], random_material(rng, texture_prob=0.5)),
        _rect("wall", [0, 2, -wall_d], [5, 2], [], _wall_material(rng)),
    ]
    if rng.random() < 0.5:
        sx = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.5)
        objects.append(_rect("side_wall", [sx, 2, -wall_d + 3], [3, 2], [[[0, 1, 0], 90.0 if sx < 0 else -90.0]],
                             _wall_material(rng)))
    for i in range(int(rng.integers(2, 8))):
        z = -rng.uniform(0.2, 0.95) * wall_d
        x = rng.uniform(-0.6, 0.6) * (-z + 0.5)
        floor = 0.0
        if rng.random() < 0.25:   # a box to stand on
            bh = rng.uniform(0.1, 0.4)
            objects.append(_box(f"stand_{i}", [x, bh, z], [rng.uniform(0.15, 0.3), bh, rng.uniform(0.15, 0.3)],
                                rng.uniform(0, 90), random_material(rng)))
            floor = 2 * bh
        objects.append(random_object(rng, f"object_{i}", (x, z), floor, (0.05, 0.5)))
    lights = _room_lights(rng, 2.0, wall_d / 2, 3.0, (-wall_d, 0.5))
    lights.append({"type": "constant", "radiance": _f(rng.uniform(0.05, 0.4) * np.ones(3))})
    origin = np.array([rng.uniform(-0.5, 0.5), rng.uniform(0.3, 1.8), rng.uniform(0.0, 0.8)])
    cam = _view(origin, rng.uniform(-30, 30), rng.uniform(-35.0, 35.0), rng.uniform(40.0, 80.0), _roll(rng, 12.0))
    return {"family": "closeup", "camera": cam, "objects": objects, "lights": lights}


# ---- the second held-out generator ----------------------------------------------------------------------------
#: The held-out evaluation generator of the demo models, fixed before any tuning (docs/demo-models.md): scene
#: families, object shapes and camera fields of view that no training family uses. Training families draw the
#: horizontal FOV from 40-80 degrees; these draw it from 30-40 or 80-95.
HELDOUT = {"families": ("corridor", "street", "desk"), "shapes": HELDOUT_SHAPES, "fov_deg": ((30.0, 40.0), (80.0, 95.0))}


def _heldout_fov(rng: np.random.Generator) -> float:
    lo, hi = HELDOUT["fov_deg"][int(rng.integers(2))]
    return float(rng.uniform(lo, hi))


def corridor_scene(rng: np.random.Generator) -> dict[str, Any]:
    """(held out) A long closed corridor (1.6-3.2 m wide, 2.4-3 m high, 8-25 m long) with doors (dark panels on
    the side walls), pillars, and 2-6 held-out-shape objects on the floor; 2-4 ceiling lights. The camera at
    1.3-1.8 m near one end looks along it (heading +-25 degrees, pitch -15..+10)."""
    hx, height, length = rng.uniform(0.8, 1.6), rng.uniform(2.4, 3.0), rng.uniform(8.0, 25.0)
    objects = _box_room(rng, hx, 1.0, height, length_z=length)
    door = diffuse_material(rng.uniform(0.05, 0.5, 3))
    for i, z in enumerate(np.arange(-1.5, -length + 1.0, -rng.uniform(2.0, 4.0))):
        side = 1.0 if (i + int(rng.integers(2))) % 2 else -1.0
        if rng.random() < 0.6:
            objects.append(_rect(f"door_{i}", [side * (hx - 0.01), 1.0, z], [0.45, 1.0],
                                 [[[0, 1, 0], -90.0 * side]], door))
        else:
            objects.append(_box(f"pillar_{i}", [side * (hx - 0.12), height / 2, z], [0.12, height / 2, 0.2], 0.0,
                                _wall_material(rng)))
    for i in range(int(rng.integers(2, 7))):
        xz = (rng.uniform(-0.6, 0.6) * hx, -rng.uniform(1.0, length - 0.5))
        objects.append(random_object(rng, f"object_{i}", xz, 0.0, (0.08, 0.4), HELDOUT["shapes"]))
    lights = [{"type": "area", "center": _f([0.0, height - 0.01, -z]), "half_size": _f([0.3, 0.5]),
               "rotation": [[[1, 0, 0], 90.0]], "radiance": _f(rng.uniform(8.0, 20.0) * rng.uniform(0.8, 1.0, 3))}
              for z in np.linspace(1.0, length - 1.0, int(rng.integers(2, 5)))]
    origin = np.array([rng.uniform(-0.5, 0.5) * hx, rng.uniform(1.3, 1.8), rng.uniform(0.0, 0.8)])
    cam = _view(origin, rng.uniform(-25, 25), rng.uniform(-15.0, 10.0), _heldout_fov(rng), _roll(rng, 5.0, 0.3))
    return {"family": "corridor", "camera": cam, "objects": objects, "lights": lights}


def street_scene(rng: np.random.Generator) -> dict[str, Any]:
    """(held out) A straight street: a flat textured ground, building blocks (4-15 m high) lining both sides of
    a 6-14 m wide road for 60-120 m, lamp posts, and held-out-shape objects on the road; sky + sun. The camera
    at 1.2-2 m in the road looks along it (heading +-20 degrees, pitch -10..+8)."""
    width, length = rng.uniform(3.0, 7.0), rng.uniform(60.0, 120.0)
    road = random_material(rng, texture_prob=0.6)
    road = diffuse_material(road["color"]) if road["type"] == "conductor" else road
    if "color2" in road:
        road["checker_scale"] = float(rng.integers(20, 80))
    objects: list[dict] = [_rect("ground", [0, 0, -length / 2 + 10], [length, length / 2 + 10], [[[1, 0, 0], -90.0]], road)]
    for side in (-1.0, 1.0):
        z = -rng.uniform(0.0, 5.0)
        k = 0
        while z > -length:
            w, d, h = rng.uniform(2.5, 8.0), rng.uniform(4.0, 10.0), rng.uniform(2.0, 7.5)
            setback = rng.uniform(0.0, 3.0)
            objects.append(_box(f"building_{int(side)}_{k}", [side * (width + setback + d), h, z - w], [d, h, w], 0.0,
                                random_material(rng, texture_prob=0.4)))
            z -= 2 * w + rng.uniform(0.0, 3.0)
            k += 1
    for i, z in enumerate(np.arange(-5.0, -length, -rng.uniform(10.0, 20.0))):
        x = rng.choice([-1.0, 1.0]) * (width - 0.5)
        objects.append({"name": f"post_{i}", "shape": "cylinder", "p0": _f([x, 0, z]), "p1": _f([x, rng.uniform(3, 6), z]),
                        "radius": 0.08, "material": diffuse_material(rng.uniform(0.1, 0.5, 3))})
    for i in range(int(rng.integers(3, 9))):
        xz = (rng.uniform(-0.8, 0.8) * width, -rng.uniform(2.0, 40.0))
        objects.append(random_object(rng, f"object_{i}", xz, 0.0, (0.2, 1.2), HELDOUT["shapes"]))
    elev, azim = math.radians(rng.uniform(20.0, 70.0)), rng.uniform(0, 2 * math.pi)
    direction = -np.array([math.cos(elev) * math.cos(azim), math.sin(elev), math.cos(elev) * math.sin(azim)])
    lights = [{"type": "constant", "radiance": _f(rng.uniform(0.3, 1.0) * np.array([0.75, 0.88, 1.0]))},
              {"type": "sun", "direction": _f(direction), "irradiance": _f(rng.uniform(1.5, 5.0) * np.ones(3))}]
    origin = np.array([rng.uniform(-0.5, 0.5) * width, rng.uniform(1.2, 2.0), 0.0])
    cam = _view(origin, rng.uniform(-20, 20), rng.uniform(-10.0, 8.0), _heldout_fov(rng), _roll(rng, 5.0, 0.3))
    return {"family": "street", "camera": cam, "objects": objects, "lights": lights}


def desk_scene(rng: np.random.Generator) -> dict[str, Any]:
    """(held out) A desk (a box) against a wall, on a floor, with 3-7 held-out-shape objects of 4-15 cm on it
    and a lamp (point light) over it, plus a dim environment; the camera 0.5-1.5 m from the desk looking down
    at it (elevation 20-60 degrees)."""
    hx, hz, top = rng.uniform(0.5, 1.0), rng.uniform(0.3, 0.5), rng.uniform(0.7, 0.8)
    objects: list[dict] = [
        _rect("floor", [0, 0, 2], [4, 4], [[[1, 0, 0], -90.0]], random_material(rng, texture_prob=0.5)),
        _rect("wall", [0, 1.5, -hz - rng.uniform(0.0, 0.1)], [4, 1.5], [], _wall_material(rng)),
        _box("desk", [0, top / 2, 0], [hx, top / 2, hz], 0.0, random_material(rng, texture_prob=0.4)),
    ]
    for i, xz in enumerate(_place(rng, int(rng.integers(3, 8)), (-hx * 0.85, hx * 0.85), (-hz * 0.8, hz * 0.8))):
        objects.append(random_object(rng, f"object_{i}", xz, top, (0.04, 0.15), HELDOUT["shapes"]))
    lights = [{"type": "constant", "radiance": _f(rng.uniform(0.1, 0.5) * np.ones(3))},
              {"type": "point", "position": _f([rng.uniform(-hx, hx), top + rng.uniform(0.4, 1.0), rng.uniform(-hz, hz)]),
               "intensity": _f(rng.uniform(1.0, 4.0) * rng.uniform(0.8, 1.0, 3))}]
    dist, elev, azim = rng.uniform(0.5, 1.5), math.radians(rng.uniform(20.0, 60.0)), math.radians(rng.uniform(-45, 45))
    origin = np.array([dist * math.cos(elev) * math.sin(azim), top + dist * math.sin(elev), dist * math.cos(elev) * math.cos(azim)])
    target = np.array([rng.uniform(-0.3, 0.3) * hx, top, rng.uniform(-0.3, 0.3) * hz])
    return {"family": "desk", "camera": _camera(origin, target, _heldout_fov(rng), _roll(rng, 5.0, 0.3)),
            "objects": objects, "lights": lights}


SCENE_BUILDERS = {"room": room_scene, "tabletop": tabletop_scene, "outdoor": outdoor_scene, "closeup": closeup_scene,
                  "corridor": corridor_scene, "street": street_scene, "desk": desk_scene}
#: the families ``marigold synth`` draws from by default (training data)
SCENE_FAMILIES = ("room", "tabletop", "outdoor", "closeup")
HELDOUT_FAMILIES = HELDOUT["families"]


def sample_seed(base_seed: int, index: int) -> int:
    """Deterministic per-sample seed (a 31-bit int) from the dataset seed and the sample index."""
    return int(np.random.SeedSequence([int(base_seed), int(index)]).generate_state(1, dtype=np.uint32)[0] >> 1)


def generate_scene(seed: int, families: tuple[str, ...] | list[str] = SCENE_FAMILIES) -> dict[str, Any]:
    """The scene description of one sample: the family is drawn uniformly from ``families``."""
    families = tuple(families)
    unknown = [f for f in families if f not in SCENE_BUILDERS]
    if not families or unknown:
        raise ValueError(f"unknown scene families {unknown!r}; known: {', '.join(SCENE_BUILDERS)}")
    rng = np.random.default_rng(int(seed))
    family = families[int(rng.integers(len(families)))]
    scene = SCENE_BUILDERS[family](rng)
    scene["seed"] = int(seed)
    return scene

"""Generated triangle meshes for the synthetic scenes (pure numpy; no Mitsuba import).

Every function returns ``(vertices [V, 3] float32, faces [F, 3] uint32, uv [V, 2] float32)`` with
counter-clockwise faces seen from outside (so geometric normals point outwards / up).
"""

from __future__ import annotations

import numpy as np

_T = (1.0 + 5.0**0.5) / 2.0
_ICO_V = np.array([[-1, _T, 0], [1, _T, 0], [-1, -_T, 0], [1, -_T, 0], [0, -1, _T], [0, 1, _T], [0, -1, -_T],
                   [0, 1, -_T], [_T, 0, -1], [_T, 0, 1], [-_T, 0, -1], [-_T, 0, 1]], dtype=np.float64)
_ICO_F = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                   [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                   [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)


def icosphere(subdivisions: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: ``(vertices [V, 3] float64 on the unit sphere, faces [F, 3] int64)``;
    ``F = 20 * 4**subdivisions``."""
    verts = [v / np.linalg.norm(v) for v in _ICO_V]
    faces = _ICO_F
    def midpoint(a: int, b: int, cache: dict[tuple[int, int], int]) -> int:
        key = (a, b) if a < b else (b, a)
        if key not in cache:
            m = verts[a] + verts[b]
            verts.append(m / np.linalg.norm(m))
            cache[key] = len(verts) - 1
        return cache[key]

    for _ in range(int(subdivisions)):
        cache: dict[tuple[int, int], int] = {}
        new = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b, cache), midpoint(b, c, cache), midpoint(c, a, cache)
            new += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        faces = np.array(new, dtype=np.int64)
    return np.array(verts), faces


def _spherical_uv(d: np.ndarray) -> np.ndarray:
    """(longitude, latitude) / (2 pi, pi) of unit directions ``d`` [V, 3]."""
    return np.stack([(np.arctan2(d[:, 0], d[:, 2]) / (2 * np.pi)) % 1.0, np.arccos(np.clip(d[:, 1], -1, 1)) / np.pi], 1)


def blob_mesh(center, radius: float, bumps, subdivisions: int = 3):
    """A closed smooth blob: unit icosphere directions ``d`` scaled by ``radius * (1 + sum_k a_k *
    max(d . u_k, 0) ** s_k)`` for ``bumps = [[ux, uy, uz, a, s], ...]`` (a rock / pebble / potato shape), then
    moved to ``center``. UV: spherical (longitude, latitude) / (2 pi, pi)."""
    d, faces = icosphere(subdivisions)
    scale = np.ones(len(d))
    for ux, uy, uz, amp, sharp in bumps:
        u = np.array([ux, uy, uz], dtype=np.float64)
        u /= max(np.linalg.norm(u), 1e-12)
        scale += float(amp) * np.clip(d @ u, 0.0, None) ** float(sharp)
    scale = np.clip(scale, 0.3, None)
    verts = d * (float(radius) * scale)[:, None] + np.asarray(center, dtype=np.float64)
    uv = _spherical_uv(d)
    return verts.astype(np.float32), faces.astype(np.uint32), uv.astype(np.float32)


def terrain_mesh(center, half_size, waves, resolution: int = 96):
    """A height field over ``center.xz +- half_size`` on a ``resolution x resolution`` vertex grid, height
    ``center.y + sum(a * sin(kx * x + kz * z + phase))`` (x, z relative to the centre), faces pointing up
    (+Y). UV: the grid's (0..1, 0..1)."""
    cx, cy, cz = (float(c) for c in center)
    hx, hz = (float(h) for h in half_size)
    n = int(resolution)
    gx, gz = np.meshgrid(np.linspace(-hx, hx, n), np.linspace(-hz, hz, n))  # [n(z), n(x)]
    h = np.zeros_like(gx)
    for kx, kz, phase, amp in waves:
        h += float(amp) * np.sin(float(kx) * gx + float(kz) * gz + float(phase))
    verts = np.stack([gx + cx, h + cy, gz + cz], -1).reshape(-1, 3)
    uv = np.stack([(gx + hx) / (2 * hx), (gz + hz) / (2 * hz)], -1).reshape(-1, 2)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]   # b = +x, c = +z
    # (a, c, b): (c - a) x (b - a) = (+z) x (+x) = +y  -> counter-clockwise seen from above
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    return verts.astype(np.float32), faces.astype(np.uint32), uv.astype(np.float32)


def _yaw_tilt(vertices: np.ndarray, yaw_deg: float, tilt_deg: float) -> np.ndarray:
    """Rotate about +X by ``tilt_deg`` (tips a Y-up shape over), then about +Y by ``yaw_deg``."""
    t, y = np.radians(float(tilt_deg)), np.radians(float(yaw_deg))
    rx = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    return vertices @ (ry @ rx).T


def torus_mesh(center, major_radius: float, minor_radius: float, yaw_deg: float = 0.0, tilt_deg: float = 0.0,
               segments: int = 48, rings: int = 16):
    """A closed torus around the Y axis (tube of ``minor_radius`` on a circle of ``major_radius``), tilted about
    X by ``tilt_deg`` (90 = standing on its rim), turned about Y by ``yaw_deg``, moved to ``center``. The grid
    wraps in both directions (no seam vertices), so smooth normals are continuous everywhere. UV: (segment,
    ring) / count."""
    R, r = float(major_radius), float(minor_radius)
    u = np.arange(segments) * (2 * np.pi / segments)   # around the Y axis
    v = np.arange(rings) * (2 * np.pi / rings)         # around the tube
    uu, vv = np.meshgrid(u, v, indexing="ij")          # [segments, rings]
    rad = R + r * np.cos(vv)
    verts = np.stack([rad * np.cos(uu), r * np.sin(vv), -rad * np.sin(uu)], -1).reshape(-1, 3)
    idx = np.arange(segments * rings).reshape(segments, rings)
    a, b = idx, np.roll(idx, -1, axis=0)               # b: next segment (counter-clockwise seen from +Y)
    c, d = np.roll(a, -1, axis=1), np.roll(b, -1, axis=1)  # next ring (outwards -> up -> inwards)
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    uv = np.stack([uu / (2 * np.pi), vv / (2 * np.pi)], -1).reshape(-1, 2)
    verts = _yaw_tilt(verts, yaw_deg, tilt_deg) + np.asarray(center, dtype=np.float64)
    return verts.astype(np.float32), faces.astype(np.uint32), uv.astype(np.float32)


def cone_mesh(base_center, radius: float, height: float, segments: int = 48):
    """A closed upright cone: apex ``height`` above ``base_center`` (+Y), base disk of ``radius`` facing down.
    Side and base have their own rim vertices (a sharp edge, not a smoothed one); the side is split into two
    rows so the smoothed normals near the apex stay close to the true cone normals. UV: (angle, height)."""
    cx, cy, cz = (float(c) for c in base_center)
    R, H = float(radius), float(height)
    ang = np.arange(segments) * (2 * np.pi / segments)
    ring = lambda rr, y: np.stack([cx + rr * np.cos(ang), np.full(segments, cy + y), cz - rr * np.sin(ang)], 1)  # noqa: E731
    rim, mid = ring(R, 0.0), ring(R / 2, H / 2)
    apex, base_c, base_rim = np.array([[cx, cy + H, cz]]), np.array([[cx, cy, cz]]), ring(R, 0.0)
    verts = np.concatenate([rim, mid, apex, base_rim, base_c])
    i = np.arange(segments)
    j = (i + 1) % segments
    n = segments
    # counter-clockwise seen from outside: the ring runs counter-clockwise seen from +Y
    side_low = np.concatenate([np.stack([i, j, n + j], 1), np.stack([i, n + j, n + i], 1)])
    side_top = np.stack([n + i, n + j, np.full(n, 2 * n)], 1)
    base = np.stack([np.full(n, 3 * n + 1), 2 * n + 1 + j, 2 * n + 1 + i], 1)
    faces = np.concatenate([side_low, side_top, base])
    uv = np.concatenate([np.stack([ang / (2 * np.pi), np.zeros(n)], 1), np.stack([ang / (2 * np.pi), np.full(n, .5)], 1),
                         [[0.5, 1.0]], np.stack([ang / (2 * np.pi), np.zeros(n)], 1), [[0.5, 0.0]]])
    return verts.astype(np.float32), faces.astype(np.uint32), uv.astype(np.float32)


def capsule_mesh(center, radius: float, half_length: float, yaw_deg: float = 0.0, tilt_deg: float = 0.0,
                 subdivisions: int = 3):
    """A closed capsule (a cylinder of ``radius`` and length ``2 * half_length`` with hemispherical ends) along
    Y, tilted about X by ``tilt_deg`` (90 = lying), turned about Y by ``yaw_deg``, moved to ``center``: the
    icosphere's upper half moved up and lower half moved down by ``half_length``. UV as :func:`blob_mesh`."""
    d, faces = icosphere(subdivisions)
    verts = d * float(radius)
    verts[:, 1] += np.where(d[:, 1] >= 0, 1.0, -1.0) * float(half_length)
    verts = _yaw_tilt(verts, yaw_deg, tilt_deg) + np.asarray(center, dtype=np.float64)
    uv = _spherical_uv(d)
    return verts.astype(np.float32), faces.astype(np.uint32), uv.astype(np.float32)

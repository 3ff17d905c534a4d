"""3D and float image files, written atomically: binary PLY point clouds, glTF 2.0 binary (GLB) meshes with vertex
colours, and single-channel float32 OpenEXR depth.

GLB needs ``trimesh`` and EXR the ``OpenEXR`` package (``pip install "marigold-toolkit[3d]"``); a missing one is a
one-line error naming the package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..core.atomic import atomic_path, atomic_write_bytes
from ..core.checks import check_shape


class ExportError(ValueError):
    """A geometry file cannot be written (missing optional package, bad array)."""


def ply_bytes(points: np.ndarray, colors: np.ndarray, normals: np.ndarray | None = None,
              comments: Sequence[str] = ()) -> bytes:
    """A binary little-endian PLY of ``N`` vertices: ``x, y, z`` float32, ``red, green, blue`` uchar and, with
    ``normals``, ``nx, ny, nz`` float32; ``comments`` become ``comment`` header lines.

    >>> data = ply_bytes(np.zeros((2, 3)), np.zeros((2, 3), np.uint8), comments=["units: metres"])
    >>> data.split(b"end_header\\n")[0].decode().splitlines()[:4]
    ['ply', 'format binary_little_endian 1.0', 'comment units: metres', 'element vertex 2']
    """
    points = np.asarray(points, dtype=np.float32)
    check_shape(points, "N 3", "points")
    colors = np.asarray(colors)
    check_shape(colors, [str(len(points)), "3"], "colors")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float32)
        check_shape(normals, [str(len(points)), "3"], "normals")
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    table = np.empty(len(points), dtype=fields)
    table["x"], table["y"], table["z"] = points.T
    table["red"], table["green"], table["blue"] = np.clip(colors, 0, 255).astype(np.uint8).T
    if normals is not None:
        table["nx"], table["ny"], table["nz"] = normals.T
    names = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments]
    header += [f"element vertex {len(points)}"] + [f"property {names[t]} {n}" for n, t in fields] + ["end_header"]
    return ("\n".join(header) + "\n").encode("ascii") + table.tobytes()


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray, normals: np.ndarray | None = None,
              comments: Sequence[str] = ()) -> None:
    """Write :func:`ply_bytes` to ``path`` atomically."""
    atomic_write_bytes(path, ply_bytes(points, colors, normals, comments))


def write_glb(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> None:
    """A glTF 2.0 binary mesh (``[V, 3]`` float32 positions as given, ``[F, 3]`` triangles, ``[V, 3]`` uint8 vertex
    colours), atomically. Unreferenced vertices are kept (their indices stay those of the pixel grid)."""
    try:
        import trimesh
    except ImportError as exc:
        raise ExportError("GLB export needs trimesh: pip install 'marigold-toolkit[3d]'") from exc
    vertices = np.asarray(vertices, dtype=np.float32)
    check_shape(vertices, "V 3", "vertices")
    faces = np.asarray(faces, dtype=np.int64)
    check_shape(faces, "F 3", "faces")
    rgba = np.concatenate([np.asarray(colors, dtype=np.uint8), np.full((len(vertices), 1), 255, np.uint8)], axis=1)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=rgba, process=False, validate=False)
    atomic_write_bytes(path, mesh.export(file_type="glb"))


def write_exr(path: str | os.PathLike, image: np.ndarray, channel: str = "Z") -> None:
    """A single-channel float32 OpenEXR image (``[H, W]``, channel ``channel``, ZIP compression), atomically."""
    try:
        import OpenEXR
    except ImportError as exc:
        raise ExportError("EXR export needs OpenEXR: pip install 'marigold-toolkit[3d]'") from exc
    image = np.ascontiguousarray(image, dtype=np.float32)
    check_shape(image, "H W", "image")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with atomic_path(path) as tmp, OpenEXR.File(header, {channel: image}) as f:
        f.write(str(tmp))

"""The depth task's extra outputs of ``marigold predict``: metric depth from sparse measurements and 3D exports.

For an input ``<stem>`` (``<t>`` = the depth target's name: its prediction space, ``depth`` or ``disparity``):

* ``--sparse-depth FILE|DIR`` -> ``<stem>_depth_metric.npy`` (float32 ``H x W`` metres: metric *depth* whatever
  the model's space) and ``<stem>_depth_metric.json`` (the fit: scale, shift, space, method, point and inlier
  counts, residual statistics in metres), see :mod:`.metric`; the fit runs in the model's own space unless
  ``fit_space`` says otherwise;
* ``--output-space S`` (``S`` other than the model's space) -> ``<stem>_S.npy``, ``<stem>_S.png``,
  ``<stem>_S_colored.png``: the prediction converted to ``S`` (:func:`~.spaces.convert_prediction`; needs the
  metric fit, or a model without an unknown shift), an affine-invariant map in [0, 1] like a native ``S``
  prediction; the native ``<stem>_<t>.*`` files are written as always;
* ``--export ply`` -> ``<stem>_points.ply``: binary little-endian, ``x, y, z`` float32 in the OpenCV camera frame
  + ``red, green, blue`` from the photo (+ ``nx, ny, nz`` when a normals prediction of the same image is at hand),
  one vertex per valid pixel;
* ``--export glb`` -> ``<stem>_mesh.glb``: the pixel grid as a glTF 2.0 mesh (y up), vertex colours, triangles
  across depth jumps larger than ``mesh_max_jump`` (relative) removed;
* ``--export exr`` -> float32 (channel ``Z``): ``<stem>_depth.exr`` in metres when a metric fit was made, else
  ``<stem>_<t>.exr``, the prediction as it is (affine-invariant, [0, 1], in its own space).

Units: with a metric fit, points are in metres. Without one, an affine-invariant prediction has no scale or
shift; points then use :func:`~.spaces.relative_depth_from` (the nearest point at 1, the farthest at 10 relative
units; a disparity is read as disparity), which the PLY header's comments state. Invalid pixels and the sky
(normalised depth >= ``FAR_CLIP``, disparity <= ``1 - FAR_CLIP``) are left out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...core.atomic import atomic_write_bytes
from ...io.camera import CameraIntrinsics, resolve_intrinsics
from ...io.files import save_npy, save_png
from ...io.geometry_files import write_exr, write_glb, write_ply
from ...visualize import to_uint8_rgb
from ..base import ImageContext
from .geometry import (
    DEPTH_RANGE_RATIO,
    FAR_CLIP,
    MAX_DEPTH_JUMP,
    grid_faces,
    marigold_normals_to_opencv,
    opencv_to_gltf,
    unproject,
)
from .metric import MetricFit, fit_metric, read_sparse_depth, sparse_depth_file
from .spaces import check_space, convert_prediction, relative_depth_from, to_depth_order

EXPORT_FORMATS = ("ply", "glb", "exr")


def export_file_names(stem: str, target: str, formats: Sequence[str]) -> list[str]:
    names = {"ply": f"{stem}_points.ply", "glb": f"{stem}_mesh.glb", "exr": f"{stem}_{target}.exr"}
    unknown = [f for f in formats if f not in names]
    if unknown:
        raise ValueError(f"--export: unknown format(s) {', '.join(unknown)}; use {', '.join(EXPORT_FORMATS)}")
    return [names[f] for f in formats]


def metric_file_names(stem: str, target: str = "depth") -> list[str]:
    """``<stem>_depth_metric.npy|json``: the metric fit's files name the quantity they hold (metric depth)."""
    return [f"{stem}_{target}_metric.npy", f"{stem}_{target}_metric.json"]


#: files of a prediction converted to another space, after ``<stem>_<space>`` (as a native prediction's)
CONVERTED_SUFFIXES = (".npy", ".png", "_colored.png")


def converted_space(space: str, options: Mapping[str, Any]) -> str | None:
    """The space ``options["output_space"]`` asks the prediction (in ``space``) to be converted to, or ``None``
    (not given, or the prediction's own)."""
    wanted = options.get("output_space")
    if wanted is None or wanted == space:
        return None
    return check_space(wanted, "--output-space")


def _has_metric_fit(stem: str, options: Mapping[str, Any]) -> bool:
    source = options.get("sparse_depth")
    return source is not None and sparse_depth_file(source, stem) is not None


def extra_file_names(stem: str, target: str, options: Mapping[str, Any], space: str = "depth") -> list[str]:
    """The extra files ``options`` (``export``, ``sparse_depth``, ``output_space``) ask for for input ``stem`` of a
    prediction named ``target`` in ``space``."""
    names = []
    metric = _has_metric_fit(stem, options)
    if metric:
        names += metric_file_names(stem)
    other = converted_space(space, options)
    if other is not None:
        names += [f"{stem}_{other}{suffix}" for suffix in CONVERTED_SUFFIXES]
    return names + export_file_names(stem, "depth" if metric else target, options.get("export") or ())


def _colors(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    rgb = to_uint8_rgb(image)
    if rgb.shape[:2] != tuple(hw):
        rgb = np.asarray(Image.fromarray(rgb).resize((hw[1], hw[0]), Image.BILINEAR))
    return rgb


def _normals_of(outputs: Sequence[Any], hw: tuple[int, int]) -> np.ndarray | None:
    """A normals prediction of the same image and size among ``outputs`` (Marigold frame), or ``None``."""
    for out in outputs:
        normals = getattr(out, "targets", {}).get("normals")
        if normals is not None and normals.shape == (*hw, 3):
            return normals
    return None


def point_cloud(z: np.ndarray, valid: np.ndarray, camera: CameraIntrinsics, rgb: np.ndarray,
                normals: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Points ``[N, 3]`` (OpenCV frame), colours ``[N, 3]`` and normals ``[N, 3]`` (OpenCV frame, from Marigold
    normals) of the ``valid`` pixels of planar depth ``z``, in row-major pixel order."""
    points = unproject(z, camera)[valid]
    n = marigold_normals_to_opencv(normals[valid]) if normals is not None else None
    return points, rgb[valid], n


def write_point_cloud(path: str | Path, z: np.ndarray, valid: np.ndarray, camera: CameraIntrinsics,
                      rgb: np.ndarray, normals: np.ndarray | None = None, units: str = "metres") -> None:
    """``<stem>_points.ply`` of the ``valid`` pixels (see the module docstring); ``units`` goes into the header."""
    points, colors, n = point_cloud(z, valid, camera, rgb, normals)
    comments = ["marigold-toolkit point cloud: OpenCV camera frame (x right, y down, z forward), planar depth",
                f"units: {units}",
                f"intrinsics ({camera.source}): fx {camera.fx:.6g} fy {camera.fy:.6g} cx {camera.cx:.6g} "
                f"cy {camera.cy:.6g} for {camera.width}x{camera.height}, pixel centres at integer coordinates",
                f"left out: invalid pixels and the sky (normalised depth >= {FAR_CLIP:g})"]
    write_ply(path, points, colors, n, comments)


def write_mesh(path: str | Path, z: np.ndarray, valid: np.ndarray, camera: CameraIntrinsics, rgb: np.ndarray,
               max_jump: float = MAX_DEPTH_JUMP) -> int:
    """``<stem>_mesh.glb``: the valid pixel grid in the glTF frame (y up), triangles across relative depth jumps
    above ``max_jump`` removed, only vertices used by a triangle kept; returns the number of triangles."""
    faces = grid_faces(z, valid, max_jump)
    vertices = opencv_to_gltf(unproject(z, camera).reshape(-1, 3))
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    write_glb(path, vertices[used], remap[faces], rgb.reshape(-1, 3)[used])
    return int(len(faces))


def fit_sparse(depth: np.ndarray, stem: str, options: Mapping[str, Any],
               space: str = "depth") -> tuple[np.ndarray, MetricFit, Path] | None:
    """The metric fit of the prediction ``depth`` (``H x W``, in ``space``) to the sparse measurements ``options``
    name for ``stem`` (in ``options["fit_space"]``, default the prediction's own ``space``), or ``None`` when a
    folder of measurements has none for this input. Returns metric depth in metres."""
    path = sparse_depth_file(options["sparse_depth"], stem)
    if path is None:
        return None
    sparse = read_sparse_depth(path, *depth.shape)
    metric, fit = fit_metric(depth, sparse, space=options.get("fit_space") or space,
                             method=options.get("fit_method") or "irls")
    return metric, fit, path


def write_metric(out_dir: str | Path, stem: str, target: str, metric: np.ndarray, record: Mapping[str, Any]) -> list[Path]:
    """``<stem>_<t>_metric.npy`` (float32 metres) and ``<stem>_<t>_metric.json`` (``record``), atomically
    (``t`` = ``depth``: the files hold metric depth)."""
    npy, js = (Path(out_dir) / n for n in metric_file_names(stem, target))
    save_npy(npy, metric)
    atomic_write_bytes(js, (json.dumps(record, indent=2) + "\n").encode())
    return [npy, js]


RELATIVE_UNITS = (f"relative, NOT metric: affine-invariant depth d in [0, 1] mapped to z = 1 + "
                  f"{DEPTH_RANGE_RATIO - 1:g} d (nearest point 1, farthest {DEPTH_RANGE_RATIO:g})")
RELATIVE_DISPARITY_UNITS = (f"relative, NOT metric: affine-invariant disparity q in [0, 1] mapped to z = 1 / "
                            f"({1 / DEPTH_RANGE_RATIO:g} + {1 - 1 / DEPTH_RANGE_RATIO:g} q) (nearest point 1, "
                            f"farthest {DEPTH_RANGE_RATIO:g})")


def write_exports(out_dir: str | Path, stem: str, target: str, z: np.ndarray, valid: np.ndarray, units: str,
                  exr: np.ndarray, options: Mapping[str, Any], context: ImageContext) -> list[Path]:
    """The ``options["export"]`` files of planar depth ``z`` (``H x W``, positive where ``valid``) in ``units``;
    ``exr`` is what ``<stem>_<t>.exr`` holds. Intrinsics come from ``options`` (``intrinsics``, ``fov_x``) or the
    photo's EXIF (:func:`~marigold_toolkit.io.camera.resolve_intrinsics`), scaled to the depth's size."""
    formats = list(options.get("export") or ())
    out_dir, hw = Path(out_dir), z.shape
    camera = rgb = None
    if "ply" in formats or "glb" in formats:
        camera = resolve_intrinsics(context.image.shape[0], context.image.shape[1], options.get("intrinsics"),
                                    options.get("fov_x"), context.path).scaled_to(*hw)
        rgb = _colors(context.image, hw)
    written = []
    for name, fmt in zip(export_file_names(stem, target, formats), formats):
        path = out_dir / name
        if fmt == "ply":
            write_point_cloud(path, z, valid, camera, rgb, _normals_of(context.outputs, hw), units)
        elif fmt == "glb":
            write_mesh(path, z, valid, camera, rgb, float(options.get("mesh_max_jump") or MAX_DEPTH_JUMP))
        else:
            write_exr(path, exr)
        written.append(path)
    return written


def conversion_problem(space: str, shift_invariant: bool, options: Mapping[str, Any]) -> str | None:
    """Why ``options["output_space"]`` cannot be honoured for a prediction in ``space`` (a one-line usage
    problem), or ``None``. An affine-invariant prediction has an unknown shift: converting it to the other space
    needs the metric fit (``--sparse-depth``); see :mod:`.spaces`."""
    other = converted_space(space, options)
    if other is None or not shift_invariant or options.get("sparse_depth") is not None:
        return None
    return (f"--output-space {other}: the model predicts affine-invariant {space} (unknown shift), so 1/{space} "
            f"is not a {other}; add --sparse-depth to fit metric depth first, or use --output-space {space}")


def write_converted(out_dir: str | Path, stem: str, space: str, array: np.ndarray,
                    images: Callable[[str, np.ndarray], Mapping[str, np.ndarray]]) -> list[Path]:
    """``<stem>_<space>.npy`` and the images ``images(space, array)`` gives (by suffix), atomically."""
    out_dir = Path(out_dir)
    path = out_dir / f"{stem}_{space}.npy"
    save_npy(path, array)
    written = [path]
    for suffix, image in images(space, array).items():
        written.append(out_dir / f"{stem}_{space}{suffix}")
        save_png(written[-1], image)
    return written


def write_depth_extras(out_dir: str | Path, stem: str, target: str, depth: np.ndarray,
                       options: Mapping[str, Any], context: ImageContext, space: str = "depth",
                       shift_invariant: bool = True,
                       images: Callable[[str, np.ndarray], Mapping[str, np.ndarray]] | None = None) -> list[Path]:
    """Write the files of :func:`extra_file_names` for one prediction ``depth`` (``H x W``, [0, 1], in ``space``:
    ``depth`` or ``disparity``, of a model with or without an unknown shift); ``images`` makes a converted
    prediction's images (the task's ``target_images``). Returns their paths.

    Raises:
        ValueError: ``--output-space`` asks for a conversion this input has no metric fit for (a folder of
            sparse measurements without this stem).
    """
    written: list[Path] = []
    metric = fit = None
    if options.get("sparse_depth") is not None:
        result = fit_sparse(depth, stem, options, space)
        if result is not None:
            metric, fit, source = result
            record = {"sparse_depth": str(source), "units": "metres", "prediction_space": space,
                      "fit": fit.as_dict()}
            written += write_metric(out_dir, stem, "depth", metric, record)
    other = converted_space(space, options)
    if other is not None:
        if fit is not None:
            converted = convert_prediction(depth, other, fit.space, fit.scale, fit.shift)
        elif not shift_invariant:
            converted = convert_prediction(depth, other, space)
        else:
            raise ValueError(f"--output-space {other}: no sparse depth for '{stem}', and an affine-invariant "
                             f"{space} has no shift to convert with")
        if images is None:
            raise ValueError("write_depth_extras: converting to another space needs the task's images")
        written += write_converted(out_dir, stem, other, converted, images)
    if not options.get("export"):
        return written
    if metric is not None:
        z, units = metric, "metres (scale and shift fitted to sparse measurements)"
    else:
        z = relative_depth_from(depth, space, DEPTH_RANGE_RATIO)
        units = RELATIVE_UNITS if space == "depth" else RELATIVE_DISPARITY_UNITS
    valid = np.isfinite(z) & (z > 0) & (to_depth_order(depth, space) < FAR_CLIP)
    return written + write_exports(out_dir, stem, "depth" if metric is not None else target, z, valid, units,
                                   metric if metric is not None else depth, options, context)

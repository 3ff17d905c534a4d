"""Pinhole camera intrinsics for unprojecting a depth map: from a JSON file, a horizontal field of view, the photo's
EXIF focal length (35 mm equivalent), or a documented default.

Pixel convention (OpenCV): pixel ``(u, v)`` is column ``u``, row ``v`` counted from the top-left pixel, and its
centre is the image-plane point ``(u, v)``; equivalently, in continuous coordinates where the image spans
``[0, W] x [0, H]``, the centre of pixel ``(u, v)`` sits at ``(u + 0.5, v + 0.5)``. A centred principal point is
therefore ``cx = (W - 1) / 2``, ``cy = (H - 1) / 2``. A JSON whose ``"pixel_convention"`` says ``continuous``
(principal point measured in continuous coordinates, centred at ``W / 2``) is converted by subtracting 0.5.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

#: the horizontal field of view assumed when nothing else tells it (a typical phone main camera, ~26 mm equivalent)
DEFAULT_FOV_X_DEG = 65.0
#: width of the 35 mm film frame the "35 mm equivalent" focal length refers to (the long edge)
FILM_WIDTH_MM = 36.0
#: EXIF tag FocalLengthIn35mmFilm
_EXIF_FOCAL_35MM = 41989
_EXIF_IFD = 0x8769


class CameraError(ValueError):
    """Intrinsics cannot be read or do not fit the image (a one-line message naming the input)."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels (OpenCV convention, see the module docstring) for a ``width x height`` image.

    ``source`` says where they came from (``"file"``, ``"fov"``, ``"exif"``, ``"default"``)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    source: str = "file"

    def scaled_to(self, height: int, width: int) -> CameraIntrinsics:
        """The same camera for the image resized to ``height x width`` (pixel centres scale about the corner)."""
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                                int(width), int(height), self.source)

    def as_dict(self) -> dict[str, Any]:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "width": self.width,
                "height": self.height, "pixel_convention": "opencv (pixel centres at integer coordinates)",
                "source": self.source}


def intrinsics_from_fov(fov_x_deg: float, height: int, width: int, source: str = "fov") -> CameraIntrinsics:
    """Square pixels, centred principal point, horizontal field of view ``fov_x_deg`` (``fx = W/2 / tan(fov/2)``).

    >>> k = intrinsics_from_fov(90.0, 480, 640)
    >>> round(k.fx, 6), k.cx, k.cy
    (320.0, 319.5, 239.5)
    """
    if not 0.0 < fov_x_deg < 180.0:
        raise CameraError(f"--fov-x {fov_x_deg}: the field of view must lie strictly between 0 and 180 degrees")
    fx = (width / 2.0) / math.tan(math.radians(fov_x_deg) / 2.0)
    return CameraIntrinsics(fx, fx, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height), source)


def read_intrinsics(path: str | os.PathLike, height: int, width: int) -> CameraIntrinsics:
    """Intrinsics from a JSON file with ``fx``, ``fy``, ``cx``, ``cy`` in pixels (a ``marigold synth`` camera JSON
    works as it is). With ``width``/``height`` in the file they must match the image's aspect ratio and the
    intrinsics are scaled to the image; without them the values are taken for the image as it is."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CameraError(f"{path}: cannot read camera intrinsics ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise CameraError(f"{path}: expected a JSON object with fx, fy, cx, cy")
    try:
        fx, fy, cx, cy = (float(data[k]) for k in ("fx", "fy", "cx", "cy"))
    except (KeyError, TypeError, ValueError):
        raise CameraError(f"{path}: needs numbers fx, fy, cx, cy (pixels)") from None
    if not (fx > 0 and fy > 0 and all(map(math.isfinite, (fx, fy, cx, cy)))):
        raise CameraError(f"{path}: fx and fy must be positive and all values finite")
    if "continuous" in str(data.get("pixel_convention", "")).lower():
        cx, cy = cx - 0.5, cy - 0.5
    w, h = int(data.get("width", width)), int(data.get("height", height))
    if w <= 0 or h <= 0:
        raise CameraError(f"{path}: width and height must be positive")
    if abs(w / h - width / height) > 0.01 * (width / height):
        raise CameraError(f"{path}: the intrinsics are for a {w}x{h} image, which has another aspect ratio than "
                          f"the {width}x{height} input")
    return CameraIntrinsics(fx, fy, cx, cy, w, h, "file").scaled_to(height, width)


def exif_focal_35mm(image: Image.Image) -> float | None:
    """The EXIF ``FocalLengthIn35mmFilm`` of a PIL image, or ``None``."""
    try:
        exif = image.getexif()
        value = exif.get(_EXIF_FOCAL_35MM) or exif.get_ifd(_EXIF_IFD).get(_EXIF_FOCAL_35MM)
    except Exception:  # noqa: BLE001 - unreadable EXIF is the same as none
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def intrinsics_from_exif(path: str | os.PathLike, height: int, width: int) -> CameraIntrinsics | None:
    """Intrinsics from the photo's 35 mm-equivalent focal length (the long edge of the image maps to the 36 mm
    film width: ``fx = fy = f35 * max(W, H) / 36``), or ``None`` when the file has none."""
    try:
        with Image.open(path) as img:
            f35 = exif_focal_35mm(img)
    except (OSError, ValueError):
        return None
    if f35 is None:
        return None
    f = f35 * max(width, height) / FILM_WIDTH_MM
    return CameraIntrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height), "exif")


def resolve_intrinsics(height: int, width: int, intrinsics: str | os.PathLike | None = None,
                       fov_x: float | None = None, image_path: str | os.PathLike | None = None) -> CameraIntrinsics:
    """The intrinsics of one image, by priority: the JSON file ``intrinsics``, the field of view ``fov_x``, the
    EXIF focal length of ``image_path``, else :data:`DEFAULT_FOV_X_DEG` with a warning."""
    if intrinsics is not None:
        return read_intrinsics(intrinsics, height, width)
    if fov_x is not None:
        return intrinsics_from_fov(float(fov_x), height, width)
    if image_path is not None:
        found = intrinsics_from_exif(image_path, height, width)
        if found is not None:
            return found
    logger.warning("%s: no intrinsics (--intrinsics / --fov-x) and no EXIF focal length; assuming a %g degree "
                   "horizontal field of view", image_path or "image", DEFAULT_FOV_X_DEG)
    return intrinsics_from_fov(DEFAULT_FOV_X_DEG, height, width, source="default")

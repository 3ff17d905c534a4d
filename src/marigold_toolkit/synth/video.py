"""Rendered video sequences with ground truth for temporal metrics: one procedural scene, a camera path through
it, and per frame the photo, planar depth, intrinsics and camera pose.

Layout of a set (resumable: finished frames are skipped)::

    root/<seq>/rgb/000000.png ...      the frames (sRGB, uint8)
    root/<seq>/depth/000000.npy ...    planar depth in metres (0 = invalid)
    root/<seq>/cameras.json            K (3x3, OpenCV pixels), poses ([N, 4, 4] camera-to-world, OpenCV axes:
                                       x right, y down, z forward), fps, the scene description

The camera slides sideways along its right axis and turns about the world's up axis a little every frame, so
consecutive frames overlap and static geometry moves across the image.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..core.atomic import atomic_write_bytes
from ..io.files import save_npy, save_png
from .render import camera_basis, intrinsics, render_scene
from .scene import SCENE_FAMILIES, generate_scene, sample_seed


def camera_path(camera: dict[str, Any], n_frames: int, slide: float, turn_deg: float) -> list[dict[str, Any]]:
    """``n_frames`` cameras: the first is ``camera``; each next one ``slide`` metres further along the first
    camera's right axis and turned ``turn_deg`` degrees about the world's up axis (Y)."""
    right = camera_basis(camera)[0]
    origin = np.asarray(camera["origin"], dtype=np.float64)
    look = np.asarray(camera["target"], dtype=np.float64) - origin
    out = []
    for k in range(n_frames):
        a = math.radians(turn_deg * k)
        c, s = math.cos(a), math.sin(a)
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        o = origin + slide * k * right
        out.append({**camera, "origin": o.tolist(), "target": (o + rot @ look).tolist()})
    return out


def opencv_pose(camera: dict[str, Any]) -> np.ndarray:
    """The camera-to-world ``4 x 4`` transform in OpenCV axes (x right, y down, z forward) of a scene camera."""
    right, up, back = camera_basis(camera)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, -up, -back], axis=1)
    pose[:3, 3] = camera["origin"]
    return pose


def render_sequence(root: str | Path, index: int, seed: int = 0, n_frames: int = 24,
                    resolution: tuple[int, int] = (96, 128), spp: int = 32, slide: float = 0.03,
                    turn_deg: float = 0.4, families: tuple[str, ...] = SCENE_FAMILIES) -> Path:
    """Render sequence ``index`` of a set into ``root/<index:04d>`` (frames already written are kept)."""
    seq = Path(root) / f"{index:04d}"
    scene = generate_scene(sample_seed(seed, index), families)
    cams = camera_path(scene["camera"], n_frames, slide, turn_deg)
    h, w = resolution
    K = intrinsics(float(scene["camera"]["fov_x_deg"]), h, w)
    exposure_file = seq / "exposure.txt"  # the first frame's auto exposure, kept for all (no brightness flicker)
    for k, cam in enumerate(tqdm(cams, desc=f"sequence {index}", leave=False)):
        rgb, depth = seq / "rgb" / f"{k:06d}.png", seq / "depth" / f"{k:06d}.npy"
        if rgb.is_file() and depth.is_file():
            continue
        exposure = float(exposure_file.read_text()) if exposure_file.is_file() else "auto"
        out = render_scene({**scene, "camera": cam}, resolution, spp, exposure=exposure)
        save_npy(depth, out["depth"])
        save_png(rgb, out["rgb"])
        if not exposure_file.is_file():
            atomic_write_bytes(exposure_file, repr(float(out["exposure"])).encode())
    meta = {"K": [[K["fx"], 0, K["cx"]], [0, K["fy"], K["cy"]], [0, 0, 1]],
            "poses": [opencv_pose(c).tolist() for c in cams], "fps": 10.0, "family": scene["family"],
            "depth": "planar, metres, 0 = invalid", "scene": scene}
    atomic_write_bytes(seq / "cameras.json", json.dumps(meta).encode())
    return seq


def load_sequence(seq: str | Path) -> dict[str, Any]:
    """A rendered sequence: ``depth [N, H, W]``, ``K``, ``poses``, the frame folder ``rgb`` and ``family``."""
    seq = Path(seq)
    meta = json.loads((seq / "cameras.json").read_text())
    files = sorted((seq / "depth").glob("*.npy"))
    return {"depth": np.stack([np.load(f) for f in files]), "K": np.asarray(meta["K"]),
            "poses": np.asarray(meta["poses"]), "rgb": seq / "rgb", "family": meta["family"]}

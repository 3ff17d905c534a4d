"""Write rendered samples in the folder layout of :mod:`marigold_toolkit.data.folder` and render whole datasets.

Per sample ``<stem>`` (``%06d`` of the index) under ``root``::

    rgb/<stem>.png            sRGB uint8 (auto-exposed, clipped)
    depth/<stem>.npy          float32 [H, W] planar depth in metres, 0 = invalid (background / partial pixels)
    normals/<stem>.npy        float32 [H, W, 3] unit camera-frame normals (X right, Y up, Z to the viewer), 0 = invalid
    albedo/<stem>.png         sRGB uint8 base colour
    albedo_linear/<stem>.npy  float32 [H, W, 3] linear base colour
    material/<stem>.npy       float32 [H, W, 3] (roughness, metallicity, 0)
    shading/<stem>.npy        float32 [H, W, 3] linear diffuse shading S (unbounded; not a folder-loader target)
    residual/<stem>.npy       float32 [H, W, 3] linear residual R = I - A * S (signed; not a folder-loader target)
    mask/<stem>.png           uint8 255 = every sample of the pixel hit a surface
    camera/<stem>.json        intrinsics, extrinsics, seed, exposure, the full scene description

The camera JSON is written last, so a sample is complete when all of its files exist (resume skips it).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..core.atomic import atomic_write_bytes, clean_stale_temporaries
from ..io.files import save_npy, save_png
from .render import camera_basis, render_scene
from .scene import SCENE_FAMILIES, generate_scene, sample_seed

logger = logging.getLogger(__name__)

OUTPUTS = (
    ("rgb", ".png"), ("depth", ".npy"), ("normals", ".npy"), ("albedo", ".png"), ("albedo_linear", ".npy"),
    ("material", ".npy"), ("shading", ".npy"), ("residual", ".npy"), ("mask", ".png"), ("camera", ".json"),
)


#: the files written for each ``maps`` of :func:`~marigold_toolkit.synth.render.render_scene`
MAP_OUTPUTS = {
    "all": OUTPUTS,
    "geometry": tuple(o for o in OUTPUTS if o[0] in ("rgb", "depth", "normals", "material", "mask", "camera")),
    "image": tuple(o for o in OUTPUTS if o[0] in ("rgb", "camera")),
}


def stem_for(index: int) -> str:
    return f"{int(index):06d}"


def sample_paths(root: str | os.PathLike, stem: str, maps: str = "all") -> dict[str, Path]:
    root = Path(root)
    return {folder: root / folder / f"{stem}{ext}" for folder, ext in MAP_OUTPUTS[maps]}


def sample_complete(root: str | os.PathLike, stem: str, maps: str = "all") -> bool:
    return all(p.is_file() for p in sample_paths(root, stem, maps).values())


def write_sample(root: str | os.PathLike, stem: str, out: dict[str, Any], scene: dict[str, Any],
                 maps: str = "all") -> None:
    """Write the maps of :func:`~marigold_toolkit.synth.render.render_scene` (rendered with the same ``maps``)
    atomically, camera JSON last."""
    paths = sample_paths(root, stem, maps)
    writers = {
        "rgb": lambda p: save_png(p, out["rgb"]),
        "depth": lambda p: save_npy(p, out["depth"]),
        "normals": lambda p: save_npy(p, out["normals"]),
        "albedo": lambda p: save_png(p, np.round(out["albedo_srgb"] * 255.0).astype(np.uint8)),
        "albedo_linear": lambda p: save_npy(p, out["albedo_linear"]),
        "material": lambda p: save_npy(p, out["material"]),
        "shading": lambda p: save_npy(p, out["shading"]),
        "residual": lambda p: save_npy(p, out["residual"]),
        "mask": lambda p: save_png(p, out["mask"].astype(np.uint8) * 255),
    }
    for folder, path in paths.items():
        if folder != "camera":
            writers[folder](path)
    meta = {
        **{k: out["intrinsics"][k] for k in ("fx", "fy", "cx", "cy", "width", "height")},
        "seed": int(scene["seed"]),
        "family": scene["family"],
        "exposure": float(out["exposure"]),
        "pixel_convention": "opencv (pixel centres at integer coordinates)",
        "camera_to_world_rotation": camera_basis(scene["camera"]).T.tolist(),  # columns: right, up, backwards
        "camera_origin": scene["camera"]["origin"],
        "maps": maps,
        "depth": "planar, metres, 0 = invalid",
        "normals": "camera frame, X right, Y up, Z towards the viewer",
        "scene": scene,
    }
    atomic_write_bytes(paths["camera"], json.dumps(meta, indent=1).encode())


def render_sample(root: str | os.PathLike, index: int, seed: int = 0, resolution: Sequence[int] = (120, 160),
                  spp: int = 16, families: Sequence[str] = SCENE_FAMILIES, maps: str = "all") -> bool:
    """Render and write sample ``index`` unless it is complete already; returns whether it rendered."""
    stem = stem_for(index)
    if sample_complete(root, stem, maps):
        return False
    scene = generate_scene(sample_seed(seed, index), tuple(families))
    out = render_scene(scene, (int(resolution[0]), int(resolution[1])), int(spp), maps=maps)
    write_sample(root, stem, out, scene, maps)
    return True


def _worker(job: tuple) -> tuple[int, bool]:
    root, index, seed, resolution, spp, families, maps = job
    return index, render_sample(root, index, seed, resolution, spp, families, maps)


def render_dataset(root: str | os.PathLike, n: int, seed: int = 0, resolution: Sequence[int] = (120, 160),
                   spp: int = 16, workers: int = 1, progress: bool = True,
                   families: Sequence[str] = SCENE_FAMILIES, maps: str = "all") -> int:
    """Render samples ``0 .. n-1`` into ``root`` (resumable: complete samples are skipped). Sample ``i`` uses
    the seed :func:`~marigold_toolkit.synth.scene.sample_seed` ``(seed, i)``, so outputs do not depend on
    ``workers`` or on which samples existed before. ``maps``: which maps to render and write (see
    :data:`MAP_OUTPUTS`). Returns the number of samples rendered."""
    if maps not in MAP_OUTPUTS:
        raise ValueError(f"maps={maps!r}: expected one of {', '.join(MAP_OUTPUTS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for folder, _ in MAP_OUTPUTS[maps]:
        clean_stale_temporaries(root / folder)
    families = tuple(families)
    generate_scene(0, families)  # validate family names early
    todo = [i for i in range(int(n)) if not sample_complete(root, stem_for(i), maps)]
    logger.info("synth: %d of %d samples to render into %s", len(todo), n, root)
    jobs = [(str(root), i, int(seed), tuple(int(x) for x in resolution), int(spp), families, maps) for i in todo]
    rendered = 0
    bar = tqdm(total=len(jobs), disable=not progress, desc="synth", unit="sample")
    try:
        if workers > 1 and len(jobs) > 1:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(int(workers), len(jobs))) as pool:
                for _, did in pool.imap_unordered(_worker, jobs):
                    rendered += int(did)
                    bar.update(1)
        else:
            for job in jobs:
                rendered += int(_worker(job)[1])
                bar.update(1)
    finally:
        bar.close()
    return rendered

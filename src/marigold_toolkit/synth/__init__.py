"""Synthetic training data rendered with Mitsuba 3 (``pip install 'marigold-toolkit[synth]'``).

Procedural scenes (:mod:`.scene`: an indoor ``room`` and a ``tabletop`` with clutter; spheres, cubes, capped
cylinders and rectangles with diffuse / rough plastic / rough conductor materials, optional checkerboard
textures; area, point and constant-environment lights; a perspective camera with a random 40-80 degree
horizontal FOV, height and tilt) are rendered (:mod:`.render`, variant ``scalar_rgb`` on the CPU by default,
``MARIGOLD_SYNTH_VARIANT`` overrides) and written (:mod:`.writer`) in the layout that
``get_train_dataset("folder", root, targets=[...])`` reads.

Conventions:

* **Units**: metres. ``depth`` is PLANAR depth (distance along the optical axis), not Mitsuba's ray distance
  (the ``depth`` AOV; converted with ``z = t / |((u - cx) / fx, (v - cy) / fy, 1)|``). 0 = invalid: background
  (environment) and pixels only partly covered by geometry (``mask`` = 0).
* **Normals**: unit vectors in the Marigold / OpenGL camera frame: X right, Y up, Z towards the viewer (a
  surface facing the camera is (0, 0, 1)); Mitsuba's world-space shading normals are rotated into that frame
  and flipped to face the camera. Zero vector = invalid.
* **Colour**: ``rgb/*.png`` is sRGB-encoded uint8 of the auto-exposed linear radiance (exposure in the JSON);
  ``albedo/*.png`` is the sRGB base colour (what the Marigold appearance model predicts),
  ``albedo_linear/*.npy`` the linear one. ``material`` = (roughness, metallicity, 0); roughness is perceptual
  (Mitsuba ``alpha = roughness**2``; 1 for diffuse), metallicity is 1 for conductors, 0 otherwise.
  ``shading`` = exposed linear RGB / linear albedo where albedo > 1e-4 (no residual term: specular and
  interreflection effects all end up in shading for now; conductors are not separated).
* **Intrinsics**: ``camera/<stem>.json`` holds ``fx, fy, cx, cy, width, height`` (OpenCV pixel convention,
  pixel centres at integer coordinates), the seed, the camera rotation and the full scene description.
* **Determinism**: sample ``i`` of a dataset with seed ``s`` uses ``sample_seed(s, i)`` for the scene and
  Mitsuba's sampler, so it is reproducible and independent of ``workers`` and of resumption.

Public API: :func:`render_dataset`, :func:`render_sample`, :func:`render_scene`, :func:`generate_scene`,
:func:`sample_seed`, :func:`write_sample`, :func:`intrinsics`; CLI hooks ``cli.add_parser`` / ``cli.run``.
"""

from __future__ import annotations

from .render import intrinsics, linear_to_srgb, render_scene, srgb_to_linear, to_mitsuba_dict
from .scene import SCENE_FAMILIES, generate_scene, sample_seed
from .writer import render_dataset, render_sample, sample_complete, write_sample

__all__ = [
    "SCENE_FAMILIES",
    "generate_scene",
    "intrinsics",
    "linear_to_srgb",
    "render_dataset",
    "render_sample",
    "render_scene",
    "sample_complete",
    "sample_seed",
    "srgb_to_linear",
    "to_mitsuba_dict",
    "write_sample",
]

"""Intrinsic-image-decomposition benchmarks of the Marigold protocol.

``gt`` is a dict ``target name -> [H, W, 3] float32`` in [0, 1], in the space the model predicts that target
in. The class attributes tell the evaluator what the authors' ``script/iid/eval.py`` does on top:

* ``linear_space_targets``: raised to the power 2.2 (sRGB -> linear) on both prediction and GT before the
  metrics (InteriorVerse ``material``);
* ``srgb_space_targets``: raised to the power 1/2.2 (linear -> sRGB) on both (Hypersim ``albedo``);
* ``up_to_scale_targets``: least-squares scale of the prediction to the GT, then the 90th-percentile
  brightness mapping (``shading``, ``residual``);
* ``use_mask``: whether the per-target masks in ``meta["masks"]`` (``[H, W, 3]`` bool, per channel, as the
  authors build them) are applied. ``valid_mask`` is the pixels valid for every target and channel (all True
  for InteriorVerse, which the authors score without a mask).

Inference defaults follow ``script/iid/eval/*.sh``: 4 steps, ensemble 1, seed 1234, processing resolution 640
(InteriorVerse) or 0 = native (Hypersim).
"""

from __future__ import annotations

import numpy as np

from ...core.checks import check_map
from ...core.metrics import lpips_enabled
from ...io.dataset_files import (
    SplitEntry,
    hypersim_iid_cut_off,
    read_exr_rgb,
    read_npy,
    read_rgb_uint8,
    stem_from_relpath,
)
from ...tasks.intrinsics.metrics import GAMMA
from .base import Benchmark, EvalSample, InferenceDefaults

class IntrinsicsBenchmark(Benchmark):
    task = "intrinsics"
    alignment = "none"
    targets: tuple[str, ...] = ()
    linear_space_targets: tuple[str, ...] = ()
    srgb_space_targets: tuple[str, ...] = ()
    up_to_scale_targets: tuple[str, ...] = ()
    use_mask: bool = False

    def parse_line(self, cols, line_no):
        return SplitEntry(stem_from_relpath(cols[0]), tuple(cols[: self.min_columns]), line_no)

    def scoring_options(self, sample: EvalSample, alignment: str | None = None) -> dict:
        """The authors' colour-space conversions, up-to-scale targets and (``use_mask``) per-target masks; LPIPS
        when it is available locally."""
        return {"mask": sample.valid_mask if self.use_mask else None, "up_to_scale": self.up_to_scale_targets,
                "linear_space": self.linear_space_targets, "srgb_space": self.srgb_space_targets,
                "masks": sample.meta.get("masks") if self.use_mask else None, "with_lpips": lpips_enabled()}

    @staticmethod
    def _check_shape(name: str, arr: np.ndarray, hw: tuple[int, int], path: str) -> None:
        try:
            check_map(arr, hw, 3, f"{name} map")
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


class InteriorVerseAppearance(IntrinsicsBenchmark):
    """InteriorVerse ``scenes_85`` test split (2672 frames) for the appearance model (albedo + material).

    Root: the InteriorVerse folder holding ``scenes_85/<scene>/`` (or the authors' ``InteriorVerse.tar``
    made by ``preprocess_interiorverse_iid.py``). Files per frame, all OpenEXR, linear HDR:
    ``NNN_im.exr`` (image), ``NNN_albedo.exr``, ``NNN_material.exr`` (R roughness, G metallicity) and
    ``NNN_mask.exr``.

    Split file (default ``<root>/interiorverse_test_scenes_85.txt``, the authors'
    ``data_split/interiorverse_iid/interiorverse_test_scenes_85.txt``):
    ``<im path> <albedo path> <material path> <mask path>``, e.g.
    ``scenes_85/L3D124S21ENDIMPH3DQUI5NFSLUF3P3XG888/000_im.exr`` followed by the ``..._albedo.exr``,
    ``..._material.exr`` and ``..._mask.exr`` paths.

    Decoding as the authors' dataset: every EXR is clipped to [0, 1]; the image goes through gamma 1/2.2 and
    then to uint8 by truncation (``int(x * 255)``, the authors' ``float2int``); albedo -> x^(1/2.2);
    material: B := 0, then x^(1/2.2) (so the evaluator's ``material`` linearisation undoes it). The mask
    file (nonzero in all channels) goes to ``meta["object_mask"]`` and, per channel, to ``meta["masks"]``;
    the authors' evaluation does not use it (``use_mask = False``). Non-finite values (the authors' loader
    would refuse them) are set to 0 and left out of ``valid_mask``.

    Reading EXR needs the ``OpenEXR`` package (``pip install OpenEXR``) or OpenCV with its EXR codec.
    """

    name = "interiorverse"
    split_file = "interiorverse_test_scenes_85.txt"
    split_source = "data_split/interiorverse_iid/interiorverse_test_scenes_85.txt"
    num_samples = 2672
    min_columns = 4
    targets = ("albedo", "material")
    linear_space_targets = ("material",)
    use_mask = False
    inference = InferenceDefaults(
        processing_resolution=640,
        num_inference_steps=4,
        ensemble_size=1,
        seed=1234,
        resample_method="bilinear",
    )

    def load(self, entry: SplitEntry) -> EvalSample:
        im_path, albedo_path, material_path, mask_path = entry.paths[:4]
        im = read_exr_rgb(self.source, im_path)
        hw = im.shape[:2]
        raw = {}
        for name, path in (("albedo", albedo_path), ("material", material_path), ("mask", mask_path)):
            arr = read_exr_rgb(self.source, path)
            self._check_shape(name, arr, hw, path)
            raw[name] = arr

        finite = np.isfinite(im).all(axis=2)
        for arr in raw.values():
            finite &= np.isfinite(arr).all(axis=2)

        def to_srgb(x: np.ndarray) -> np.ndarray:
            x = np.nan_to_num(np.clip(x, 0.0, 1.0), nan=0.0)
            return (x ** np.float32(1.0 / GAMMA)).astype(np.float32)

        rgb_float = to_srgb(im)
        rgb = (rgb_float * np.float32(255.0)).astype(np.uint8)  # truncation, as the authors' float2int
        albedo = to_srgb(raw["albedo"])
        material = raw["material"].copy()
        material[..., 2] = 0.0
        material = to_srgb(material)
        mask_ch = np.nan_to_num(np.clip(raw["mask"], 0.0, 1.0), nan=0.0) != 0
        object_mask = mask_ch.all(axis=2)

        meta = {
            "rgb_path": im_path,
            "paths": {"albedo": albedo_path, "material": material_path, "mask": mask_path},
            "line": entry.line_no,
            "object_mask": object_mask,
            "masks": {"albedo": mask_ch.copy(), "material": mask_ch.copy()},
        }
        return EvalSample(
            stem=entry.stem,
            rgb=rgb,
            gt={"albedo": albedo, "material": material},
            valid_mask=finite,
            meta=meta,
        )


class HypersimIIDLighting(IntrinsicsBenchmark):
    """Hypersim test split (5238 frames) for the lighting model (albedo, shading, residual), in the format
    written by the authors' ``script/iid/dataset_preprocess/hypersim_lighting/preprocess_hypersim_iid.py``.

    Root: the preprocessed ``hypersim`` folder. Files: ``test/<scene>/rgb_cam_XX_frNNNN.png`` (tone-mapped
    uint8 RGB), ``albedo_...npy`` (``[H, W, 3]`` linear diffuse reflectance clipped to [0, 1]),
    ``shading_...npy`` (diffuse illumination) and ``residual_...npy``, both linear and unbounded, and
    ``shading_stats_...json`` (not used).

    Split file (default ``<root>/hypersim_test.txt``, the authors'
    ``data_split/hypersim_iid/hypersim_test.txt``):
    ``<rgb> <albedo> <shading> <residual> <stats json>``, e.g.
    ``test/ai_001_010/rgb_cam_00_fr0000.png test/ai_001_010/albedo_cam_00_fr0000.npy
    test/ai_001_010/shading_cam_00_fr0000.npy test/ai_001_010/residual_cam_00_fr0000.npy
    test/ai_001_010/shading_stats_cam_00_fr0000.json``.

    Decoding as the authors' ``HypersimIIDDataset``: cut-off c = max(q98(shading), q98(residual)) over all
    values of each array (linear-interpolated quantile); shading and residual are clipped to [0, c] and
    divided by c. Masks (per channel): albedo valid = finite and not all three channels 0; shading and
    residual valid = finite after the clipping. The quantiles are taken over finite values (the authors'
    ``torch.quantile`` would return NaN for an array holding NaN); on finite data they are identical.
    Albedo stays linear; the evaluator converts it to sRGB (``srgb_space_targets``).
    """

    name = "hypersim_iid"
    split_file = "hypersim_test.txt"
    split_source = "data_split/hypersim_iid/hypersim_test.txt"
    num_samples = 5238
    min_columns = 4
    targets = ("albedo", "shading", "residual")
    srgb_space_targets = ("albedo",)
    up_to_scale_targets = ("shading", "residual")
    use_mask = True
    inference = InferenceDefaults(
        processing_resolution=0, num_inference_steps=4, ensemble_size=1, seed=1234, resample_method="bilinear"
    )
    quantile = 0.98

    def parse_line(self, cols, line_no):
        extra = {"stats_path": cols[4]} if len(cols) > 4 else {}
        return SplitEntry(stem_from_relpath(cols[0]), tuple(cols[:4]), line_no, extra)

    def load(self, entry: SplitEntry) -> EvalSample:
        rgb_path, albedo_path, shading_path, residual_path = entry.paths[:4]
        rgb = read_rgb_uint8(self.source, rgb_path)
        hw = rgb.shape[:2]
        arrays = {}
        for name, path in (("albedo", albedo_path), ("shading", shading_path), ("residual", residual_path)):
            arr = np.asarray(read_npy(self.source, path))
            self._check_shape(name, arr, hw, path)
            arrays[name] = arr.astype(np.float64)

        albedo = arrays["albedo"].astype(np.float32)
        mask_albedo = np.isfinite(albedo) & ~(albedo == 0).all(axis=2, keepdims=True)

        c = hypersim_iid_cut_off(arrays["shading"], arrays["residual"], self.quantile)
        gt = {"albedo": np.where(mask_albedo, albedo, 0.0).astype(np.float32)}
        masks = {"albedo": mask_albedo}
        for name in ("shading", "residual"):
            if np.isfinite(c) and c > 0:
                with np.errstate(invalid="ignore"):
                    norm = (np.clip(arrays[name], 0.0, c) / c).astype(np.float32)
                m = np.isfinite(norm)
            else:  # the authors' division by a zero/NaN cut-off gives NaN everywhere
                norm = np.zeros(arrays[name].shape, dtype=np.float32)
                m = np.zeros(arrays[name].shape, dtype=bool)
            gt[name] = np.where(m, norm, 0.0).astype(np.float32)
            masks[name] = m

        valid = np.ones(hw, dtype=bool)
        for m in masks.values():
            valid &= m.all(axis=2)
        meta = {
            "rgb_path": rgb_path,
            "paths": {"albedo": albedo_path, "shading": shading_path, "residual": residual_path},
            "line": entry.line_no,
            "cut_off": c,
            "masks": masks,
            **entry.extra,
        }
        return EvalSample(stem=entry.stem, rgb=rgb, gt=gt, valid_mask=valid, meta=meta)

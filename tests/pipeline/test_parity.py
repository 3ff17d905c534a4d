"""Parity of the Python API with diffusers' Marigold pipelines (same weights, same noise -> same numbers)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit import Predictor

from .oracle import oracle_predict, stack_ours

TOL = 1e-4
ALL_LAYOUTS = ["depth-v1-0", "depth-lcm-v1-0", "depth-v1-1", "normals-v1-1", "iid-appearance-v1-1", "iid-lighting-v1-1"]

_PREDICTORS: dict[str, Predictor] = {}


def predictor(checkpoints, layout) -> Predictor:
    if layout not in _PREDICTORS:
        _PREDICTORS[layout] = Predictor.from_pretrained(checkpoints[layout])
    return _PREDICTORS[layout]


def image(h, w, seed=0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8))


# (steps, ensemble, processing_resolution, batch_size, seed, size)
CASES = [
    (1, 1, 0, 1, 7, (37, 53)),
    (4, 1, 48, 1, 3, (37, 53)),
    (2, 3, 64, 1, 1, (40, 24)),
    (3, 4, 0, 1, 2, (29, 61)),
    (2, 1, 32, 3, 5, (64, 48)),
]


@pytest.mark.parametrize("layout", ALL_LAYOUTS)
@pytest.mark.parametrize("steps,ensemble,res,bs,seed,size", CASES)
def test_api_matches_diffusers(checkpoints, layout, steps, ensemble, res, bs, seed, size):
    img = image(*size, seed=seed)
    ref, ref_unc = oracle_predict(
        checkpoints[layout], img, seed, num_inference_steps=steps, ensemble_size=ensemble, processing_resolution=res
    )
    out = predictor(checkpoints, layout).predict(
        img, num_inference_steps=steps, ensemble_size=ensemble, processing_resolution=res, batch_size=bs, seed=seed
    )
    ours = stack_ours(out.targets)
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=TOL, rtol=0)
    if ensemble > 1:
        np.testing.assert_allclose(stack_ours(out.uncertainty), ref_unc, atol=TOL, rtol=0)
    else:
        assert out.uncertainty is None
    assert out.input_size == size


@pytest.mark.parametrize("layout", ["depth-v1-1", "normals-v1-1", "iid-lighting-v1-1"])
def test_no_match_input_resolution_and_resampling(checkpoints, layout):
    img = image(30, 50)
    for kwargs in (dict(match_input_resolution=False), dict(resample_method_input="bicubic",
                                                             resample_method_output="nearest")):
        ref, _ = oracle_predict(checkpoints[layout], img, 11, num_inference_steps=2, processing_resolution=40,
                                **kwargs)
        out = predictor(checkpoints, layout).predict(img, num_inference_steps=2, processing_resolution=40, seed=11,
                                                     **kwargs)
        np.testing.assert_allclose(stack_ours(out.targets), ref, atol=TOL, rtol=0)
    assert out.processing_size == (24, 40)


def test_batch_of_images_equals_each_image_alone(checkpoints):
    """Seeds are per image: a mixed-size batch equals diffusers run on every image alone."""
    layout = "iid-appearance-v1-1"
    imgs = [image(37, 53, 0), image(20, 33, 1), image(37, 53, 2), image(48, 16, 3)]
    outs = predictor(checkpoints, layout).predict(imgs, num_inference_steps=2, ensemble_size=3,
                                                  processing_resolution=0, batch_size=4, seed=21)
    assert len(outs) == len(imgs)
    for img, out in zip(imgs, outs):
        ref, ref_unc = oracle_predict(checkpoints[layout], img, 21, num_inference_steps=2, ensemble_size=3,
                                      processing_resolution=0)
        np.testing.assert_allclose(stack_ours(out.targets), ref, atol=TOL, rtol=0)
        np.testing.assert_allclose(stack_ours(out.uncertainty), ref_unc, atol=TOL, rtol=0)


def test_lcm_multistep_ensemble_batched(checkpoints):
    """LCM re-noises inside every step; the planned noise reproduces diffusers' draw order at any batch size."""
    layout = "depth-lcm-v1-0"
    img = image(33, 47, 4)
    ref, _ = oracle_predict(checkpoints[layout], img, 5, num_inference_steps=4, ensemble_size=1,
                            processing_resolution=0)
    for bs in (1, 2):
        out = predictor(checkpoints, layout).predict(img, num_inference_steps=4, seed=5, batch_size=bs,
                                                     processing_resolution=0)
        np.testing.assert_allclose(out.prediction, ref[0, ..., 0], atol=TOL, rtol=0)
    # intrinsics ensembles (median) are stable under batching; 3 members x 3 LCM-free steps in one UNet call
    ref3, unc3 = oracle_predict(checkpoints["iid-lighting-v1-1"], img, 5, num_inference_steps=3, ensemble_size=3,
                                processing_resolution=0)
    out3 = predictor(checkpoints, "iid-lighting-v1-1").predict(img, num_inference_steps=3, ensemble_size=3, seed=5,
                                                               batch_size=3, processing_resolution=0)
    np.testing.assert_allclose(stack_ours(out3.targets), ref3, atol=TOL, rtol=0)
    np.testing.assert_allclose(stack_ours(out3.uncertainty), unc3, atol=TOL, rtol=0)


def test_ensembling_kwargs_mean_reduction(checkpoints):
    img = image(24, 40, 9)
    for layout, red in (("depth-v1-1", "mean"), ("normals-v1-1", "mean"), ("iid-lighting-v1-1", "mean")):
        ref, ref_unc = oracle_predict(checkpoints[layout], img, 2, num_inference_steps=1, ensemble_size=3,
                                      ensembling_kwargs={"reduction": red}, processing_resolution=0)
        out = predictor(checkpoints, layout).predict(img, num_inference_steps=1, ensemble_size=3, seed=2,
                                                     ensembling_kwargs={"reduction": red}, processing_resolution=0)
        np.testing.assert_allclose(stack_ours(out.targets), ref, atol=TOL, rtol=0)
        np.testing.assert_allclose(stack_ours(out.uncertainty), ref_unc, atol=TOL, rtol=0)


def test_defaults_come_from_model_index(checkpoints, tmp_path):
    """No argument given: steps and resolution are the checkpoint's own model_index defaults, whatever its name."""
    import json
    import shutil

    img = image(20, 30, 1)
    for layout, steps in (("depth-v1-0", 3), ("depth-lcm-v1-0", 2)):
        folder = tmp_path / f"renamed-{steps}"
        shutil.copytree(checkpoints[layout], folder)
        index = json.loads((folder / "model_index.json").read_text())
        index.update(default_denoising_steps=steps, default_processing_resolution=24)
        (folder / "model_index.json").write_text(json.dumps(index))
        p = Predictor.from_pretrained(folder)
        out = p.predict(img, seed=0)
        assert out.settings["num_inference_steps"] == steps
        assert out.settings["processing_resolution"] == 24
        assert out.processing_size == (16, 24)
        ref, _ = oracle_predict(checkpoints[layout], img, 0, num_inference_steps=steps, processing_resolution=24)
        np.testing.assert_allclose(out.prediction, ref[0, ..., 0], atol=TOL, rtol=0)


def test_output_ranges_and_shapes(checkpoints):
    img = image(21, 35, 3)
    d = predictor(checkpoints, "depth-v1-1").predict(img, num_inference_steps=1, seed=0, ensemble_size=3,
                                                     batch_size=3, processing_resolution=0)
    assert d.prediction.shape == (21, 35) and 0.0 <= d.prediction.min() and d.prediction.max() <= 1.0
    assert d.uncertainty["depth"].shape == (21, 35) and d.uncertainty["depth"].min() >= 0
    n = predictor(checkpoints, "normals-v1-1").predict(img, num_inference_steps=1, seed=0, processing_resolution=0)
    assert n.prediction.shape == (21, 35, 3)
    np.testing.assert_allclose(np.linalg.norm(n.prediction, axis=-1), 1.0, atol=1e-5)
    i = predictor(checkpoints, "iid-appearance-v1-1").predict(img, num_inference_steps=1, seed=0, processing_resolution=0)
    assert list(i.targets) == ["albedo", "material"] and i.prediction.shape == (2, 21, 35, 3)
    assert all(0.0 <= v.min() and v.max() <= 1.0 for v in i.targets.values())


def test_input_kinds_are_equivalent(checkpoints, tmp_path):
    """PIL image, uint8 array, float array, tensor and file path give the same prediction."""
    import torch

    arr = np.asarray(image(26, 34, 8))
    path = tmp_path / "in.png"
    Image.fromarray(arr).save(path)
    p = predictor(checkpoints, "depth-v1-1")
    kw = dict(num_inference_steps=1, seed=3, processing_resolution=0)
    ref = p.predict(Image.fromarray(arr), **kw).prediction
    for inp in (arr, arr.astype(np.float32) / 255, str(path), path):
        np.testing.assert_allclose(p.predict(inp, **kw).prediction, ref, atol=1e-5)
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255
    np.testing.assert_allclose(p.predict(t, **kw).prediction, ref, atol=1e-4)


def test_bad_arguments(checkpoints):
    p = predictor(checkpoints, "depth-v1-1")
    img = image(32, 32)
    with pytest.raises(ValueError, match="ensemble_size"):
        p.predict(img, ensemble_size=0)
    with pytest.raises(ValueError, match="uncertainty"):
        p.predict(img, output_uncertainty=True)
    with pytest.raises(ValueError, match="resampling"):
        p.predict(img, resample_method_input="lanczos")
    with pytest.raises(ValueError, match="num_inference_steps"):
        p.predict(img, num_inference_steps=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        p.predict(np.full((8, 8, 3), 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match="reduction"):
        p.predict(img, ensemble_size=2, ensembling_kwargs={"reduction": "closest"}, processing_resolution=0,
                  num_inference_steps=1)


def test_vae_tiling_for_large_inputs(checkpoints):
    """Tiled VAE encode/decode engages above the tile size only; below it the result is unchanged."""
    tiled = Predictor.from_pretrained(checkpoints["depth-v1-1"], vae_tiling=True)
    plain = predictor(checkpoints, "depth-v1-1")
    calls = {"encode": 0, "decode": 0}
    enc, dec = tiled.vae._tiled_encode, tiled.vae.tiled_decode

    def count_enc(*a, **k):
        calls["encode"] += 1
        return enc(*a, **k)

    def count_dec(*a, **k):
        calls["decode"] += 1
        return dec(*a, **k)

    tiled.vae._tiled_encode, tiled.vae.tiled_decode = count_enc, count_dec
    kw = dict(num_inference_steps=1, seed=0, processing_resolution=0)
    small = image(40, 48, 2)
    np.testing.assert_array_equal(tiled.predict(small, **kw).prediction, plain.predict(small, **kw).prediction)
    assert calls == {"encode": 0, "decode": 0}
    big = image(150, 180, 3)
    out = tiled.predict(big, **kw).prediction
    assert calls["encode"] >= 1 and calls["decode"] >= 1
    assert out.shape == (150, 180) and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


def test_vae_tile_size_sets_the_tiles(checkpoints):
    """``vae_tile_size`` picks the tile edge (pixels / latent stride), so an input the default tiles would leave
    whole is tiled; bad sizes are one-line errors."""
    from marigold_toolkit.checkpoints.loading import enable_vae_tiling

    tiled = Predictor.from_pretrained(checkpoints["depth-v1-1"], vae_tiling=True, vae_tile_size=32)
    stride = tiled.latent_stride
    assert (tiled.vae.tile_sample_min_size, tiled.vae.tile_latent_min_size) == (32, 32 // stride)
    plain = predictor(checkpoints, "depth-v1-1")
    kw = dict(num_inference_steps=1, seed=0, processing_resolution=0)
    img = image(40, 48, 4)
    a, b = tiled.predict(img, **kw).prediction, plain.predict(img, **kw).prediction
    assert a.shape == b.shape and np.isfinite(a).all() and not np.array_equal(a, b)  # tiles change the numbers
    for bad in (stride + 1, stride, 2 * stride):  # 16 px: 12 px tile steps, not a multiple of the stride
        with pytest.raises(ValueError, match="tile size") as info:
            enable_vae_tiling(plain.vae, bad)
        assert "\n" not in str(info.value)

"""A depth checkpoint that predicts disparity (``prediction_type: "disparity"``, the tiny random checkpoint in the
layout diffusers' MarigoldDepthPipeline saves): it loads as disparity and equals diffusers' pipeline on it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit import Predictor
from marigold_toolkit.checkpoints import read_spec

from .oracle import oracle, oracle_predict

LAYOUT = "depth-disparity-v1-1"
TOL = 1e-4


def _image(h, w, seed=0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def predictor(checkpoints) -> Predictor:
    return Predictor.from_pretrained(checkpoints[LAYOUT])


def test_loads_as_disparity(checkpoints, predictor):
    spec = read_spec(checkpoints[LAYOUT])
    assert spec.prediction_type == "disparity" and spec.task.prediction_space == "disparity"
    assert predictor.target_names == ["disparity"]
    assert oracle(checkpoints[LAYOUT]).config.prediction_type == "disparity"


@pytest.mark.parametrize("steps,ensemble,res,seed,size", [(1, 1, 0, 7, (37, 53)), (2, 3, 48, 1, (40, 24))])
def test_equals_diffusers(checkpoints, predictor, steps, ensemble, res, seed, size):
    img = _image(*size, seed=seed)
    ref, ref_unc = oracle_predict(checkpoints[LAYOUT], img, seed, num_inference_steps=steps, ensemble_size=ensemble,
                                  processing_resolution=res)
    out = predictor.predict(img, num_inference_steps=steps, ensemble_size=ensemble, processing_resolution=res,
                            seed=seed)
    assert list(out.targets) == ["disparity"] and out.prediction.shape == size
    np.testing.assert_allclose(out.targets["disparity"], ref[0, ..., 0], atol=TOL, rtol=0)
    if ensemble > 1:
        np.testing.assert_allclose(out.uncertainty["disparity"], ref_unc[0, ..., 0], atol=TOL, rtol=0)


def test_high_resolution_tiles_a_disparity(predictor):
    out = predictor.predict(_image(48, 64, 3), num_inference_steps=1, processing_resolution=32, seed=0,
                            high_resolution=True)
    assert list(out.targets) == ["disparity"] and out.prediction.shape == (48, 64)
    assert np.isfinite(out.prediction).all() and 0 <= out.prediction.min() <= out.prediction.max() <= 1

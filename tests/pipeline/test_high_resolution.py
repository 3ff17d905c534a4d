"""High-resolution prediction (global pass + aligned native-resolution tiles) and its building blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marigold_toolkit import HighResolution, Predictor
from marigold_toolkit.core.tiles import border_weights, tile_grid, tile_starts
from marigold_toolkit.pipeline.high_resolution import predict_high_resolution
from marigold_toolkit.pipeline.outputs import MarigoldOutput
from marigold_toolkit.tasks import get_task
from marigold_toolkit.tasks.depth.boundaries import boundary_metrics

from ..cli._helpers import run_cli


@pytest.mark.parametrize("length,tile,overlap", [(1024, 256, 0.5), (1000, 160, 0.5), (777, 100, 0.25), (50, 64, 0.5),
                                                 (513, 512, 0.0), (4000, 768, 0.75)])
def test_tiles_cover_the_image_with_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    t = min(tile, length)
    assert starts[0] == 0 and starts[-1] + t == length and starts == sorted(set(starts))
    for a, b in zip(starts, starts[1:]):
        assert a + t - b >= overlap * t - 1e-9  # shared pixels between neighbours
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + t] = True
    assert covered.all()


def test_grid_and_weights():
    tiles = tile_grid(300, 500, 200, 0.5)
    assert {(t.h, t.w) for t in tiles} == {(200, 200)} and len(tiles) == 2 * 4
    w = border_weights(5, 6)
    assert w.shape == (5, 6) and w.min() > 0 and w.max() == 1.0
    assert w[2, 2] == w[2, 3] == 1.0 and w[0, 0] == pytest.approx((1 / 3) * (1 / 3))
    np.testing.assert_array_equal(w, w[::-1, ::-1])  # symmetric


# -- blending, analytic: a stand-in model that sees the pixel coordinates ------------------------------------------
def _truth(y, x):
    return 0.2 + 0.5 * (x / 300.0) + 0.2 * np.sin(y / 9.0) * (x > 150)  # a depth with a step and fine detail


class _CoordinateModel:
    """Predicts depth from the coordinates encoded in the image (R = y / 1000, G = x / 1000): the global pass
    sees a coarse version (the detail averaged away), every tile the exact depth in an affine frame of its own."""

    def __init__(self):
        self.task = get_task("depth")()
        self.calls = []
        self.rng = np.random.default_rng(0)

    def _depth(self, img, coarse):
        y, x = img[0, 0].numpy() * 1000, img[0, 1].numpy() * 1000
        d = _truth(y, x)
        if coarse:
            k = 12
            h, w = d.shape
            d = d[: h // k * k, : w // k * k].reshape(h // k, k, w // k, k).mean(axis=(1, 3))
            d = np.kron(d, np.ones((k, k)))
            d = np.pad(d, ((0, h - d.shape[0]), (0, w - d.shape[1])), mode="edge")
        return d.astype(np.float32)

    def predict(self, images, processing_resolution, seed=None, batch_size=1, **kwargs):
        single = not isinstance(images, list)
        self.calls.append(1 if single else len(images))
        outs = []
        for img in [images] if single else images:
            if single:  # the global pass
                d = self._depth(img, coarse=True)
            else:
                a, b = self.rng.uniform(0.3, 3.0), self.rng.uniform(-1, 1)
                d = a * self._depth(img, coarse=False) + b
            outs.append(MarigoldOutput(task="depth", targets={"depth": d}, input_size=d.shape,
                                       processing_size=d.shape, settings={"seed": seed}))
        return outs[0] if single else outs


def _coordinate_image(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return torch.from_numpy(np.stack([y / 1000, x / 1000, np.zeros_like(x)]))[None]


def test_tiles_restore_detail_the_global_pass_lost():
    h, w = 180, 300
    model = _CoordinateModel()
    img = _coordinate_image(h, w)
    out = predict_high_resolution(model, img, HighResolution(overlap=0.5, tile_size=64), processing_resolution=64,
                                  seed=3, batch_size=4)
    truth = _truth(*np.mgrid[0:h, 0:w].astype(np.float64))
    coarse = model._depth(img, coarse=True)
    err_hr = np.abs(out.targets["depth"] - truth).mean()
    err_global = np.abs(coarse - truth).mean()
    # the tiles carry the exact detail and their affine frames are undone; what is left is the fit against a
    # coarse reference (the box filter lowers the reference's variance over a tile, so the fitted scale is a bit < 1)
    assert err_hr < 0.4 * err_global
    assert np.abs(out.targets["depth"] - truth).max() < 0.5 * np.abs(coarse - truth).max()
    n = len(tile_grid(h, w, 64, 0.5))
    assert out.settings["high_resolution"] == {"overlap": 0.5, "tile_size": 64, "tiles": n}
    assert model.calls[0] == 1 and sum(model.calls[1:]) == n and max(model.calls[1:]) <= 4  # chunks of batch_size


class _ExactModel(_CoordinateModel):
    def _depth(self, img, coarse):
        return super()._depth(img, coarse=False)


def test_exact_tiles_and_global_pass_blend_to_the_truth():
    """Tiles exact up to their affine frames and an exact global pass -> the truth, whatever the overlap."""
    model = _ExactModel()
    img = _coordinate_image(40, 60)
    out = predict_high_resolution(model, img, HighResolution(0.5, 24), processing_resolution=24)
    truth = _truth(*np.mgrid[0:40, 0:60].astype(np.float64))
    np.testing.assert_allclose(out.targets["depth"], truth, atol=1e-5)


# -- the real pipeline on a tiny checkpoint ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def depth_predictor(checkpoints):
    return Predictor.from_pretrained(checkpoints["depth-v1-1"])


def test_predictor_high_resolution_equals_its_parts(depth_predictor):
    """The Predictor path: global pass with ``seed``, tile k with ``seed + 1 + k``, least-squares alignment to the
    upsampled global prediction, border-weighted blend, clip — recomputed here from the public pieces."""
    rng = np.random.default_rng(0)
    img = rng.random((40, 72, 3)).astype(np.float32)
    hr = HighResolution(overlap=0.5, tile_size=32)
    out = depth_predictor.predict(img, num_inference_steps=1, processing_resolution=32, seed=5, batch_size=2,
                                  high_resolution=hr)
    assert out.targets["depth"].shape == (40, 72) and out.input_size == (40, 72)
    glob = depth_predictor.predict(img, num_inference_steps=1, processing_resolution=32, seed=5)
    tiles = tile_grid(40, 72, 32, 0.5)
    acc, wsum, flipped = np.zeros((40, 72)), np.zeros((40, 72)), 0
    for k, t in enumerate(tiles):
        ys, xs = t.slices
        tile = depth_predictor.predict(img[ys, xs], num_inference_steps=1, processing_resolution=0,
                                       seed=5 + 1 + k).targets["depth"].astype(np.float64)
        ref = glob.targets["depth"][ys, xs].astype(np.float64)
        a = np.stack([tile.ravel(), np.ones(tile.size)], 1)
        s, b = np.linalg.lstsq(a, ref.ravel(), rcond=None)[0]
        flipped += s <= 0
        wt = border_weights(t.h, t.w)
        acc[ys, xs] += wt * ((s * tile + b) if s > 0 else ref)  # a flipped fit keeps the global prediction
        wsum[ys, xs] += wt
    np.testing.assert_allclose(out.targets["depth"], np.clip(acc / wsum, 0, 1), atol=2e-5)
    assert 0 < flipped < len(tiles)  # this random model exercises both paths
    again = depth_predictor.predict(img, num_inference_steps=1, processing_resolution=32, seed=5, batch_size=1,
                                    high_resolution=hr)
    np.testing.assert_allclose(again.targets["depth"], out.targets["depth"], atol=1e-5)  # chunking changes nothing
    # the predictor-level default, and switching it off per call
    hr_default = Predictor(depth_predictor.components, high_resolution=hr)
    np.testing.assert_allclose(hr_default.predict(img, num_inference_steps=1, processing_resolution=32, seed=5,
                                                  batch_size=2).targets["depth"], out.targets["depth"], atol=1e-6)
    off = hr_default.predict(img, num_inference_steps=1, processing_resolution=32, seed=5, high_resolution=False)
    np.testing.assert_array_equal(off.targets["depth"], glob.targets["depth"])


def test_high_resolution_uncertainty_and_errors(depth_predictor, checkpoints):
    img = np.random.default_rng(1).random((36, 50, 3)).astype(np.float32)
    out = depth_predictor.predict(img, num_inference_steps=1, ensemble_size=2, processing_resolution=32, seed=0,
                                  high_resolution=True)
    assert out.uncertainty["depth"].shape == (36, 50) and (out.uncertainty["depth"] >= 0).all()
    with pytest.raises(ValueError, match="match_input_resolution"):
        depth_predictor.predict(img, processing_resolution=32, match_input_resolution=False, high_resolution=True)
    with pytest.raises(ValueError, match="processing_resolution > 0"):
        depth_predictor.predict(img, processing_resolution=0, high_resolution=True)
    with pytest.raises(ValueError, match="seed, not generator"):
        depth_predictor.predict(img, processing_resolution=32, generator=torch.Generator(), high_resolution=True)
    with pytest.raises(ValueError, match="overlap must be in"):
        HighResolution(overlap=1.0)
    normals = Predictor.from_pretrained(checkpoints["normals-v1-1"])
    with pytest.raises(ValueError, match="not defined for the normals task"):
        normals.predict(img, processing_resolution=32, high_resolution=True)


def test_cli_hr(tmp_path, checkpoints, capsys):
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray((np.random.default_rng(2).random((48, 80, 3)) * 255).astype(np.uint8)).save(src / "a.png")
    base = ["predict", str(src), "--steps", "1", "--processing-resolution", "32"]
    code, _, err = run_cli(capsys, *base, "--model", str(checkpoints["depth-v1-1"]), "--output-dir",
                           str(tmp_path / "o"), "--hr", "--hr-overlap", "0.25", "--seed", "1")
    assert code == 0, err
    depth = np.load(tmp_path / "o" / "a_depth.npy")
    assert depth.shape == (48, 80)
    pred = Predictor.from_pretrained(checkpoints["depth-v1-1"])
    ref = pred.predict(np.asarray(Image.open(src / "a.png")), num_inference_steps=1, processing_resolution=32,
                       seed=1, high_resolution=HighResolution(overlap=0.25))
    np.testing.assert_allclose(depth, ref.targets["depth"], atol=1e-5)
    for extra, message in ((["--model", str(checkpoints["normals-v1-1"]), "--hr"], "needs a depth model"),
                           (["--model", str(checkpoints["depth-v1-1"]), "--hr", "--hr-overlap", "1"], "--hr-overlap"),
                           (["--model", str(checkpoints["depth-v1-1"]), "--hr", "--no-match-input-resolution"],
                            "input resolution")):
        code, _, err = run_cli(capsys, *base, *extra, "--output-dir", str(tmp_path / "x"))
        assert code == 2 and message in err, err


# -- the boundary metric ------------------------------------------------------------------------------------------
def test_boundary_metrics_hand_computed():
    gt = np.ones((4, 6))
    gt[:, 3:] = 2.0  # one vertical step: 4 boundary pairs (columns 2|3 in every row), no vertical pair
    pred = gt.copy()
    pred[0, :] = 1.0  # row 0 loses its step (3 of 4 found) and gains 3 vertical pairs (rows 0|1, columns 3-5)
    pred[3, 5] = 1.5  # ratio 4/3 against both neighbours: pairs (row 3, columns 4|5) and (column 5, rows 2|3)
    m = boundary_metrics(pred, gt, thresholds=(1.1,))
    assert m["boundary_precision"] == pytest.approx(3 / 8)
    assert m["boundary_recall"] == pytest.approx(3 / 4)
    assert m["boundary_f1"] == pytest.approx(2 * (3 / 8) * (3 / 4) / (3 / 8 + 3 / 4))
    m = boundary_metrics(pred, gt, thresholds=(1.5,))  # the 4/3 pairs drop out
    assert (m["boundary_precision"], m["boundary_recall"]) == (0.5, 0.75)
    m = boundary_metrics(pred, gt, thresholds=(1.1, 1.5))  # averaged over thresholds
    assert m["boundary_precision"] == pytest.approx((3 / 8 + 0.5) / 2)
    # masked pixels drop their pairs; scale does not matter
    mask = np.ones_like(gt, bool)
    mask[0] = False
    m = boundary_metrics(7 * pred, gt, mask, thresholds=(1.5,))
    assert (m["boundary_precision"], m["boundary_recall"]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="no valid neighbour pair"):
        boundary_metrics(pred, gt, np.zeros_like(mask))


def test_boundary_baseline_tolerates_a_blurred_edge():
    gt = np.ones((8, 40))
    gt[:, 20:] = 2.0
    x = np.arange(40, dtype=np.float64)
    pred = np.broadcast_to(1.0 + np.clip((x - 16) / 8, 0, 1), (8, 40)).copy()  # the step as an 8-pixel ramp
    assert boundary_metrics(pred, gt, thresholds=(1.5,))["boundary_f1"] == 0.0  # no neighbour pair jumps 1.5x
    m = boundary_metrics(pred, gt, thresholds=(1.5,), baseline=8)
    assert m["boundary_f1"] > 0.5 and m["boundary_precision"] == 1.0
    with pytest.raises(ValueError, match="baseline"):
        boundary_metrics(pred, gt, baseline=0)

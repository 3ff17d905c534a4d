"""Marigold-DC depth completion: the first guidance step pinned by hand on a tiny checkpoint, the optimiser's
learning rates, the guidance loss falling on the bundled demo model, the CLI contract, and (opt-in) bitwise
agreement with the authors' own implementation."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from marigold_toolkit import Predictor
from marigold_toolkit.core.image import resize, unpad
from marigold_toolkit.io.images import load_image
from marigold_toolkit.pipeline.completion import CompletionError, complete_depth
from marigold_toolkit.testing import build_random_checkpoint

from ..cli._helpers import run_cli, save_image

H, W = 37, 53


@pytest.fixture(scope="module")
def dc_ckpt(tmp_path_factory):
    return build_random_checkpoint(tmp_path_factory.mktemp("dc") / "depth-v1-0", "depth-v1-0", seed=5)


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    image = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    sparse = np.zeros((H, W), np.float32)
    sparse.reshape(-1)[rng.choice(H * W, 40, replace=False)] = rng.uniform(1, 5, 40)
    return image, sparse


def test_first_guidance_step_by_hand(dc_ckpt):
    """One step, one member: the loss is L1 + MSE of the x0 preview's metric depth (a = b = 1) at the sparse
    pixels, and Adam's first step moves a and b by exactly their learning rate (0.005)."""
    from diffusers import DDIMScheduler

    image, sparse = _inputs()
    p = Predictor.from_pretrained(dc_ckpt, device="cpu")
    out = complete_depth(p, image, sparse, num_inference_steps=1, processing_resolution=64, seed=7)
    x, padding, in_size, _ = p.prepare_image(image, 64)
    sched = DDIMScheduler.from_config(p.scheduler.config, timestep_spacing="trailing")
    sched.set_timesteps(1)
    t = sched.timesteps[0]
    assert int(t) == 999  # trailing spacing starts at the last training step
    with torch.no_grad():
        cond = p.vae.encode(x).latent_dist.mode() * p.vae.config.scaling_factor
        z = torch.randn(cond.shape, generator=torch.Generator().manual_seed(7))
        v = p.unet(torch.cat([cond, z], 1), t, encoder_hidden_states=p.components.empty_text_embedding).sample
        x0 = sched.step(v, t, z).pred_original_sample
        d = ((p.vae.decode(x0 / p.vae.config.scaling_factor).sample.mean(1, keepdim=True).clip(-1, 1) + 1) / 2)
        lo, hi = sparse[sparse > 0].min(), sparse[sparse > 0].max()
        metric = resize(unpad((hi - lo) * d + lo, padding), in_size, "bilinear")[0, 0].numpy()
    m = sparse > 0
    err = metric[m] - sparse[m]
    expected = np.abs(err).mean() + (err ** 2).mean()
    assert out.losses[0][0] == pytest.approx(float(expected), rel=1e-5)
    (scale, shift), = out.scale_shift
    a, b = np.sqrt(scale / (hi - lo)), np.sqrt(shift / lo)
    assert abs(a - 1) == pytest.approx(0.005, rel=1e-3) and abs(b - 1) == pytest.approx(0.005, rel=1e-3)
    assert out.depth.shape == (H, W) and out.members.shape == (1, H, W)
    assert out.settings["sparse_points"] == 40 and out.settings["num_inference_steps"] == 1


def test_ensemble_is_the_median_of_the_members(dc_ckpt):
    image, sparse = _inputs(1)
    out = complete_depth(Predictor.from_pretrained(dc_ckpt), image, sparse, num_inference_steps=2, ensemble_size=3,
                         processing_resolution=64, seed=0)
    np.testing.assert_array_equal(out.depth, np.median(out.members, axis=0))
    assert len(out.losses) == 3 and all(len(c) == 2 for c in out.losses)
    assert not np.allclose(out.members[0], out.members[1])  # each member has its own initial noise


def test_guidance_loss_falls_on_the_demo_model():
    p = Predictor.from_pretrained("demo-depth")
    img = load_image("examples/coffee.jpg")
    d = p.predict(img, seed=0).prediction
    rng = np.random.default_rng(0)
    sparse = np.zeros_like(d)
    idx = rng.choice(d.size, 200, replace=False)
    sparse.reshape(-1)[idx] = 3 * d.reshape(-1)[idx] + 1
    out = complete_depth(p, img, sparse, num_inference_steps=10, seed=0)
    assert out.losses[0][-1] < 0.3 * out.losses[0][0]
    assert np.abs(out.depth - (3 * d + 1)).mean() < np.abs((np.ptp(sparse[sparse > 0]) * d + 1) - (3 * d + 1)).mean()


def test_bad_inputs(dc_ckpt, checkpoints):
    image, sparse = _inputs()
    p = Predictor.from_pretrained(dc_ckpt)
    with pytest.raises(CompletionError, match="no measurement"):
        complete_depth(p, image, np.zeros_like(sparse), num_inference_steps=1)
    with pytest.raises(CompletionError, match="but the image is"):
        complete_depth(p, image, sparse[:-1], num_inference_steps=1)
    with pytest.raises(CompletionError, match="needs a depth checkpoint"):
        complete_depth(Predictor.from_pretrained(checkpoints["normals-v1-1"]), image, sparse)


def test_cli_contract(dc_ckpt, checkpoints, tmp_path, capsys):
    image, sparse = _inputs(2)
    photos = tmp_path / "in"
    photos.mkdir()
    Image.fromarray(image).save(photos / "a.png")
    save_image(photos / "b.png", H, W, seed=9)
    sparse_dir = tmp_path / "sparse"
    sparse_dir.mkdir()
    np.save(sparse_dir / "a.npy", sparse)
    out = tmp_path / "out"
    args = ["complete", photos, "--sparse-depth", sparse_dir, "--model", dc_ckpt, "--output-dir", out, "--steps", 2,
            "--processing-resolution", 64, "--seed", 3, "--device", "cpu", "--export", "ply,exr", "--fov-x", 60]
    code, _, err = run_cli(capsys, *args)
    assert code == 1 and "b.png: no sparse depth" in err  # b has no measurements; a is still completed
    assert sorted(p.name for p in out.iterdir()) == ["a_depth.exr", "a_depth_metric.json", "a_depth_metric.npy",
                                                     "a_points.ply"]
    ref = complete_depth(Predictor.from_pretrained(dc_ckpt, device="cpu"), image, sparse, num_inference_steps=2,
                         processing_resolution=64, seed=3)
    np.testing.assert_array_equal(np.load(out / "a_depth_metric.npy"), ref.depth)
    record = json.loads((out / "a_depth_metric.json").read_text())
    assert record["method"] == "Marigold-DC" and record["settings"]["num_inference_steps"] == 2
    assert record["members"][0]["loss_first"] == pytest.approx(ref.losses[0][0])
    assert b"units: metres (Marigold-DC" in (out / "a_points.ply").read_bytes()[:600]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _, _ = run_cli(capsys, *args)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # resume: nothing recomputed
    code, _, err = run_cli(capsys, "complete", photos / "a.png", "--sparse-depth", sparse_dir / "a.npy", "--model",
                           checkpoints["normals-v1-1"], "--output-dir", tmp_path / "o2")
    assert code == 2 and "needs a depth checkpoint" in err


@pytest.mark.skipif(not os.environ.get("MARIGOLD_DC_SRC"), reason="set MARIGOLD_DC_SRC to the authors' marigold_dc.py "
                    "(prs-eth/Marigold-DC) to compare with their implementation")
@pytest.mark.parametrize("ensemble", [1, 3])
def test_equals_the_authors_implementation(dc_ckpt, ensemble):
    from diffusers import DDIMScheduler

    spec = importlib.util.spec_from_file_location("marigold_dc", os.environ["MARIGOLD_DC_SRC"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    image, sparse = _inputs()
    pipe = module.MarigoldDepthCompletionPipeline.from_pretrained(dc_ckpt, prediction_type="depth")
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(image=Image.fromarray(image), sparse_depth=sparse, num_inference_steps=5, ensemble_size=ensemble,
               processing_resolution=64, seed=2024)
    ours = complete_depth(Predictor.from_pretrained(dc_ckpt), image, sparse, num_inference_steps=5,
                          ensemble_size=ensemble, processing_resolution=64, seed=2024)
    np.testing.assert_allclose(ours.depth, ref, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_completion_beats_the_sparse_fit_on_rendered_scenes(tmp_path):
    """On rendered tabletop scenes (``marigold synth``) with 300 points sampled from the ground truth, Marigold-DC
    with the demo model ends closer to the ground truth (AbsRel over every valid pixel) than the robust sparse fit
    of the same prediction, and its guidance loss falls."""
    pytest.importorskip("mitsuba")
    from marigold_toolkit.synth import render_dataset
    from marigold_toolkit.tasks.depth.metric import fit_metric

    root = tmp_path / "synth"
    render_dataset(root, 2, seed=31, resolution=(72, 96), spp=4, progress=False, families=("tabletop",))
    p = Predictor.from_pretrained("demo-depth")
    for stem in ("000000", "000001"):
        rgb = np.asarray(Image.open(root / "rgb" / f"{stem}.png").convert("RGB"))
        gt = np.load(root / "depth" / f"{stem}.npy")
        valid = gt > 0
        sparse = np.zeros_like(gt)
        pick = np.random.default_rng(0).choice(np.flatnonzero(valid), 300, replace=False)
        sparse.reshape(-1)[pick] = gt.reshape(-1)[pick]
        fitted, _ = fit_metric(p.predict(rgb, seed=0).prediction, sparse)
        out = complete_depth(p, rgb, sparse, num_inference_steps=20, seed=2024)

        def abs_rel(x):
            return float(np.mean(np.abs(x[valid] - gt[valid]) / gt[valid]))

        assert abs_rel(out.depth) < abs_rel(fitted), (stem, abs_rel(out.depth), abs_rel(fitted))
        assert out.losses[0][-1] < 0.7 * out.losses[0][0]

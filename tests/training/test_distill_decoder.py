"""``marigold distill-decoder`` (issue 15, item 3): a tiny decoder learns the checkpoint's full decoder on the task's
own latents, resumes exactly after a kill, refuses a work folder of other settings, and loads with --decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from marigold_toolkit import Predictor
from marigold_toolkit.checkpoints.loading import load_components
from marigold_toolkit.checkpoints.tiny_decoder import load_tiny_decoder, new_tiny_decoder, read_report
from marigold_toolkit.training import distill_decoder as dd
from marigold_toolkit.training.distill_decoder import DistillConfig, DistillError, distill_decoder, work_folder


def _write_depth_folder(root, n=10, hw=(32, 48), seed=0):
    """A folder-layout depth set: tilted planes plus a sphere, with a shaded RGB of them."""
    rng = np.random.default_rng(seed)
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    for i in range(n):
        a, b, c = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(2, 4)
        depth = c + a * xx + b * yy
        cy, cx, r = rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.25)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
        depth = np.where(inside, depth - 1.0, depth).astype(np.float32)
        np.save(root / "depth" / f"{i:03d}.npy", depth)
        rgb = np.stack([depth / depth.max()] * 3, -1) * rng.uniform(0.5, 1.0, 3)
        Image.fromarray((rgb * 255).clip(0, 255).astype(np.uint8)).save(root / "rgb" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _write_depth_folder(tmp_path_factory.mktemp("distill") / "data")


def _cfg(depth_ckpt, data, out, **kw):
    base = dict(checkpoint=str(depth_ckpt), output=out, data=[data], width=8, blocks=(1, 1, 1, 1), steps=40,
                batch_size=4, lr=3e-3, crop=4, holdout=3, save_every=10, device="cpu")
    base.update(kw)
    return DistillConfig(**base)


def test_student_learns_the_teacher_and_loads_as_a_decoder(depth_ckpt, data, tmp_path):
    report = distill_decoder(_cfg(depth_ckpt, data, tmp_path / "dec", steps=120), progress=False)
    assert report["task"] == "depth" and report["deviation_key"] == "absrel" and report["decoder_only"]
    assert report["data"]["holdout_rows"] == 3 and report["data"]["train_rows"] == 7
    assert read_report(tmp_path / "dec") == json.loads(json.dumps(report))
    # the held-out deviation beats an untrained student of the same architecture, measured the same way
    comps = load_components(depth_ckpt, device="cpu")
    zs, ys, rows = dd.read_latents(work_folder(tmp_path / "dec") / "latents.safetensors")
    torch.manual_seed(0)
    fresh = new_tiny_decoder(4, 8, (1, 1, 1, 1))
    untrained = dd.held_out_deviation(comps.spec.task, lambda z: fresh.decode(z).sample, zs, ys, rows)
    trained = report["held_out_deviation"]
    assert trained["samples"] == 3 and trained["absrel"] < 0.5 * untrained["absrel"]
    # the teacher images in the cache are the full decoder's output for those latents
    sf = comps.vae.config.scaling_factor
    with torch.no_grad():
        np.testing.assert_allclose(comps.vae.decode(zs[0][None] / sf).sample[0].numpy(), ys[0].float().numpy(),
                                   atol=2e-3)
    # usable as --decoder, and the predictor's decode equals the student's on the same latents
    tiny = load_tiny_decoder(tmp_path / "dec")
    p = Predictor.from_pretrained(depth_ckpt, decoder=tmp_path / "dec")
    out = p.predict(np.zeros((32, 48, 3), np.uint8), processing_resolution=0, seed=0, output_latent=True,
                    num_inference_steps=1)
    with torch.no_grad():
        expected = p.task.decode(tiny.decode(out.latent).sample)[0, 0].numpy()
    np.testing.assert_allclose(out.prediction, expected, atol=1e-5)


def test_a_killed_run_resumes_to_the_same_weights(depth_ckpt, data, tmp_path, monkeypatch):
    full = distill_decoder(_cfg(depth_ckpt, data, tmp_path / "a"), progress=False)
    real_step = torch.optim.Adam.step
    calls = {"n": 0}

    def dying_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 26:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        distill_decoder(_cfg(depth_ckpt, data, tmp_path / "b"), progress=False)
    assert not (tmp_path / "b").exists() and (work_folder(tmp_path / "b") / "state.pt").is_file()
    monkeypatch.setattr(torch.optim.Adam, "step", real_step)
    resumed = distill_decoder(_cfg(depth_ckpt, data, tmp_path / "b"), progress=False)
    a, b = load_tiny_decoder(tmp_path / "a"), load_tiny_decoder(tmp_path / "b")
    for (name, x), (_, y) in zip(a.decoder.state_dict().items(), b.decoder.state_dict().items()):
        assert torch.equal(x, y), name
    assert resumed["held_out_deviation"] == full["held_out_deviation"]


def test_other_settings_and_bad_data_are_refused(depth_ckpt, data, tmp_path):
    distill_decoder(_cfg(depth_ckpt, data, tmp_path / "d", steps=5), progress=False)
    with pytest.raises(DistillError, match="other settings") as info:
        distill_decoder(_cfg(depth_ckpt, data, tmp_path / "d", steps=5, width=4), progress=False)
    assert "\n" not in str(info.value)
    distill_decoder(_cfg(depth_ckpt, data, tmp_path / "d", steps=5, width=4), overwrite=True, progress=False)
    assert read_report(tmp_path / "d")["architecture"]["width"] == 4
    with pytest.raises(DistillError, match="missing"):
        distill_decoder(_cfg(depth_ckpt, tmp_path / "missing", tmp_path / "e", steps=5), progress=False)
    with pytest.raises(DistillError, match="steps"):
        distill_decoder(_cfg(depth_ckpt, data, tmp_path / "f", steps=0), progress=False)


def test_cli(depth_ckpt, data, tmp_path, capsys):
    from marigold_toolkit.cli.main import main

    rc = main(["distill-decoder", str(depth_ckpt), "--output", str(tmp_path / "cli"), "--data", str(data),
               "--width", "4", "--blocks", "1,1,1,1", "--steps", "3", "--crop", "4", "--holdout", "2",
               "--device", "cpu"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["deviation_key"] == "absrel" and printed["held_out_deviation"]["samples"] == 2
    assert main(["distill-decoder", str(depth_ckpt), "--output", str(tmp_path / "x"), "--data",
                 str(tmp_path / "nope")]) == 2

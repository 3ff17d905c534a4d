"""The video modes end to end on tiny checkpoints: latent-init against diffusers' own recipe, the output files,
rolling mode on a checkpoint in RollingDepth's layout, resuming a killed job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from marigold_toolkit.io.files import read_png16
from marigold_toolkit.pipeline.predictor import Predictor
from marigold_toolkit.video.latent_init import LatentCarry, common_noise, predict_frame

from ..cli._helpers import random_image, run_cli

av = pytest.importorskip("av")


def _frames(n: int = 10, h: int = 36, w: int = 48) -> list[np.ndarray]:
    base = random_image(h, w + 3 * n, seed=1)
    return [np.ascontiguousarray(base[:, 3 * k : 3 * k + w]) for k in range(n)]  # a camera panning right


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip") / "pan"
    folder.mkdir()
    for k, f in enumerate(_frames()):
        Image.fromarray(f).save(folder / f"{k:04d}.png")
    return folder


def test_latent_init_equals_the_diffusers_recipe(depth_ckpt):
    import diffusers

    pipe = diffusers.MarigoldDepthPipeline.from_pretrained(depth_ckpt, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    ours = Predictor.from_pretrained(depth_ckpt, device="cpu")
    frames = _frames(4)
    carry = LatentCarry(common_noise(ours, frames[0], 64, seed=3))
    last = None
    for frame in frames:
        latents = carry.common if last is None else 0.9 * carry.common + 0.1 * last
        ref = pipe(Image.fromarray(frame), num_inference_steps=1, processing_resolution=64,
                   match_input_resolution=False, latents=latents, output_latent=True)
        last = ref.latent
        out = predict_frame(ours, frame, carry, steps=1, processing_resolution=64)
        np.testing.assert_allclose(out.targets["depth"], ref.prediction[0, ..., 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(carry.previous, ref.latent.float(), atol=1e-5, rtol=0)


def _read_mp4(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


@pytest.mark.parametrize("mode", ["latent-init", "independent"])
def test_video_outputs(capsys, depth_ckpt, clip, tmp_path, mode):
    rc, _, err = run_cli(capsys, "video", clip, "--model", depth_ckpt, "--output-dir", tmp_path, "--mode", mode,
                         "--processing-resolution", 64, "--device", "cpu", "--chunk", 4, "--fps", 5)
    assert rc == 0, err
    depth = np.load(tmp_path / "pan_depth.npy")
    assert depth.dtype == np.float32 and depth.shape == (10, 36, 48)
    assert depth.min() == 0.0 and depth.max() == 1.0  # one scale and shift for the clip
    pngs = sorted((tmp_path / "pan_depth").iterdir())
    assert [p.name for p in pngs] == [f"{k:06d}.png" for k in range(10)]
    np.testing.assert_array_equal(read_png16(pngs[3].read_bytes()), (depth[3] * 65535).astype(np.uint16))
    video = _read_mp4(tmp_path / "pan_depth.mp4")
    assert len(video) == 10 and video[0].shape == (36, 96, 3)  # input | depth
    meta = json.loads((tmp_path / "pan_depth.json").read_text())
    assert meta["mode"] == mode and meta["prediction_space"] == "depth" and meta["frames"] == list(range(10))
    assert meta["fps"] == 5 and not any(p.name.startswith(".") for p in tmp_path.iterdir())  # work folder gone


def test_latent_init_is_steadier_than_independent_frames(capsys, depth_ckpt, clip, tmp_path):
    change = {}
    for mode in ("latent-init", "independent"):
        out = tmp_path / mode
        rc, _, err = run_cli(capsys, "video", clip, "--model", depth_ckpt, "--output-dir", out, "--mode", mode,
                             "--processing-resolution", 64, "--device", "cpu", "--no-png", "--no-mp4")
        assert rc == 0, err
        change[mode] = float(np.abs(np.diff(np.load(out / "pan_depth.npy"), axis=0)).mean())
    assert change["latent-init"] < 0.7 * change["independent"], change


def test_rolling_mode_on_the_rollingdepth_layout(capsys, clip, tmp_path):
    from marigold_toolkit.testing.random_checkpoints import build_random_rollingdepth_checkpoint

    ckpt = build_random_rollingdepth_checkpoint(tmp_path / "rd")
    rc, _, err = run_cli(capsys, "video", clip, "--model", ckpt, "--output-dir", tmp_path / "out", "--mode", "rolling",
                         "--processing-resolution", 64, "--device", "cpu", "--dilations", "1,4",
                         "--coalign-iterations", 50, "--refine-steps", 2, "--no-mp4")
    assert rc == 0, err
    # RollingDepth predicts inverse depth: the files are named for it, as marigold predict names them
    disparity = np.load(tmp_path / "out" / "pan_disparity.npy")
    assert disparity.shape == (10, 36, 48) and disparity.min() == 0.0 and disparity.max() == 1.0
    meta = json.loads((tmp_path / "out" / "pan_disparity.json").read_text())
    assert meta["prediction_space"] == "disparity" and meta["rolling"]["dilations"] == [1, 4]


def test_usage_errors(capsys, depth_ckpt, checkpoints, clip, tmp_path):
    rc, _, err = run_cli(capsys, "video", tmp_path / "nope.mp4", "--model", depth_ckpt, "--output-dir", tmp_path)
    assert rc == 2 and "no such file" in err
    rc, _, err = run_cli(capsys, "video", clip, "--model", checkpoints["normals-v1-1"], "--output-dir", tmp_path,
                         "--device", "cpu")
    assert rc == 2 and "needs a depth model" in err
    rc, _, err = run_cli(capsys, "video", clip, "--model", depth_ckpt, "--output-dir", tmp_path, "--preset", "fast")
    assert rc == 2 and "--preset applies to --mode rolling" in err
    rc, _, err = run_cli(capsys, "video", clip, "--model", depth_ckpt, "--output-dir", tmp_path, "--stride", 0)
    assert rc == 2 and "--stride must be >= 1" in err


@pytest.mark.slow
def test_a_killed_job_resumes_and_matches_an_uninterrupted_one(depth_ckpt, tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    for k, f in enumerate(_frames(40)):
        Image.fromarray(f).save(folder / f"{k:04d}.png")
    args = [sys.executable, "-m", "marigold_toolkit.cli.main", "-q", "video", str(folder), "--model",
            str(depth_ckpt), "--processing-resolution", "64", "--device", "cpu", "--chunk", "4", "--no-mp4"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(args + ["--output-dir", str(tmp_path / "whole")], check=True, env=env, timeout=600)
    out = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--output-dir", str(out)], env=env)
    state = out / ".long_video_work" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if json.loads(state.read_text()).get("frames_done", 0) >= 12:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = json.loads(state.read_text())["frames_done"]
    assert 12 <= done_before < 40 and not (out / "long_depth.npy").exists()
    subprocess.run(args + ["--output-dir", str(out)], check=True, env=env, timeout=600)
    np.testing.assert_array_equal(np.load(out / "long_depth.npy"), np.load(tmp_path / "whole" / "long_depth.npy"))
    assert not (out / ".long_video_work").exists()


@pytest.mark.slow
def test_memory_does_not_grow_with_the_length(depth_ckpt, tmp_path):
    """Peak RSS of a 600-frame run is that of a 60-frame run (frames stream through; outputs are memory maps)."""
    from marigold_toolkit.io.video import VideoWriter

    peaks = {}
    for n in (60, 600):
        path = tmp_path / f"clip{n}.mp4"
        with VideoWriter(path, fps=30) as vw:
            for f in _frames(n, 24, 32) if n <= 60 else (_frames(60, 24, 32) * 10):
                vw.write(f)
        code = ("import resource, sys; from marigold_toolkit.cli.main import main; rc = main(sys.argv[1:]); "
                "print('PEAK', open('/proc/self/status').read().split('VmHWM:')[1].split()[0]); sys.exit(rc)")
        r = subprocess.run([sys.executable, "-c", code, "-q", "video", str(path), "--model", str(depth_ckpt),
                            "--output-dir", str(tmp_path / f"out{n}"), "--processing-resolution", "32",
                            "--device", "cpu", "--no-png"], capture_output=True, text=True, timeout=900,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert r.returncode == 0, r.stderr[-2000:]
        peaks[n] = int(r.stdout.split("PEAK")[1].split()[0]) / 1024
        assert np.load(tmp_path / f"out{n}" / f"clip{n}_depth.npy", mmap_mode="r").shape == (n, 24, 32)
    assert peaks[600] - peaks[60] < 40, peaks

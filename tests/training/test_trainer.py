"""The trainer end to end on tiny models and a synthetic folder dataset: it learns, its checkpoints load in
diffusers and in our predictor, a SIGKILLed run resumes to the same weights, two processes equal one."""

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
from safetensors.torch import load_file

from marigold_toolkit import Predictor
from marigold_toolkit.core.atomic import TMP_PREFIX
from marigold_toolkit.testing import build_random_sd2_base
from marigold_toolkit.training.config import load_config
from marigold_toolkit.training.trainer import Trainer, TrainingError

SIZE = 32


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A slanted background plane with a box in front of it; the image shows depth as brightness and tint."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    a, b = rng.uniform(-1, 1, 2)
    depth = 6.0 + 2.0 * (a * xx + b * yy)
    y0, x0 = rng.integers(2, SIZE // 2, 2)
    h, w = rng.integers(6, SIZE // 2, 2)
    depth[y0:y0 + h, x0:x0 + w] = rng.uniform(1.0, 2.5)
    d = (depth - 1.0) / 7.0
    tint = rng.uniform(0.6, 1.0, 3)
    rgb = np.clip((1 - d)[..., None] * tint * 255, 0, 255).astype(np.uint8)
    return rgb, depth.astype(np.float32)


def make_folder_dataset(root: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    (root / "rgb").mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rgb, depth = _scene(rng)
        Image.fromarray(rgb).save(root / "rgb" / f"s{i:03d}.png")
        np.save(root / "depth" / f"s{i:03d}.npy", depth)
    return root


def _pretrain_vae(folder: Path, steps: int = 150) -> None:
    """Make the tiny random VAE a rough autoencoder of these images (a random one does not reconstruct), so a
    better latent prediction means a better decoded depth."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(folder / "vae")
    rng = np.random.default_rng(123)
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    torch.manual_seed(0)
    for _ in range(steps):
        scenes = [_scene(rng) for _ in range(8)]
        imgs = [torch.from_numpy(r).permute(2, 0, 1).float() / 127.5 - 1 for r, _ in scenes[:4]]
        for _, d in scenes[4:]:
            dn = (d - d.min()) / (np.ptp(d) + 1e-6) * 2 - 1
            imgs.append(torch.from_numpy(dn)[None].repeat(3, 1, 1).float())
        x = torch.stack(imgs)
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample
        loss = torch.nn.functional.mse_loss(rec, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    vae.save_pretrained(folder / "vae", safe_serialization=True)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    folder = build_random_sd2_base(tmp_path_factory.mktemp("sd2") / "base")
    _pretrain_vae(folder)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("toy")
    return make_folder_dataset(root / "train", 24, 0), make_folder_dataset(root / "val", 6, 1)


def write_config(path: Path, base: Path, data: tuple[Path, Path], out: Path, **over) -> Path:
    max_iter = over.get("max_iter", 10)
    text = f"""
task: depth
targets: [depth]
seed: 7
output_dir: {out}
model: {{base: {base}}}
pipeline: {{default_denoising_steps: 1, default_processing_resolution: 0}}
optim:
  lr: {over.get("lr", 5.0e-4)}
  micro_batch_size: 2
  effective_batch_size: {over.get("effective_batch_size", 4)}
  max_iter: {max_iter}
  lr_scheduler: {{total_iter: {max_iter}, final_ratio: 0.1, warmup_steps: {over.get("warmup", 2)}}}
data:
  num_workers: 0
  cache_latents_mb: {over.get("cache_latents_mb", 0)}
  train: [{{name: folder, root: {data[0]}, prob: 1.0}}]
  val: [{{name: folder, root: {data[1]}}}]
validation: {{period: {over.get("val_period", 0)}, num_inference_steps: {over.get("val_steps", 1)}, processing_resolution: 0, max_samples: 6}}
checkpoint: {{period: {over.get("ckpt_period", 5)}, keep_last: 2, backup_period: 0}}
logging: {{period: 5, tensorboard: false}}
"""
    path.write_text(text)
    return path


@pytest.mark.slow
def test_tiny_run_learns_and_checkpoint_loads_everywhere(base, data, tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml", base, data, tmp_path / "run", max_iter=250, lr=3e-3,
                                   warmup=10, ckpt_period=250, val_steps=4))
    trainer = Trainer(cfg)
    before = trainer.validate(0)["val/folder/abs_rel"]
    summary = trainer.train()
    after = trainer.validate(250)["val/folder/abs_rel"]
    losses = summary["losses"]
    assert summary["steps"] == 250 and len(losses) == 250
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:20]), (np.mean(losses[:20]), np.mean(losses[-20:]))
    assert after < 0.8 * before, (before, after)

    ckpt = Path(summary["checkpoint"])
    assert ckpt.name == "step-000250" and (ckpt / "COMPLETE").is_file()
    import diffusers

    from marigold_toolkit import Predictor

    pipe = diffusers.MarigoldDepthPipeline.from_pretrained(ckpt)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.config.in_channels == 8 and pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.scheduler.config.rescale_betas_zero_snr
    img = Image.open(next((data[1] / "rgb").glob("*.png")))
    ref = pipe(img, num_inference_steps=1, processing_resolution=0,
               generator=torch.Generator("cpu").manual_seed(0)).prediction[0, ..., 0]
    ours = Predictor.from_pretrained(ckpt).predict(img, seed=0)
    np.testing.assert_allclose(ours.prediction, ref, atol=1e-4)
    assert ours.settings["num_inference_steps"] == 1


def _weights(run: Path) -> dict[str, torch.Tensor]:
    latest = (run / "checkpoints" / "latest").read_text().strip()
    return load_file(run / "checkpoints" / latest / "unet" / "diffusion_pytorch_model.safetensors")


def _cli(cfg: Path, env_extra=None) -> list[str]:
    return [sys.executable, "-m", "marigold_toolkit.cli.main", "-q", "train", str(cfg)]


@pytest.mark.slow
def test_sigkill_resume_gives_the_same_weights(base, data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = write_config(tmp_path / "full.yaml", base, data, tmp_path / "full", max_iter=12, ckpt_period=2)
    r = subprocess.run(_cli(full), env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]

    killed = write_config(tmp_path / "killed.yaml", base, data, tmp_path / "killed", max_iter=12, ckpt_period=2)
    proc = subprocess.Popen(_cli(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpts / "step-000006" / "COMPLETE").exists():
        time.sleep(0.05)
    # kill right away: somewhere in the next steps (possibly while a checkpoint is written); a fast CPU runs a step
    # in well under 0.1 s, so any longer wait can let the run finish (or prune step 6) before the kill
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (ckpts / "latest").is_file(), "the run was killed before its first checkpoints"
    assert not (ckpts / "step-000012").exists(), "the run finished before it was killed"
    r = subprocess.run(_cli(killed), env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= 1e-6, diff  # documented tolerance: bitwise on one CPU build, float noise across hardware
    assert not list(ckpts.glob(TMP_PREFIX + "*"))


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(base, data, tmp_path, monkeypatch):
    cfg = load_config(write_config(tmp_path / "c.yaml", base, data, tmp_path / "run", max_iter=6, ckpt_period=2))
    trainer = Trainer(cfg)
    real = trainer.micro_batch_loss
    calls = {"n": 0}

    def flaky(batch):
        calls["n"] += 1
        loss = real(batch)
        return loss * float("nan") if calls["n"] > 8 else loss  # steps 1-4 fine (2 micro-batches each)

    monkeypatch.setattr(trainer, "micro_batch_loss", flaky)
    with pytest.raises(TrainingError, match=r"non-finite loss .* at step 5 .*step-000004"):
        trainer.train()
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step-000004"


def test_missing_dataset_root_is_an_error_before_work(base, tmp_path, capsys):
    from marigold_toolkit.cli.main import main

    cfg = write_config(tmp_path / "c.yaml", base, (tmp_path / "nope", tmp_path / "nope"), tmp_path / "run")
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def _folder_task_data(root: Path, task: str, n: int = 6) -> Path:
    rng = np.random.default_rng(3)
    (root / "rgb").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rgb, depth = _scene(rng)
        Image.fromarray(rgb).save(root / "rgb" / f"s{i}.png")
        if task == "normals":
            gy, gx = np.gradient(depth)
            nrm = np.stack([-gx, gy, np.ones_like(depth)], -1)
            (root / "normals").mkdir(exist_ok=True)
            np.save(root / "normals" / f"s{i}.npy", (nrm / np.linalg.norm(nrm, axis=-1, keepdims=True)).astype(np.float32))
        else:
            for t in ("albedo", "shading", "residual"):
                (root / t).mkdir(exist_ok=True)
                np.save(root / t / f"s{i}.npy", rng.uniform(0, 1, (SIZE, SIZE, 3)).astype(np.float32))
    return root


@pytest.mark.parametrize("task,targets,mode", [
    ("normals", ["normals"], "diffusion"),
    ("intrinsics", ["albedo", "shading", "residual"], "diffusion"),
    ("depth", ["depth"], "e2e"),
    ("normals", ["normals"], "e2e"),
])
def test_every_task_and_e2e_mode_train_and_save_loadable_checkpoints(base, data, tmp_path, task, targets, mode):
    import diffusers

    folder = data[0] if task == "depth" else _folder_task_data(tmp_path / "d", task)
    props = ("{target_names: [albedo, shading, residual], albedo: {prediction_space: linear}, "
             "shading: {prediction_space: linear, up_to_scale: true}, "
             "residual: {prediction_space: linear, up_to_scale: true}}") if task == "intrinsics" else "null"
    cfgp = write_config(tmp_path / "c.yaml", base, (folder, folder), tmp_path / "run", max_iter=3, ckpt_period=3,
                        val_period=3)
    cfg = load_config(cfgp, [f"task={task}", f"targets=[{','.join(targets)}]", f"diffusion.mode={mode}",
                             f"pipeline.target_properties={props}", "validation.max_samples=2"])
    summary = Trainer(cfg).train()
    assert summary["steps"] == 3 and all(np.isfinite(summary["losses"]))
    assert summary["validation"] and all(np.isfinite(v) for v in summary["validation"].values())
    ckpt = Path(summary["checkpoint"])
    cls = {"depth": diffusers.MarigoldDepthPipeline, "normals": diffusers.MarigoldNormalsPipeline,
           "intrinsics": diffusers.MarigoldIntrinsicsPipeline}[task]
    pipe = cls.from_pretrained(ckpt)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.config.in_channels == 4 * (1 + len(targets))
    assert pipe.unet.config.out_channels == 4 * len(targets)
    out = pipe(Image.open(next((folder / "rgb").glob("*.png"))), num_inference_steps=1, processing_resolution=0)
    assert np.isfinite(out.prediction).all()
    index = json.loads((ckpt / "model_index.json").read_text())
    if mode == "e2e":  # run as trained: one step at t = 999 from zeros, the clean-sample estimate
        assert index["_marigold_toolkit"] == {"initial_noise": "zeros"}
        assert pipe.scheduler.config.timestep_spacing == "trailing"
        pred = Predictor.from_pretrained(ckpt)
        img = Image.open(next((folder / "rgb").glob("*.png")))
        a, b = (pred.predict(img, processing_resolution=0, seed=s) for s in (0, 1))
        assert a.settings["noise"] == "zeros" and a.settings["num_inference_steps"] == 1
        np.testing.assert_array_equal(a.targets[targets[0]], b.targets[targets[0]])
    else:
        assert "_marigold_toolkit" not in index


@pytest.mark.parametrize("mode", ["diffusion", "e2e"])
def test_disparity_training_writes_a_disparity_checkpoint(base, data, tmp_path, mode):
    """``pipeline.prediction_type: disparity``: targets are the normalised inverse depth, validation aligns in
    disparity space, and the saved checkpoint says disparity to diffusers and to our loader (same numbers)."""
    import diffusers

    cfgp = write_config(tmp_path / "c.yaml", base, data, tmp_path / "run", max_iter=3, ckpt_period=3, val_period=3)
    cfg = load_config(cfgp, ["pipeline.prediction_type=disparity", f"diffusion.mode={mode}",
                             "validation.max_samples=2"])
    trainer = Trainer(cfg)
    assert trainer.task.prediction_space == "disparity" and trainer.task.target_names == ["disparity"]
    summary = trainer.train()
    assert all(np.isfinite(summary["losses"])) and list(summary["validation"]) == ["val/folder/abs_rel"]
    ckpt = Path(summary["checkpoint"])
    index = json.loads((ckpt / "model_index.json").read_text())
    assert index["prediction_type"] == "disparity" and index["_class_name"] == "MarigoldDepthPipeline"
    pred = Predictor.from_pretrained(ckpt)
    assert pred.task.prediction_space == "disparity"
    img = Image.open(next((data[1] / "rgb").glob("*.png")))
    ours = pred.predict(img, processing_resolution=0, seed=0)
    assert list(ours.targets) == ["disparity"]
    if mode == "diffusion":
        pipe = diffusers.MarigoldDepthPipeline.from_pretrained(ckpt)
        pipe.set_progress_bar_config(disable=True)
        assert pipe.config.prediction_type == "disparity"
        ref = pipe(img, num_inference_steps=1, processing_resolution=0,
                   generator=torch.Generator("cpu").manual_seed(0)).prediction[0, ..., 0]
        np.testing.assert_allclose(ours.targets["disparity"], ref, atol=1e-4)


def test_prediction_type_the_task_does_not_have_is_a_config_error(base, data, tmp_path):
    from marigold_toolkit.training.config import ConfigError

    cfgp = write_config(tmp_path / "c.yaml", base, data, tmp_path / "run")
    cfg = load_config(cfgp, ["task=normals", "targets=[normals]", "pipeline.prediction_type=disparity"])
    with pytest.raises(ConfigError, match="pipeline.prediction_type 'disparity': task normals predicts 'normals'"):
        Trainer(cfg)


@pytest.mark.slow
def test_two_processes_equal_one_with_the_same_effective_batch(base, data, tmp_path):
    """`accelerate launch --num_processes 2` (gloo on CPU) reaches the weights of one process: each optimizer step
    consumes the same global micro-batches, gradients are averaged across processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = write_config(tmp_path / "one.yaml", base, data, tmp_path / "one", max_iter=3, ckpt_period=3)
    two = write_config(tmp_path / "two.yaml", base, data, tmp_path / "two", max_iter=3, ckpt_period=3)
    r = subprocess.run(_cli(one), env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--multi_gpu", "-m", "marigold_toolkit.cli.main",
              "-q", "train", str(two)]
    r = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    from marigold_toolkit.training.checkpoint import find_latest, load_trainer_state

    assert load_trainer_state(find_latest(tmp_path / "two" / "checkpoints"))["world_size"] == 2
    assert load_trainer_state(find_latest(tmp_path / "one" / "checkpoints"))["world_size"] == 1
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    ref = max(a[k].abs().max().item() for k in a)
    assert diff <= 1e-5 * max(ref, 1.0), diff  # float summation order differs between 1 and 2 processes


def test_tensorboard_logs_mixed_precision_and_continued_fine_tuning(base, data, tmp_path, checkpoints):
    """Continued fine-tuning from an existing Marigold checkpoint (no surgery needed), bf16 autocast, and
    TensorBoard event files next to metrics.jsonl."""
    cfgp = write_config(tmp_path / "c.yaml", base, data, tmp_path / "run", max_iter=2, ckpt_period=2, warmup=1)
    cfg = load_config(cfgp, [f"model.base={checkpoints['depth-v1-1']}", "model.mixed_precision=bf16",
                             "logging.tensorboard=true", "logging.period=1"])
    trainer = Trainer(cfg)
    assert trainer.acc.unwrap_model(trainer.unet).config.in_channels == 8
    summary = trainer.train()
    assert all(np.isfinite(summary["losses"]))
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"train/loss"' in lines[0] and '"train/lr"' in lines[0]
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_depth_target_round_trip_through_the_vae(base):
    """normalise -> codec.encode -> VAE (posterior mean) -> VAE decode -> codec.decode recovers the map (up to
    the tiny autoencoder's reconstruction error)."""
    from diffusers import AutoencoderKL

    from marigold_toolkit.tasks import DepthTask
    from marigold_toolkit.tasks.depth import normalize_depth
    from marigold_toolkit.training.targets import encode_targets

    vae = AutoencoderKL.from_pretrained(base / "vae")
    codec = DepthTask()
    rng = np.random.default_rng(9)
    depth = torch.from_numpy(np.stack([_scene(rng)[1] for _ in range(3)]))[:, None]
    norm = normalize_depth(depth, depth > 0)
    with torch.no_grad():
        latent = encode_targets(vae, codec, {"depth": norm})
        decoded = codec.decode(vae.decode(latent / vae.config.scaling_factor).sample)  # [0, 1]
    expected = (norm + 1) / 2
    corr = np.corrcoef(decoded.flatten().numpy(), expected.flatten().numpy())[0, 1]
    assert latent.shape == (3, 4, SIZE // 8, SIZE // 8)
    other = np.corrcoef(decoded.flatten().numpy(), expected.roll(1, dims=0).flatten().numpy())[0, 1]
    assert corr > 0.7 and corr > other + 0.3, (corr, other)


def test_latent_cache_serves_repeats_and_resumes_bit_identically(base, data, tmp_path):
    """data.cache_latents_mb: 24 samples drawn 48 times (random flips) hit the cache; the losses match an uncached
    run to float rounding; a run resumed with an empty cache ends on exactly the weights of the uninterrupted one."""
    import shutil

    from marigold_toolkit.training.checkpoint import mark_latest

    plain = Trainer(load_config(write_config(tmp_path / "p.yaml", base, data, tmp_path / "plain", max_iter=12,
                                             ckpt_period=6)))
    ref = plain.train()
    cfg_path = write_config(tmp_path / "c.yaml", base, data, tmp_path / "cached", max_iter=12, ckpt_period=6,
                            cache_latents_mb=64)
    cached = Trainer(load_config(cfg_path))
    got = cached.train()
    cache = cached.latent_cache
    # 12 steps x 2 micro-batches x 2 samples, each an image and a depth map: 96 rows
    assert cache.hits + cache.misses == 96
    assert cache.hits > 0 and len(cache) == cache.misses
    np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-4, atol=1e-6)
    logged = [json.loads(line) for line in (tmp_path / "cached" / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["train/latent_cache_hit_rate"] == pytest.approx(cache.hits / 96)

    resumed = tmp_path / "resumed" / "checkpoints"
    resumed.mkdir(parents=True)
    shutil.copytree(tmp_path / "cached" / "checkpoints" / "step-000006", resumed / "step-000006")
    mark_latest(resumed, resumed / "step-000006")
    text = cfg_path.read_text().replace(str(tmp_path / "cached"), str(tmp_path / "resumed"))
    (tmp_path / "r.yaml").write_text(text)
    again = Trainer(load_config(tmp_path / "r.yaml"))
    assert again.start_step == 6 and len(again.latent_cache) == 0
    again.train()
    a, b = _weights(tmp_path / "cached"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)

"""``marigold pretrain-base``: a small SD2-layout base that the Marigold trainer can fine-tune."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from marigold_toolkit.cli.main import main
from marigold_toolkit.training.config import ConfigError
from marigold_toolkit.demo.pretrain import _lr_schedule, _random_crop, load_images, load_pretrain_config

TINY = ["vae_arch.block_out_channels=[8,16]", "vae_arch.norm_num_groups=4", "unet_arch.block_out_channels=[16,32]",
        "unet_arch.attention_head_dim=[2,2]", "unet_arch.norm_num_groups=8", "unet_arch.cross_attention_dim=16",
        "text_arch.hidden_size=16", "text_arch.intermediate_size=32", "vae.batch_size=4", "unet.batch_size=4",
        "vae.warmup_steps=1", "unet.warmup_steps=1", "log_period=0"]


def _images(folder, n=6, size=(16, 24)):
    """Smooth colour ramps (learnable in a few steps)."""
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:size[0], 0:size[1]] / max(size)
    for i in range(n):
        img = np.stack([xx * (i + 1) / n, yy, 1 - xx], -1)
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    _images(root / "rgb")
    cfg = root / "base.yaml"
    cfg.write_text(f"seed: 0\noutput_dir: {root / 'base'}\ndata: {{root: {root / 'rgb'}}}\n")
    return cfg


def test_load_images_range_and_size_check(tmp_path):
    x = load_images(_images(tmp_path / "a", n=3))
    assert x.shape == (3, 3, 16, 24) and x.dtype == torch.float32
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    Image.new("RGB", (10, 10)).save(tmp_path / "a" / "zz.png")
    with pytest.raises(ConfigError, match="zz.png: size"):
        load_images(tmp_path / "a")
    assert load_images(tmp_path / "a", resize=[8, 8]).shape == (4, 3, 8, 8)
    with pytest.raises(ConfigError, match="no images"):
        load_images(tmp_path / "empty_does_not_exist")


def test_random_crop_and_lr_schedule():
    x = torch.arange(2 * 1 * 6 * 8, dtype=torch.float32).reshape(2, 1, 6, 8)
    c = _random_crop(x, [3, 4], torch.Generator().manual_seed(0))
    assert c.shape == (2, 1, 3, 4)
    for img, crop in zip(x, c):  # a contiguous window of the source
        y0, x0 = divmod(int(crop[0, 0, 0] - img[0, 0, 0]), 8)
        assert torch.equal(img[:, y0:y0 + 3, x0:x0 + 4], crop)
    with pytest.raises(ConfigError, match="larger than the images"):
        _random_crop(x, [7, 4], torch.Generator())

    class St:
        lr, steps, warmup_steps = 1.0, 100, 10
    f = _lr_schedule(St)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * 0.09))))
    assert f(100) == pytest.approx(0.05) and f(50) == pytest.approx(0.525)


def test_config_validation(config_file):
    with pytest.raises(ConfigError, match="vae.steps must be >= 0"):
        load_pretrain_config(config_file, ["vae.steps=-1"])
    with pytest.raises(ConfigError):
        load_pretrain_config(config_file, ["vae.nonsense=1"])
    with pytest.raises(ConfigError, match="text_arch.hidden_size must equal unet_arch.cross_attention_dim"):
        load_pretrain_config(config_file, ["text_arch.hidden_size=48"])
    cfg = load_pretrain_config(config_file, ["unet.steps=7"])
    assert cfg.unet.steps == 7 and cfg.vae.kl_weight == 1e-6


def test_pretrain_writes_sd2_layout_and_learns(config_file, tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from marigold_toolkit.demo.pretrain import pretrain_base

    out = tmp_path / "base"
    cfg = load_pretrain_config(config_file, [*TINY, f"output_dir={out}", "vae.steps=40", "unet.steps=20",
                                             "vae.lr=3e-3"])
    summary = pretrain_base(cfg)
    v = summary["vae_losses"]
    assert np.mean(v[-5:]) < 0.6 * np.mean(v[:5])  # the autoencoder learns
    assert np.isfinite(summary["unet_losses"]).all()
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for sub in ("vae", "unet", "text_encoder", "tokenizer", "scheduler"):
        assert sub in index and (out / sub).is_dir()
    assert (out / "tokenizer" / "vocab.json").is_file() and (out / "tokenizer" / "merges.txt").is_file()
    vae = AutoencoderKL.from_pretrained(out / "vae")
    # scaling factor = 1 / std of the training latents' means
    x = load_images(config_file.parent / "rgb")
    with torch.no_grad():
        std = torch.cat([vae.encode(x).latent_dist.mean, vae.encode(x.flip(-1)).latent_dist.mean]).std()
    assert vae.config.scaling_factor == pytest.approx(float(1 / std), rel=1e-3)
    unet = UNet2DConditionModel.from_pretrained(out / "unet")
    assert unet.config.in_channels == 4 and unet.config.cross_attention_dim == 16
    sched = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert sched["prediction_type"] == "v_prediction"

    # the ablation base: same VAE, UNet left at its initialisation, via the console command
    abl = tmp_path / "ablation"
    assert main(["pretrain-base", str(config_file), *TINY, f"output_dir={abl}", f"vae_from={out}",
                 "unet.steps=0"]) == 0
    a, b = (AutoencoderKL.from_pretrained(p / "vae").state_dict() for p in (out, abl))
    assert all(torch.equal(a[k], b[k]) for k in a)
    ua = UNet2DConditionModel.from_pretrained(abl / "unet").state_dict()
    assert any(not torch.equal(ua[k], unet.state_dict()[k]) for k in ua)
    assert main(["pretrain-base", str(config_file), "vae.steps=-3"]) == 2


def test_load_maps_normalises_depth_and_keeps_normals(tmp_path):
    from marigold_toolkit.demo.pretrain import load_maps

    d = tmp_path / "depth"
    d.mkdir()
    depth = np.linspace(1.0, 10.0, 100, dtype=np.float32).reshape(10, 10)
    depth[0, 0] = 0.0  # invalid -> far (1)
    np.save(d / "a.npy", depth)
    x = load_maps(d)
    assert x.shape == (1, 3, 10, 10) and x.dtype == torch.float32
    assert float(x[0, 0, 0, 0]) == 1.0 and torch.equal(x[0, 0], x[0, 2])
    valid = depth[depth > 0]
    lo, hi = np.percentile(valid, [2, 98])
    assert float(x[0, 0, 5, 5]) == pytest.approx(float(np.clip((depth[5, 5] - lo) / (hi - lo), 0, 1) * 2 - 1), abs=1e-6)
    n = tmp_path / "normals"
    n.mkdir()
    normals = np.zeros((4, 5, 3), np.float32)
    normals[..., 2] = 1.0
    np.save(n / "b.npy", normals)
    np.testing.assert_array_equal(load_maps(n)[0].permute(1, 2, 0).numpy(), normals)
    np.save(n / "c.npy", np.zeros((4, 5, 2), np.float32))
    with pytest.raises(ConfigError, match="c.npy: expected"):
        load_maps(n)


def test_vae_pool_source_weights_and_normals_mirror():
    from marigold_toolkit.demo.pretrain import _flip, sample_rows

    g = torch.Generator().manual_seed(0)
    # weights pick the source: sizes 3 (images), 2 (depth), 5 (normals); weight only on the last -> rows 5..9
    idx = sample_rows([3, 2, 5], [0, 0, 1], 400, g)
    assert idx.min() >= 5 and idx.max() <= 9 and len(set(idx.tolist())) == 5
    # equal weights: each source a third of the rows whatever its size (binomial, 3000 draws: +-4 sigma < 0.04)
    idx = sample_rows([3, 2, 5], [1, 1, 1], 3000, g)
    shares = [((idx >= a) & (idx < b)).float().mean().item() for a, b in ((0, 3), (3, 5), (5, 10))]
    assert all(abs(s - 1 / 3) < 0.04 for s in shares)
    # no weights: uniform over all 10 rows, the draw of the unweighted pool (same generator state -> same rows)
    assert torch.equal(sample_rows([3, 2, 5], None, 7, torch.Generator().manual_seed(1)),
                       torch.randint(10, (7,), generator=torch.Generator().manual_seed(1)))
    for bad in ([1, 1], [1, -1, 1], [0, 0, 0]):
        with pytest.raises(ConfigError, match="vae.source_weights"):
            sample_rows([3, 2, 5], bad, 4, g)
    # a mirrored normal map points the other way in x; an image (or depth map) mirrored keeps its values
    x = torch.zeros(64, 3, 2, 4)
    x[:, 0] = torch.linspace(0.1, 0.4, 4)  # x component, growing to the right
    x[:, 2] = 0.9
    normals = torch.arange(64) % 2 == 0
    out = _flip(x, torch.Generator().manual_seed(3), normals)
    flipped = (out[:, 2] == 0.9).all(-1).all(-1) & ~torch.isclose(out[:, 0, 0, 0], x[:, 0, 0, 0])
    assert 10 < int(flipped.sum()) < 54  # about half the rows mirrored
    for i in range(64):
        expect = x[i].flip(-1) if flipped[i] else x[i]
        if flipped[i] and normals[i]:
            expect = expect * torch.tensor([-1.0, 1.0, 1.0])[:, None, None]
        assert torch.equal(out[i], expect)
    np.testing.assert_allclose(out[normals & flipped, 0, 0].numpy(), np.tile([-0.4, -0.3, -0.2, -0.1], (
        int((normals & flipped).sum()), 1)), atol=1e-6)


def test_read_maps_flags_the_normal_maps_row_by_row(tmp_path):
    from marigold_toolkit.demo.pretrain import _read_maps, load_maps

    np.save(tmp_path / "a.npy", np.linspace(1.0, 5.0, 20, dtype=np.float32).reshape(4, 5))  # depth
    normals = np.zeros((4, 5, 3), np.float32)
    normals[..., 2] = 1.0
    np.save(tmp_path / "b.npy", normals)
    maps, is_normals = _read_maps(tmp_path)
    assert is_normals.tolist() == [False, True] and torch.equal(maps, load_maps(tmp_path))

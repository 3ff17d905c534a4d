"""Tiny decoders (issue 15, item 3): ``decoder=`` / ``--decoder`` decode with a diffusers ``AutoencoderTiny``.

Oracle: diffusers' own Marigold pipeline with the same weights and noise whose VAE decoder is swapped for the same
tiny decoder (scaled latents in, as diffusers feeds an ``AutoencoderTiny``) gives the same numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from marigold_toolkit import Predictor
from marigold_toolkit.checkpoints.resolve import CheckpointError
from marigold_toolkit.checkpoints.tiny_decoder import (
    BUNDLED_FOLDER,
    REPORT,
    load_tiny_decoder,
    new_tiny_decoder,
    read_report,
    save_tiny_decoder,
)
from marigold_toolkit.testing import build_random_tiny_decoder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_random_tiny_decoder(tmp_path_factory.mktemp("tiny") / "decoder", seed=1)


def _image(h=40, w=56, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _oracle(ckpt, pipeline_class, tiny_folder, image, **kw):
    import diffusers
    from PIL import Image

    pipe = getattr(diffusers, pipeline_class).from_pretrained(ckpt)
    pipe.set_progress_bar_config(disable=True)
    decoder = load_tiny_decoder(tiny_folder)
    sf = pipe.vae.config.scaling_factor

    def decode(z, return_dict=True, **_):  # diffusers passes latents / the KL scaling factor
        out = decoder.decode(z * sf).sample
        return (out,) if not return_dict else type("D", (), {"sample": out})()

    pipe.vae.decode = decode
    return pipe(Image.fromarray(image), generator=torch.Generator("cpu").manual_seed(kw.pop("seed")), **kw)


@pytest.mark.parametrize("layout, pipeline_class", [("depth-v1-1", "MarigoldDepthPipeline"),
                                                    ("normals-v1-1", "MarigoldNormalsPipeline")])
def test_tiny_decoder_matches_diffusers_with_the_same_decoder(checkpoints, tiny, layout, pipeline_class):
    ckpt = checkpoints[layout]
    kw = dict(num_inference_steps=2, processing_resolution=32, ensemble_size=1)
    ours = Predictor.from_pretrained(ckpt, decoder=tiny).predict(_image(), seed=7, **kw)
    ref = _oracle(ckpt, pipeline_class, tiny, _image(), seed=7, output_type="np", **kw)
    expected = ref.prediction[0]
    got = ours.prediction
    np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=2e-5)
    assert ours.settings["decoder"] == str(tiny)
    # and it really is another decoder: the VAE's own gives other numbers
    full = Predictor.from_pretrained(ckpt).predict(_image(), seed=7, **kw).prediction
    assert np.abs(full - got).max() > 1e-2


def test_channels_last_and_bf16_apply_to_the_tiny_decoder(depth_ckpt, tiny):
    p = Predictor.from_pretrained(depth_ckpt, decoder=tiny, channels_last=True, dtype="bfloat16")
    conv = p.tiny_decoder.decoder.layers[0].weight
    assert conv.dtype == torch.bfloat16 and conv.is_contiguous(memory_format=torch.channels_last)
    ref = Predictor.from_pretrained(depth_ckpt, decoder=tiny)
    kw = dict(num_inference_steps=1, processing_resolution=32, seed=0)
    a, b = p.predict(_image(), **kw).prediction, ref.predict(_image(), **kw).prediction
    assert np.abs(a - b).mean() < 0.02  # bf16 rounding only


def test_bundled_decoder_is_the_checkpoints_own_folder(depth_ckpt, tiny, tmp_path):
    import shutil

    with pytest.raises(CheckpointError, match="bundles no tiny decoder") as info:
        Predictor.from_pretrained(depth_ckpt, decoder="bundled")
    assert "\n" not in str(info.value)
    ckpt = tmp_path / "ckpt"
    shutil.copytree(depth_ckpt, ckpt)
    shutil.copytree(tiny, ckpt / BUNDLED_FOLDER)
    kw = dict(num_inference_steps=1, processing_resolution=32, seed=0)
    np.testing.assert_array_equal(Predictor.from_pretrained(ckpt, decoder="bundled").predict(_image(), **kw).prediction,
                                  Predictor.from_pretrained(depth_ckpt, decoder=tiny).predict(_image(), **kw).prediction)


def test_bad_decoders_are_one_line_errors(depth_ckpt, tiny, tmp_path):
    import shutil

    wrong_class = tmp_path / "kl"
    shutil.copytree(depth_ckpt / "vae", wrong_class)
    other_latents = save_tiny_decoder(new_tiny_decoder(latent_channels=8, width=4, blocks=(1, 1, 1, 1)), tmp_path / "c8")
    stride4 = save_tiny_decoder(new_tiny_decoder(width=4, blocks=(1, 1, 1)), tmp_path / "s4")
    no_weights = tmp_path / "bin"
    shutil.copytree(tiny, no_weights)
    for f in no_weights.glob("*.safetensors"):
        f.unlink()
    cases = [(tmp_path / "missing", "no such folder"), (wrong_class, "not an AutoencoderTiny"),
             (other_latents, "8-channel latents"), (stride4, "4x up"), (no_weights, "no .safetensors")]
    for source, message in cases:
        with pytest.raises(CheckpointError, match=message) as info:
            Predictor.from_pretrained(depth_ckpt, decoder=source)
        assert "\n" not in str(info.value)


def test_saved_decoder_is_atomic_with_its_report(tmp_path):
    folder = save_tiny_decoder(new_tiny_decoder(width=4, blocks=(1, 1, 1, 1)), tmp_path / "d",
                               report={"teacher": "x", "deviation": {"absrel": 0.01}})
    assert read_report(folder) == {"teacher": "x", "deviation": {"absrel": 0.01}}
    assert json.loads((folder / "config.json").read_text())["_class_name"] == "AutoencoderTiny"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporaries left
    tiny = load_tiny_decoder(folder)
    assert all(float(p.abs().sum()) == 0 for p in tiny.encoder.parameters())  # a zero placeholder
    assert read_report(tmp_path) is None and REPORT == "distill_report.json"


def test_cli_decoder_flag(depth_ckpt, tiny, tmp_path):
    from PIL import Image

    from marigold_toolkit.cli.main import main

    Image.fromarray(_image()).save(tmp_path / "a.png")
    args = ["predict", str(tmp_path / "a.png"), "--model", str(depth_ckpt), "--steps", "1",
            "--processing-resolution", "32", "--seed", "0"]
    assert main([*args, "--output-dir", str(tmp_path / "tiny"), "--decoder", str(tiny)]) == 0
    expected = Predictor.from_pretrained(depth_ckpt, decoder=tiny).predict(
        _image(), num_inference_steps=1, processing_resolution=32, seed=0).prediction
    np.testing.assert_allclose(np.load(tmp_path / "tiny" / "a_depth.npy"), expected, atol=1e-6)
    assert main([*args, "--output-dir", str(tmp_path / "bad"), "--decoder", str(tmp_path / "nope")]) == 2

"""Mixed precision (issue 15): bf16 convolutions/linear layers under autocast, float32 narrow ends and loop."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from marigold_toolkit import Predictor
from marigold_toolkit.pipeline.backends import BackendError
from marigold_toolkit.label.records import InferenceSettings, result_settings
from marigold_toolkit.pipeline.backends import depth_absrel
from marigold_toolkit.pipeline.precision import (
    autocast_calls, is_narrow_end, parse_autocast, prepare_for_autocast)

B = torch.bfloat16


def _image(h=40, w=56, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_narrow_ends_stay_float32_and_compute_as_float32_under_autocast():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 32, 3, padding=1), torch.nn.GroupNorm(8, 32),
                              torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.Conv2d(32, 3, 1))
    ref = copy.deepcopy(net)
    keys = list(net.state_dict())
    prepare_for_autocast(net, "bfloat16")
    assert [p.dtype for p in net.parameters()] == [torch.float32] * 4 + [B] * 2 + [torch.float32] * 2
    assert list(net.state_dict()) == keys and type(net[0]).__name__ == "Float32Conv2d"
    assert torch.equal(net[0].weight, ref[0].weight)  # float32 weights untouched
    x = torch.randn(2, 4, 8, 8)
    with torch.autocast("cpu", dtype=B):
        first = net[0](x)
        inner = net[2](torch.randn(2, 32, 8, 8))
    assert first.dtype == torch.float32 and inner.dtype == B
    torch.testing.assert_close(first, ref[0](x), rtol=0, atol=0)  # the narrow end is plain float32
    # the half-precision layers store exactly what autocast would cast their float32 weights to
    y = torch.randn(2, 32, 8, 8)
    with torch.autocast("cpu", dtype=B):
        assert torch.equal(net[2](y), ref[2](y))
    prepare_for_autocast(net, "bfloat16")  # idempotent
    assert type(net[0]).__name__ == "Float32Conv2d" and net[0].weight.dtype == torch.float32


def test_narrow_end_rule_and_validation():
    assert is_narrow_end(torch.nn.Conv2d(320, 4, 3)) and is_narrow_end(torch.nn.Linear(8, 64))
    assert not is_narrow_end(torch.nn.Linear(9, 64)) and not is_narrow_end(torch.nn.Conv2d(9, 9, 1))
    assert parse_autocast(torch.float16) == torch.float16
    with pytest.raises(ValueError, match="autocast 'int8': use one of bfloat16, float16"):
        parse_autocast("int8")
    with pytest.raises(ValueError, match="needs a float32 model; GroupNorm has torch.bfloat16"):
        prepare_for_autocast(torch.nn.Sequential(torch.nn.GroupNorm(4, 16)).to(B), "bfloat16")
    with pytest.raises(ValueError, match="needs a float32 model; Conv2d has torch.float16"):
        prepare_for_autocast(torch.nn.Conv2d(16, 16, 3).half(), "bfloat16")


def test_autocast_calls_hand_back_float32():
    conv = prepare_for_autocast(torch.nn.Conv2d(16, 16, 3), "bfloat16")
    from marigold_toolkit.pipeline.backends import ModelCalls

    calls = autocast_calls(ModelCalls("eager", lambda s, t, e: conv(s), conv, conv), "bfloat16", "cpu")
    x = torch.randn(1, 16, 6, 6)
    assert calls.unet(x, 1, None).dtype == calls.encode(x).dtype == calls.decode(x).dtype == torch.float32
    with pytest.raises(RuntimeError):  # outside autocast a bf16 layer refuses float32 input
        conv(x)


def test_autocast_predictor_is_close_to_float32_with_a_float32_loop(depth_ckpt):
    ref = Predictor.from_pretrained(depth_ckpt)
    mixed = Predictor.from_pretrained(depth_ckpt, autocast="bfloat16")
    assert mixed.dtype == torch.float32 and mixed.autocast == B
    assert mixed.unet.conv_in.weight.dtype == mixed.unet.conv_out.weight.dtype == torch.float32
    assert mixed.vae.decoder.conv_out.weight.dtype == mixed.vae.post_quant_conv.weight.dtype == torch.float32
    assert mixed.vae.decoder.up_blocks[0].resnets[0].conv1.weight.dtype == B
    assert mixed.unet.down_blocks[0].resnets[0].norm1.weight.dtype == torch.float32
    kw = dict(num_inference_steps=2, processing_resolution=32, seed=3, output_latent=True)
    a, b = mixed.predict(_image(), **kw), ref.predict(_image(), **kw)
    assert a.latent.dtype == torch.float32  # the loop ran in float32
    assert a.settings["autocast"] == "bfloat16" and a.settings["dtype"] == "float32"
    assert 0 < depth_absrel(a.prediction, b.prediction) < 0.02


def test_autocast_refuses_half_models_and_onnx(depth_ckpt):
    with pytest.raises(ValueError, match="autocast=bfloat16 needs float32 models .* not dtype float16"):
        Predictor.from_pretrained(depth_ckpt, dtype="float16", autocast="bfloat16")
    with pytest.raises(BackendError, match="autocast applies to the torch backends"):
        Predictor.from_pretrained(depth_ckpt, autocast="bfloat16").use_onnx("unused")


def test_label_settings_hash_keeps_old_jobs_and_records_autocast(depth_ckpt):
    from marigold_toolkit.checkpoints.loading import load_spec

    spec = load_spec(depth_ckpt)
    plain, mixed = InferenceSettings(), InferenceSettings(autocast="bfloat16")
    assert "autocast" not in result_settings(spec, plain)  # jobs written before autocast keep their hash
    assert result_settings(spec, mixed)["autocast"] == "bfloat16"
    assert mixed.predictor_kwargs()["autocast"] == "bfloat16"


def test_cli_autocast_flag(depth_ckpt, tmp_path):
    from PIL import Image

    from marigold_toolkit.cli.main import main

    Image.fromarray(_image()).save(tmp_path / "a.png")
    common = ["--model", str(depth_ckpt), "--steps", "1", "--processing-resolution", "32", "--seed", "0"]
    assert main(["predict", str(tmp_path / "a.png"), "--output-dir", str(tmp_path / "m"), "--autocast",
                 "bfloat16", *common]) == 0
    assert main(["predict", str(tmp_path / "a.png"), "--output-dir", str(tmp_path / "e"), *common]) == 0
    mixed, exact = np.load(tmp_path / "m" / "a_depth.npy"), np.load(tmp_path / "e" / "a_depth.npy")
    assert 0 < depth_absrel(mixed, exact) < 0.02


def test_prepared_float32_tensors_no_longer_share_the_loaded_file_memory(depth_ckpt):
    """diffusers loads safetensors weights as slices of the file's memory map; the tensors that stay float32 after
    preparation are copied out of it, so the float32 file can be unmapped once the converted weights let go."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(depth_ckpt / "vae")
    before = {n: (t.untyped_storage().data_ptr(), t.detach().clone()) for n, t in vae.state_dict().items()}
    prepare_for_autocast(vae, "bfloat16")
    kept = {n: t for n, t in vae.state_dict().items() if t.dtype == torch.float32}
    assert kept and len(kept) < len(before)  # norms and narrow ends stay float32, the rest became bf16
    for n, t in kept.items():
        assert t.untyped_storage().data_ptr() != before[n][0], n
        assert torch.equal(t, before[n][1]), n
    prepare_for_autocast(vae, "bfloat16")  # idempotent on a prepared model
    assert all(torch.equal(t, before[n][1]) for n, t in vae.state_dict().items() if t.dtype == torch.float32)


def _output_dtypes(model: torch.nn.Module, classes: tuple[str, ...], run) -> dict[str, set]:
    """``{class name: dtypes of those modules' outputs}`` while ``run()`` calls ``model`` under bf16 autocast (a
    module counts for the first of ``classes`` its class name contains)."""
    seen: dict[str, set] = {}

    def record(name):
        def hook(module, args, out):
            seen.setdefault(name, set()).add((out[0] if isinstance(out, tuple) else out).dtype)
        return hook

    hooks = []
    for m in model.modules():
        name = next((c for c in classes if c in type(m).__name__), None)
        if name is not None:
            hooks.append(m.register_forward_hook(record(name)))
    with torch.inference_mode(), torch.autocast("cpu", dtype=B):
        run()
    for h in hooks:
        h.remove()
    return seen


def test_autocast_keeps_the_residual_streams_float32(depth_ckpt):
    """Every block (resnet, sampler, attention, transformer) hands float32 on, while its convolutions compute in
    bf16: in the UNet every half-precision layer returns float32, in the VAE the ones that write into a stream."""
    p = Predictor.from_pretrained(depth_ckpt, autocast="bfloat16")
    blocks = ("ResnetBlock2D", "Upsample2D", "Downsample2D", "Transformer2DModel", "Attention")
    text = p.components.empty_text_embedding.float()
    unet = _output_dtypes(p.unet, (*blocks, "Conv2d", "Linear"),
                          lambda: p.unet(torch.randn(1, 8, 8, 8), 999, encoder_hidden_states=text))
    assert {"ResnetBlock2D", "Transformer2DModel", "Downsample2D", "Conv2d", "Linear"} <= set(unet)
    assert all(dtypes == {torch.float32} for dtypes in unet.values()), unet
    resnet = p.vae.decoder.up_blocks[0].resnets[0]
    vae = _output_dtypes(p.vae, blocks,
                         lambda: p.vae.decode(p.vae.encode(torch.randn(1, 3, 32, 32)).latent_dist.mode()))
    inner = _output_dtypes(resnet.conv1, ("Conv2d",), lambda: resnet(torch.randn(1, resnet.in_channels, 4, 4), None))
    assert {"ResnetBlock2D", "Upsample2D", "Downsample2D", "Attention"} <= set(vae)
    assert all(dtypes == {torch.float32} for dtypes in vae.values()), vae
    assert inner == {"Conv2d": {B}} and resnet.conv1.weight.dtype == resnet.conv2.weight.dtype == B
    assert type(resnet.conv2).__name__ == "Float32OutputConv2d"
    prepare_for_autocast(p.vae, "bfloat16", float32_outputs="all")  # preparing again applies the new choice
    inner = _output_dtypes(resnet.conv1, ("Conv2d",), lambda: resnet(torch.randn(1, resnet.in_channels, 4, 4), None))
    assert inner == {"Conv2d": {torch.float32}}
    prepare_for_autocast(p.vae, "bfloat16")
    assert type(resnet.conv1) is torch.nn.Conv2d and type(resnet.conv2).__name__ == "Float32OutputConv2d"
    with pytest.raises(ValueError, match="float32_outputs 'some': use one of all, residual"):
        prepare_for_autocast(p.vae, "bfloat16", float32_outputs="some")

"""The machine-aware fast tier (issue 15, item 2): CPU feature detection, the plan per machine, and what
``fast=True`` / ``--fast`` then runs (within the fast tier's tolerance of float32 eager)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from marigold_toolkit import Predictor
from marigold_toolkit.core.machine import CpuInfo, cpu_info, parse_cpuinfo
from marigold_toolkit.pipeline import fast as fast_module
from marigold_toolkit.pipeline.backends import FAST_TIER_ABSREL_TOL, depth_absrel
from marigold_toolkit.pipeline.fast import choose_fast_plan, fast_settings

COFFEE = Path(__file__).resolve().parents[2] / "examples" / "coffee.jpg"

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu vme sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu
"""
EPYC_ROME = """processor\t: 0
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse4_2 avx avx2 fma
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp bf16 i8mm
"""


def test_cpu_flags_are_parsed_from_the_first_processor():
    spr = parse_cpuinfo(SAPPHIRE_RAPIDS, cores=2)
    assert spr.model == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz" and spr.cores == 2
    assert spr.native_bf16 and spr.native_fp16 and spr.amx  # the second processor's short list is not read
    assert spr.simd() == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni",
                          "amx_bf16", "amx_tile"]
    rome = parse_cpuinfo(EPYC_ROME, cores=4)
    assert not rome.native_bf16 and not rome.native_fp16 and not rome.amx
    assert rome.describe() == "AMD EPYC 7B12, 4 cores, flags sse4_2 avx avx2 fma"
    arm = parse_cpuinfo(GRAVITON, cores=1)  # ARM: 'Features', no model name; its bf16 is not an x86 flag we use
    assert arm.model == "unknown CPU" and "asimd" in arm.flags and not arm.native_bf16
    assert parse_cpuinfo("", cores=3).describe().startswith("unknown CPU, 3 cores, flags (none of ")


def test_unreadable_cpuinfo_is_an_unknown_cpu(tmp_path):
    info = cpu_info(tmp_path / "missing")
    assert info.model == "unknown CPU" and not info.flags


@pytest.mark.parametrize("text, dtype, channels_last", [(SAPPHIRE_RAPIDS, "bfloat16", True),
                                                        (EPYC_ROME, "float32", False)])
def test_cpu_plans_follow_the_flags(text, dtype, channels_last):
    plan = choose_fast_plan("cpu", parse_cpuinfo(text, 2))
    assert (plan.dtype, plan.channels_last, plan.backend, plan.compile_mode) == (dtype, channels_last, "eager", None)
    assert plan.autocast == (dtype == "bfloat16")  # the models stay float32, bf16 runs under autocast
    assert parse_cpuinfo(text).model in plan.reason
    assert ("has native bfloat16 (avx512_bf16 amx_bf16)" in plan.reason) == (dtype == "bfloat16")


def test_gpu_plans():
    old = choose_fast_plan("cuda", cuda_capability=(7, 0))
    new = choose_fast_plan("cuda:1", cuda_capability=(8, 9))
    assert (old.dtype, new.dtype) == ("float16", "bfloat16")
    assert new.backend == "compile" and new.compile_mode == "reduce-overhead" and new.channels_last
    assert "8.9" in new.reason and "CUDA graphs" in new.reason
    assert choose_fast_plan("mps").dtype == "float16"
    assert new.describe().startswith("bfloat16, channels-last, torch.compile (reduce-overhead): CUDA device")
    assert not new.autocast and not old.autocast


def test_fast_settings_resolve_once_and_keep_what_was_given(monkeypatch):
    monkeypatch.setattr(fast_module, "cpu_info", lambda: parse_cpuinfo(SAPPHIRE_RAPIDS, 2))
    assert fast_settings(True, "cpu", None, False) == ("float32", True, "bfloat16")
    assert fast_settings(True, "cpu", "float32", False) == ("float32", True, None)  # a given dtype: no autocast
    assert fast_settings(True, "cpu", "bfloat16", False) == ("bfloat16", True, None)
    assert fast_settings(True, "cpu", None, False, "float16") == ("float32", True, "float16")
    assert fast_settings(False, "cpu", None, False) == ("float32", False, None)
    assert fast_settings(False, "cpu", None, False, "bfloat16") == ("float32", False, "bfloat16")
    monkeypatch.setattr(fast_module, "cpu_info", lambda: parse_cpuinfo(EPYC_ROME, 2))
    assert fast_settings(True, "cpu", None, False) == ("float32", False, None)


def _image(h=40, w=56, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_fast_predictor_on_a_bf16_cpu_runs_bf16_autocast_channels_last(depth_ckpt, monkeypatch, caplog):
    """On a CPU with native bf16 the plan is bfloat16 autocast + channels-last, logged with its reason (the image is
    larger than the processing resolution, so the path also resizes down; outputs are float32)."""
    monkeypatch.setattr(fast_module, "cpu_info", lambda: parse_cpuinfo(SAPPHIRE_RAPIDS, 2))
    with caplog.at_level(logging.INFO, logger="marigold_toolkit.pipeline"):
        fast = Predictor.from_pretrained(depth_ckpt, fast=True)
    assert fast.dtype == torch.float32 and fast.autocast == torch.bfloat16 and fast.channels_last
    assert fast.backend == "eager"
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.unet.conv_in.weight.dtype == torch.float32  # a narrow end
    assert fast.unet.down_blocks[0].resnets[0].conv1.weight.dtype == torch.bfloat16
    assert any("fast tier: bfloat16 autocast, channels-last, eager" in r.getMessage() and "amx_bf16" in r.getMessage()
               for r in caplog.records)
    ref = Predictor.from_pretrained(depth_ckpt)
    kw = dict(num_inference_steps=2, processing_resolution=32, seed=3)
    out, exact = fast.predict(_image(), **kw), ref.predict(_image(), **kw)
    assert out.settings["fast"] and out.settings["dtype"] == "float32" and out.settings["autocast"] == "bfloat16"
    assert not exact.settings["fast"] and exact.settings["autocast"] is None
    assert out.prediction.dtype == np.float32 and out.prediction.shape == exact.prediction.shape
    assert 0 < depth_absrel(out.prediction, exact.prediction) < 0.02  # random weights: bf16 rounding only


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.jpg"))


def test_fast_tier_on_the_trained_demo_model_is_within_tolerance():
    """The fast tier's promise on a trained model (the bundled demo, the four example photos at its resolution,
    ensemble 1): bfloat16 autocast channels-last within FAST_TIER_ABSREL_TOL (0.5 % AbsRel) of float32 eager on
    every photo, within 0.8x that on average, and closer on average than half of casting the models to bfloat16.
    Which photo is worst depends on the CPU's bf16 kernels (README "Fast tier on a CPU with native bfloat16")."""
    from PIL import Image

    kw = dict(seed=0, ensemble_size=1)
    photos = [np.asarray(Image.open(f).convert("RGB")) for f in EXAMPLES]
    predictors = {name: Predictor.from_pretrained("demo-depth", **options) for name, options in [
        ("exact", {}), ("autocast", dict(autocast="bfloat16", channels_last=True)),
        ("cast", dict(dtype="bfloat16", channels_last=True))]}
    out = {name: [p.predict(x, **kw).prediction for x in photos] for name, p in predictors.items()}
    dev = {name: [depth_absrel(a, b) for a, b in zip(out[name], out["exact"])] for name in ("autocast", "cast")}
    assert all(0 < d <= FAST_TIER_ABSREL_TOL for d in dev["autocast"]), dev
    assert np.mean(dev["autocast"]) <= 0.8 * FAST_TIER_ABSREL_TOL, dev
    assert np.mean(dev["autocast"]) < 0.5 * np.mean(dev["cast"]), dev


def test_fast_predictor_elsewhere_is_the_float32_reference(depth_ckpt, monkeypatch):
    monkeypatch.setattr(fast_module, "cpu_info", lambda: parse_cpuinfo(EPYC_ROME, 2))
    fast = Predictor.from_pretrained(depth_ckpt, fast=True)
    assert fast.dtype == torch.float32 and not fast.channels_last
    kw = dict(num_inference_steps=1, processing_resolution=32, seed=0)
    np.testing.assert_array_equal(fast.predict(_image(), **kw).prediction,
                                  Predictor.from_pretrained(depth_ckpt).predict(_image(), **kw).prediction)


def test_explicit_settings_win_over_the_plan(depth_ckpt, monkeypatch):
    monkeypatch.setattr(fast_module, "cpu_info", lambda: parse_cpuinfo(SAPPHIRE_RAPIDS, 2))
    p = Predictor.from_pretrained(depth_ckpt, fast=True, dtype="float32")
    assert p.dtype == torch.float32 and p.channels_last
    assert p.fast_plan is not None and p.fast_plan.dtype == "bfloat16"


def test_cli_fast_flag_logs_the_plan(depth_ckpt, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from marigold_toolkit.cli.main import main

    monkeypatch.setattr(fast_module, "cpu_info", lambda: CpuInfo("Test CPU", 2, frozenset({"avx2"})))
    Image.fromarray(_image()).save(tmp_path / "a.png")
    rc = main(["-v", "predict", str(tmp_path / "a.png"), "--model", str(depth_ckpt), "--output-dir",
               str(tmp_path / "out"), "--fast", "--steps", "1", "--processing-resolution", "32"])
    assert rc == 0 and (tmp_path / "out" / "a_depth.npy").is_file()
    assert "fast tier: float32, eager: Test CPU has no native half precision" in capsys.readouterr().err

"""Checkpoint resolution and loading: every public layout, hub ids through the HF cache, variants, dtypes."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from marigold_toolkit import CheckpointError, Predictor
from marigold_toolkit.checkpoints import read_spec, resolve_checkpoint_path
from marigold_toolkit.checkpoints.loading import compute_empty_text_embedding, parse_dtype, resolve_device
from marigold_toolkit.testing import build_random_checkpoint
from marigold_toolkit.checkpoints.registry import list_models, resolve_alias

EXPECTED = {
    "depth-v1-0": ("depth", ["depth"], 10, "DDIMScheduler", "leading"),
    "depth-lcm-v1-0": ("depth", ["depth"], 1, "LCMScheduler", None),
    "depth-v1-1": ("depth", ["depth"], 4, "DDIMScheduler", "trailing"),
    "normals-v1-1": ("normals", ["normals"], 4, "DDIMScheduler", "trailing"),
    "iid-appearance-v1-1": ("intrinsics", ["albedo", "material"], 4, "DDIMScheduler", "trailing"),
    "iid-lighting-v1-1": ("intrinsics", ["albedo", "shading", "residual"], 4, "DDIMScheduler", "trailing"),
    "depth-disparity-v1-1": ("depth", ["disparity"], 4, "DDIMScheduler", "trailing"),
}


@pytest.mark.parametrize("layout", sorted(EXPECTED))
def test_spec_read_from_model_index(checkpoints, layout):
    task, targets, steps, sched, spacing = EXPECTED[layout]
    spec = read_spec(checkpoints[layout])
    assert (spec.task.name, spec.target_names, spec.default_denoising_steps, spec.scheduler_class) == (
        task, targets, steps, sched)
    assert spec.default_processing_resolution == 768
    p = Predictor.from_pretrained(checkpoints[layout])
    assert type(p.scheduler).__name__ == sched
    if spacing:
        assert p.scheduler.config.timestep_spacing == spacing
        assert p.scheduler.config.rescale_betas_zero_snr == (spacing == "trailing")
    assert p.unet.config.in_channels == 4 * (1 + len(targets)) and p.unet.config.out_channels == 4 * len(targets)
    if task == "intrinsics":
        assert spec.task.target_properties["target_names"] == targets
    if layout == "iid-appearance-v1-1":
        assert p.task.sub_targets("material") == ["roughness", "metallicity", None]


def test_marigold_hr_layout_is_refused_with_the_reason(checkpoints, tmp_path, capsys):
    """A folder whose model_index.json names MarigoldDepthHRPipeline (prs-eth/marigold-depth-hr-v1-1: unet +
    boosting_unet; its semantics live only in the hub's pipeline.py) is not loaded as a plain depth model."""
    from marigold_toolkit.cli.main import main

    folder = tmp_path / "marigold-depth-hr"
    shutil.copytree(checkpoints["depth-v1-1"], folder)
    shutil.copytree(folder / "unet", folder / "boosting_unet")
    index = json.loads((folder / "model_index.json").read_text())
    index.update(_class_name="MarigoldDepthHRPipeline", boosting_unet=["diffusers", "UNet2DConditionModel"])
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="Marigold-HR .* is not supported: its second 'boosting' UNet"):
        read_spec(folder)
    img = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    assert main(["predict", str(img), "--model", str(folder), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "pipeline.py" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_task_fields_are_not_tied_to_names(checkpoints, tmp_path):
    """A depth checkpoint declaring scale-only invariance is treated as such (read from model_index)."""
    folder = tmp_path / "anything"
    shutil.copytree(checkpoints["depth-v1-1"], folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["shift_invariant"] = False
    (folder / "model_index.json").write_text(json.dumps(index))
    p = Predictor.from_pretrained(folder)
    assert p.task.scale_invariant and not p.task.shift_invariant


def test_empty_text_embedding_and_text_encoder_released(depth_ckpt):
    from transformers import CLIPTextModel

    def alive() -> int:  # text encoders held elsewhere (e.g. the parity tests' cached diffusers pipelines) stay
        gc.collect()
        return sum(isinstance(o, CLIPTextModel) for o in gc.get_objects())

    before = alive()
    p = Predictor.from_pretrained(depth_ckpt)
    emb = p.components.empty_text_embedding
    assert emb.shape == (1, 2, 32)
    assert alive() == before, "text encoder must be released"
    assert not hasattr(p, "text_encoder") and not hasattr(p.components, "text_encoder")
    # equals the reference computation with the checkpoint's own tokenizer/text encoder
    import diffusers

    pipe = diffusers.MarigoldDepthPipeline.from_pretrained(depth_ckpt)
    ids = pipe.tokenizer("", padding="do_not_pad", max_length=pipe.tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids
    assert ids.shape == (1, 2)
    with torch.no_grad():
        ref = pipe.text_encoder(ids)[0]
    torch.testing.assert_close(emb, ref, atol=0, rtol=0)


def test_tokenizer_json_only_form(tmp_path, depth_ckpt):
    """transformers 5 writes only tokenizer.json; both tokenizer forms give the same embedding."""
    folder = build_random_checkpoint(tmp_path / "tokjson", "depth-v1-1", seed=2, tokenizer_json_only=True)
    assert (folder / "tokenizer" / "tokenizer.json").exists()
    assert not (folder / "tokenizer" / "vocab.json").exists()
    assert (depth_ckpt / "tokenizer" / "vocab.json").exists() and (depth_ckpt / "tokenizer" / "merges.txt").exists()
    a = compute_empty_text_embedding(folder)
    b = compute_empty_text_embedding(depth_ckpt)  # same text encoder weights (seed 2 == depth-v1-1's seed)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_matches_diffusers(depth_ckpt, dtype):
    import diffusers
    from PIL import Image

    torch_dtype = parse_dtype(dtype)
    variant = "fp16" if dtype == "float16" else None
    p = Predictor.from_pretrained(depth_ckpt, dtype=dtype, variant=variant)
    assert p.unet.dtype == torch_dtype and p.vae.dtype == torch_dtype
    assert p.components.empty_text_embedding.dtype == torch_dtype
    img = Image.fromarray((np.random.default_rng(1).random((24, 40, 3)) * 255).astype(np.uint8))
    ours = p.predict(img, num_inference_steps=2, processing_resolution=0, seed=4).prediction
    pipe = diffusers.MarigoldDepthPipeline.from_pretrained(depth_ckpt, variant=variant, torch_dtype=torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(img, num_inference_steps=2, processing_resolution=0,
               generator=torch.Generator("cpu").manual_seed(4)).prediction[0, ..., 0]
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=2e-2)
    # (no comparison with float32: like diffusers, the initial noise is drawn in the model dtype)
    assert np.isfinite(ours).all() and 0.0 <= ours.min() and ours.max() <= 1.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_resizes_real_photos_down_on_the_cpu(depth_ckpt, dtype):
    """A photo larger than the processing resolution works in half precision on the CPU: the antialiased resize
    runs in float32 (cast back to the model dtype), ensembling and the resize back in float32."""
    p16 = Predictor.from_pretrained(depth_ckpt, dtype=dtype, device="cpu")
    p32 = Predictor.from_pretrained(depth_ckpt, dtype="float32", device="cpu")
    img = (np.random.default_rng(3).random((90, 120, 3)) * 255).astype(np.uint8)
    x16, pad16, size16, proc16 = p16.prepare_image(img, 48)
    x32, pad32, size32, proc32 = p32.prepare_image(img, 48)
    assert x16.dtype == parse_dtype(dtype) and (pad16, size16, proc16) == (pad32, size32, proc32) == ((4, 0), (90, 120), (36, 48))
    torch.testing.assert_close(x16.float(), x32, atol=2e-2, rtol=0)  # the same image, rounded to half precision
    out = p16.predict(img, num_inference_steps=1, ensemble_size=2, processing_resolution=48, seed=0)
    assert out.prediction.shape == (90, 120) and out.prediction.dtype == np.float32
    assert np.isfinite(out.prediction).all() and np.isfinite(out.uncertainty["depth"]).all()


def test_fp16_variant_files_are_used(depth_ckpt):
    p = Predictor.from_pretrained(depth_ckpt, variant="fp16", dtype="float32")
    from safetensors.torch import load_file

    half = load_file(depth_ckpt / "unet" / "diffusion_pytorch_model.fp16.safetensors")
    name = "conv_in.weight"
    torch.testing.assert_close(p.unet.state_dict()[name], half[name].float(), atol=0, rtol=0)


def test_variant_falls_back_per_component(checkpoints):
    """A variant the checkpoint lacks falls back to the default weights instead of failing."""
    p = Predictor.from_pretrained(checkpoints["normals-v1-1"], variant="fp16")
    assert p.unet.dtype == torch.float32


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda f: (f / "model_index.json").unlink(), "model_index.json: missing"),
        (lambda f: (f / "model_index.json").write_text("{not json"), "not valid JSON"),
        (lambda f: shutil.rmtree(f / "unet"), "'unet/' is missing"),
        (lambda f: _edit(f / "model_index.json", scheduler=["diffusers", "EulerDiscreteScheduler"]), "not supported"),
        (lambda f: _edit(f / "unet" / "config.json", out_channels=8), "do not match"),
        (lambda f: _edit(f / "model_index.json", _class_name="StableDiffusionPipeline", prediction_type=None,
                         scale_invariant=None, shift_invariant=None), None),
    ],
)
def test_bad_checkpoints_give_clear_errors(depth_ckpt, tmp_path, mutate, match):
    folder = tmp_path / "ckpt"
    shutil.copytree(depth_ckpt, folder)
    mutate(folder)
    if match is None:  # ambiguous index: nothing tells the task
        index = json.loads((folder / "model_index.json").read_text())
        for k in ("scale_invariant", "shift_invariant", "prediction_type"):
            index.pop(k, None)
        (folder / "model_index.json").write_text(json.dumps(index))
        match = "cannot tell the task"
    with pytest.raises(CheckpointError, match=match):
        Predictor.from_pretrained(folder)


def _edit(path: Path, **updates) -> None:
    data = json.loads(path.read_text())
    data.update(updates)
    path.write_text(json.dumps(data))


def test_missing_folder_and_bad_ids():
    with pytest.raises(CheckpointError, match="no such folder"):
        resolve_checkpoint_path("./does/not/exist")
    with pytest.raises(CheckpointError, match="no such folder"):
        resolve_checkpoint_path("not a hub id")


def _run(code: str, env_updates: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(env_updates)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_offline_uncached_hub_id_error(tmp_path):
    code = ("from marigold_toolkit import Predictor, CheckpointError\n"
            "try:\n    Predictor.from_pretrained('prs-eth/marigold-depth-v1-1')\n"
            "except CheckpointError as e:\n    print('ERR', e)\n")
    r = _run(code, {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert r.returncode == 0, r.stderr
    msg = r.stdout.strip()
    assert msg.startswith("ERR model 'prs-eth/marigold-depth-v1-1' is not in the local Hugging Face cache")
    assert "--model ./marigold-depth-v1-1" in msg and "\n" not in msg


@pytest.mark.slow
def test_hub_id_and_alias_load_from_hf_cache(depth_ckpt, tmp_path):
    """A hub id resolves through huggingface_hub's cache layout: the same code path as a real download."""
    cache = tmp_path / "hub"
    repo = cache / "models--prs-eth--marigold-depth-v1-1"
    sha = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(depth_ckpt, repo / "snapshots" / sha)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    code = ("from marigold_toolkit import Predictor\n"
            "for name in ('prs-eth/marigold-depth-v1-1', 'depth-v1-1'):\n"
            "    p = Predictor.from_pretrained(name)\n"
            "    print(p.task.name, p.spec.path.name, p.spec.default_denoising_steps)\n")
    r = _run(code, {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["depth", sha, "4"] * 2


def test_registry_aliases():
    assert resolve_alias("normals-v1-1") == "prs-eth/marigold-normals-v1-1"
    assert resolve_alias("DEPTH-LCM-V1-0") == "prs-eth/marigold-depth-lcm-v1-0"
    assert resolve_alias("some/other") == "some/other"
    assert {m.hub_id for m in list_models()} >= {
        "prs-eth/marigold-depth-v1-0", "prs-eth/marigold-depth-lcm-v1-0", "prs-eth/marigold-depth-v1-1",
        "prs-eth/marigold-normals-v1-1", "prs-eth/marigold-iid-appearance-v1-1", "prs-eth/marigold-iid-lighting-v1-1"}


def test_dtype_and_device_parsing():
    assert parse_dtype("fp16") is torch.float16 and parse_dtype("bfloat16") is torch.bfloat16
    assert parse_dtype(None) is torch.float32
    with pytest.raises(ValueError, match="unsupported dtype"):
        parse_dtype("float64")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_half_precision_on_a_cpu_without_native_support_warns():
    """bf16/fp16 on a CPU without the matching native flags runs emulated (~100x slower than float32 on an AVX2
    EPYC): one warning naming the CPU; none on a GPU, for float32, or where the flags are present."""
    import torch

    from marigold_toolkit.checkpoints.loading import slow_half_precision_warning
    from marigold_toolkit.core.machine import CpuInfo

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    avx2 = CpuInfo("AMD EPYC 7B13", 2, frozenset({"avx2", "fma"}))
    message = slow_half_precision_warning(torch.bfloat16, cpu, avx2)
    assert "bfloat16" in message and "AMD EPYC 7B13" in message and "avx512_bf16" in message and "\n" not in message
    assert slow_half_precision_warning(torch.float16, cpu, avx2) is not None
    assert slow_half_precision_warning(torch.float32, cpu, avx2) is None
    assert slow_half_precision_warning(torch.bfloat16, gpu, avx2) is None
    spr = CpuInfo("Xeon", 2, frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}))
    assert slow_half_precision_warning(torch.bfloat16, cpu, spr) is None
    assert slow_half_precision_warning(torch.float16, cpu, spr) is not None  # bf16 units, no fp16 ones
    assert slow_half_precision_warning(torch.float16, cpu, CpuInfo("Xeon", 2, frozenset({"avx512_fp16"}))) is None

"""End-to-end fine-tuned checkpoints (E2E-FT, Martin Garcia et al.): published Stable Diffusion layout, one
deterministic step from a zero latent, the last step's clean-sample estimate as the result."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from marigold_toolkit import Predictor
from marigold_toolkit.checkpoints.model_index import TOOLKIT_KEY, read_spec
from marigold_toolkit.checkpoints.resolve import CheckpointError
from marigold_toolkit.testing import build_random_e2e_ft_checkpoint

from .oracle import stack_ours


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    return {"depth": build_random_e2e_ft_checkpoint(root / "depth", n_targets=1, seed=3),
            "normals": build_random_e2e_ft_checkpoint(root / "normals", n_targets=1, seed=4)}


def _image(h=36, w=52, seed=0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8))


def _diffusers_zero_latent(path, task, image, **config):
    """diffusers' Marigold pipeline on the E2E-FT weights, run from a zero latent in one trailing DDIM step with
    ``set_alpha_to_one`` so that its ``prev_sample`` is the clean-sample estimate."""
    from transformers import CLIPTextModel, CLIPTokenizer

    scheduler = diffusers.DDIMScheduler.from_pretrained(path / "scheduler", set_alpha_to_one=True)
    assert scheduler.config.timestep_spacing == "trailing"
    cls = diffusers.MarigoldDepthPipeline if task == "depth" else diffusers.MarigoldNormalsPipeline
    pipe = cls(unet=diffusers.UNet2DConditionModel.from_pretrained(path / "unet"),
               vae=diffusers.AutoencoderKL.from_pretrained(path / "vae"), scheduler=scheduler,
               text_encoder=CLIPTextModel.from_pretrained(path / "text_encoder"),
               tokenizer=CLIPTokenizer.from_pretrained(path / "tokenizer"), **config)
    pipe.set_progress_bar_config(disable=True)
    h, w = image.size[1], image.size[0]
    latents = torch.zeros(1, 4, (h + 7) // 8, (w + 7) // 8)
    return pipe(image, num_inference_steps=1, processing_resolution=0, latents=latents).prediction


def test_published_layout_needs_the_task(e2e):
    index = json.loads((e2e["depth"] / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    with pytest.raises(CheckpointError, match=r"cannot tell the task.*depth, normals, intrinsics.*--task"):
        read_spec(e2e["depth"])
    spec = read_spec(e2e["depth"], task="depth")
    assert spec.task.name == "depth" and spec.initial_noise == "zeros"
    assert read_spec(e2e["depth"], task="depth", initial_noise="gaussian").initial_noise == "gaussian"
    with pytest.raises(CheckpointError, match="initial_noise 'uniform'"):
        read_spec(e2e["depth"], task="depth", initial_noise="uniform")


@pytest.mark.parametrize("task", ["depth", "normals"])
def test_zero_noise_matches_diffusers_from_a_zero_latent(e2e, task):
    img = _image(seed=1)
    config = {"prediction_type": "depth"} if task == "depth" else {}
    ref = _diffusers_zero_latent(e2e[task], task, img, **config)
    pred = Predictor.from_pretrained(e2e[task], task=task)
    out = pred.predict(img, processing_resolution=0, seed=0)
    assert out.settings["noise"] == "zeros" and out.settings["num_inference_steps"] == 1
    np.testing.assert_allclose(stack_ours(out.targets), ref, atol=1e-4, rtol=0)
    # deterministic: the seed does not matter
    other = pred.predict(img, processing_resolution=0, seed=123)
    np.testing.assert_array_equal(stack_ours(other.targets), stack_ours(out.targets))


def test_clean_sample_is_not_the_published_schedulers_prev_sample(e2e):
    """With the checkpoint's own scheduler (``set_alpha_to_one`` false) the last ``prev_sample`` re-noises the
    estimate towards t = 0; the result must be the estimate itself, so it differs from diffusers' default run."""
    img = _image(seed=2)
    pipe = diffusers.MarigoldDepthPipeline.from_pretrained(e2e["depth"], prediction_type="depth")
    pipe.set_progress_bar_config(disable=True)
    assert not pipe.scheduler.config.set_alpha_to_one
    prev = pipe(img, num_inference_steps=1, processing_resolution=0, latents=torch.zeros(1, 4, 5, 7)).prediction
    ours = Predictor.from_pretrained(e2e["depth"], task="depth").predict(img, processing_resolution=0)
    ref = _diffusers_zero_latent(e2e["depth"], "depth", img, prediction_type="depth")
    np.testing.assert_allclose(stack_ours(ours.targets), ref, atol=1e-4, rtol=0)
    assert np.abs(stack_ours(ours.targets) - prev).max() > 1e-3


def test_gaussian_override_is_stochastic_and_uses_prev_sample(e2e, caplog):
    pred = Predictor.from_pretrained(e2e["depth"], task="depth")
    img = _image(seed=3)
    a = pred.predict(img, processing_resolution=0, seed=1, noise="gaussian")
    b = pred.predict(img, processing_resolution=0, seed=2, noise="gaussian")
    assert a.settings["noise"] == "gaussian"
    assert np.abs(a.targets["depth"] - b.targets["depth"]).max() > 1e-4
    with pytest.raises(ValueError, match="unknown noise 'uniform'"):
        pred.predict(img, noise="uniform")
    with caplog.at_level("WARNING"):
        pred.predict(img, processing_resolution=0, ensemble_size=2)
    assert "every ensemble member the same" in caplog.text


def test_alias_loads_the_published_layout_from_the_hf_cache(e2e, tmp_path):
    """``e2e-ft-depth`` resolves to GonzaloMG/marigold-e2e-ft-depth in the local HF cache; the registry supplies
    the task and the zero noise. The CLI reads the same checkpoint with ``--task depth``."""
    import shutil

    snap = tmp_path / "hub" / "models--GonzaloMG--marigold-e2e-ft-depth"
    shutil.copytree(e2e["depth"], snap / "snapshots" / ("0" * 40))
    (snap / "refs").mkdir()
    (snap / "refs" / "main").write_text("0" * 40)
    img_path = tmp_path / "in" / "a.png"
    img_path.parent.mkdir()
    _image(seed=4).save(img_path)
    code = ("import sys, numpy as np\n"
            "from marigold_toolkit import Predictor\n"
            "p = Predictor.from_pretrained('e2e-ft-depth')\n"
            "out = p.predict(sys.argv[1], processing_resolution=0)\n"
            "np.save(sys.argv[2], out.targets['depth'])\n"
            "print(p.spec.task.name, p.spec.initial_noise)\n")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", code, str(img_path), str(tmp_path / "alias.npy")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["depth", "zeros"]
    direct = Predictor.from_pretrained(e2e["depth"], task="depth").predict(str(img_path), processing_resolution=0)
    np.testing.assert_array_equal(np.load(tmp_path / "alias.npy"), direct.targets["depth"])

    r = subprocess.run([sys.executable, "-m", "marigold_toolkit.cli.main", "-q", "predict", str(img_path.parent),
                        "--model", str(e2e["depth"]), "--output-dir", str(tmp_path / "out"),
                        "--processing-resolution", "0"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "--task" in r.stderr
    r = subprocess.run([sys.executable, "-m", "marigold_toolkit.cli.main", "-q", "predict", str(img_path.parent),
                        "--model", str(e2e["depth"]), "--output-dir", str(tmp_path / "out"),
                        "--processing-resolution", "0", "--task", "depth"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_own_e2e_checkpoint_records_zero_noise_and_diffusers_still_loads_it(e2e, tmp_path):
    """Our writer stores ``_marigold_toolkit.initial_noise`` for an end-to-end model; diffusers ignores the block."""
    from marigold_toolkit.checkpoints.model_index import build_model_index

    spec = read_spec(e2e["depth"], task="depth")
    index = build_model_index(spec)
    assert index[TOOLKIT_KEY] == {"initial_noise": "zeros"} and index["_class_name"] == "MarigoldDepthPipeline"
    import shutil

    folder = tmp_path / "ours"
    shutil.copytree(e2e["depth"], folder)
    (folder / "model_index.json").write_text(json.dumps(index))
    assert read_spec(folder).initial_noise == "zeros"
    pipe = diffusers.MarigoldDepthPipeline.from_pretrained(folder)
    assert pipe.unet.config.in_channels == 8


def test_benchmark_protocol_of_a_zero_noise_model_is_one_step_without_ensemble(e2e, tmp_path, capsys):
    """``marigold evaluate`` runs an E2E model as it was trained (NYU's protocol says ensemble 10)."""
    from ..cli._helpers import run_cli
    from ..evaluation.test_benchmarks import make_nyu

    make_nyu(tmp_path / "nyu")
    base = ["evaluate", "--benchmark", "nyu_v2", "--data-dir", str(tmp_path / "nyu"), "--model", str(e2e["depth"]),
            "--task", "depth", "--processing-resolution", "64"]
    code, _, err = run_cli(capsys, *base, "--output-dir", str(tmp_path / "a"))
    assert code == 0, err
    s = json.loads((tmp_path / "a" / "report.json").read_text())["settings"]
    assert (s["num_inference_steps"], s["ensemble_size"]) == (1, 1)
    code, _, err = run_cli(capsys, *base, "--noise", "gaussian", "--output-dir", str(tmp_path / "b"))
    assert code == 0, err
    s = json.loads((tmp_path / "b" / "report.json").read_text())["settings"]
    assert (s["noise"], s["ensemble_size"]) == ("gaussian", 10)

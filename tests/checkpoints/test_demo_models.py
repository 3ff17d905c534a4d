"""The bundled demo models: present in the package, byte-identical to what the recipe documents, loadable by
name offline, and producing sane outputs on the example photos."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit.checkpoints.registry import DEMO_DIR, resolve_alias

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def _sums() -> dict[str, str]:
    return json.loads((DEMO_DIR / "CHECKSUMS.json").read_text())


def test_bundle_matches_its_checksums_and_the_model_card():
    sums = _sums()
    files = sorted(p.relative_to(DEMO_DIR).as_posix() for p in DEMO_DIR.rglob("*")
                   if p.is_file() and p.name != "CHECKSUMS.json")
    assert sorted(sums) == files
    for rel, digest in sums.items():
        assert hashlib.sha256((DEMO_DIR / rel).read_bytes()).hexdigest() == digest, rel
    # the model card documents the weight checksums (the recipe's output)
    card = (REPO / "docs" / "demo-models.md").read_text()
    documented = dict(re.findall(r"`([a-z_/.]+\.safetensors)` \| `([0-9a-f]{64})`", card))
    weights = {k: v for k, v in sums.items() if k.endswith(".safetensors")}
    assert documented == weights
    size = sum((DEMO_DIR / rel).stat().st_size for rel in sums)
    assert size < 30 * 2**20  # "a few tens of MB at most"


@pytest.mark.parametrize("alias,task", [("demo-depth", "depth"), ("demo-normals", "normals")])
def test_demo_model_loads_by_name_offline_and_predicts(alias, task, monkeypatch):
    from marigold_toolkit import Predictor

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert Path(resolve_alias(alias)) == DEMO_DIR / task
    model = Predictor.from_pretrained(alias, device="cpu")
    assert model.task.name == task
    photo = np.asarray(Image.open(EXAMPLES / "coffee.jpg").convert("RGB"))
    out = model.predict(photo, seed=0)
    pred = out.targets[task]
    assert pred.shape[:2] == photo.shape[:2] and np.isfinite(pred).all()
    if task == "depth":
        assert 0.0 <= pred.min() < pred.max() <= 1.0
        assert pred.std() > 0.02  # not a constant map
    else:
        np.testing.assert_allclose(np.linalg.norm(pred, axis=-1), 1.0, atol=1e-3)
        assert (pred[..., 2] > -1e-3).mean() > 0.95  # normals face the camera
    again = model.predict(photo, seed=0).targets[task]
    np.testing.assert_array_equal(pred, again)  # deterministic given the seed


def test_readme_main_command_on_the_examples(tmp_path, monkeypatch):
    """The README's main job: ``marigold predict examples/ --model demo-depth,demo-normals --output-dir outputs
    --preview`` (run in-process, offline)."""
    from marigold_toolkit.cli.main import main

    readme = (REPO / "README.md").read_text()
    cmd = "marigold predict examples/ --model demo-depth,demo-normals --output-dir outputs --preview"
    assert cmd in readme
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(REPO)
    out = tmp_path / "outputs"
    assert main(["predict", "examples/", "--model", "demo-depth,demo-normals", "--output-dir", str(out),
                 "--preview"]) == 0
    for photo in sorted(EXAMPLES.glob("*.jpg")):
        w, h = Image.open(photo).size
        for suffix in ("_depth.npy", "_depth.png", "_depth_colored.png", "_normals.npy", "_normals.png"):
            assert (out / f"{photo.stem}{suffix}").is_file()
        assert np.load(out / f"{photo.stem}_depth.npy").shape == (h, w)
        assert Image.open(out / f"{photo.stem}_preview.png").size == (3 * w, h)  # photo | depth | normals


@pytest.mark.parametrize("alias,task", [("demo-depth", "depth"), ("demo-normals", "normals")])
def test_bundled_tiny_decoders_are_the_distilled_ones(alias, task):
    """``decoder="bundled"`` loads the model's distilled ``tiny_decoder/``: on a smooth target it never saw (a tilted
    plane with a sphere), encoded by the model's VAE, it reproduces the full decoder within a few times its recorded
    held-out deviation; a random decoder of the same architecture is far off."""
    import torch

    from marigold_toolkit import Predictor
    from marigold_toolkit.checkpoints.tiny_decoder import new_tiny_decoder, read_report

    model = Predictor.from_pretrained(alias, decoder="bundled")
    report = read_report(DEMO_DIR / task / "tiny_decoder")
    assert report["task"] == task and report["teacher"] == alias and report["decoder_only"]
    h, w = 128, 160
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    inside = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2) < 0.06
    if task == "depth":
        target = (0.6 * yy + 0.2 * xx - 0.4 - 0.5 * inside.float())[None, None].clamp(-1, 1)
    else:
        nz = torch.ones_like(xx)
        target = torch.stack([0.3 * (xx - 0.4) * inside, 0.3 * (yy - 0.5) * inside, nz])[None]
        target = target / target.norm(dim=1, keepdim=True)
    vae, sf = model.vae, model.vae.config.scaling_factor
    with torch.no_grad():
        z = vae.encode(model.task.encode(target)).latent_dist.mode() * sf
        full = model.task.decode(vae.decode(z / sf).sample)
        tiny = model.task.decode(model.tiny_decoder.decode(z).sample)
        torch.manual_seed(0)
        arch = report["architecture"]
        rand = model.task.decode(new_tiny_decoder(4, arch["width"], tuple(arch["blocks"])).decode(z).sample)
    key = "mean_abs" if task == "depth" else "angular_deg"
    got, random = model.task.deviation(tiny, full)[key], model.task.deviation(rand, full)[key]
    assert got < 4 * report["held_out_deviation"][key] and random > 3 * got

"""The web app in a real headless Chromium (Playwright driving the system's browser): upload a photo, wait for
the prediction, check the shown images and a download against the Predictor, keep a screenshot."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from marigold_toolkit.io.images import load_image  # noqa: E402
from marigold_toolkit.pipeline.predictor import Predictor  # noqa: E402
from marigold_toolkit.serve.app import build_app, launch_app  # noqa: E402
from marigold_toolkit.testing import free_port  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "examples" / "coffee.jpg"
ARTIFACTS = Path(os.environ.get("MARIGOLD_TEST_ARTIFACTS", ROOT / "test-artifacts"))
#: flags for a root, offline, GPU-less machine (no background connections to Google's hosts)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs the system's Chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def predictors():
    return {name: Predictor.from_pretrained(name, device="cpu") for name in ("demo-depth", "demo-normals")}


@pytest.fixture(scope="module")
def app_url(predictors):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_app({n: (lambda p=p: p) for n, p in predictors.items()}, examples=[PHOTO],
                     defaults={"steps": 2, "processing_resolution": 128})
    port = free_port()
    launch_app(demo, port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        page.goto(app_url, wait_until="networkidle")
        yield page
        browser.close()


def _run(page, expect: str, timeout_ms: int = 90_000) -> str:
    """Click Predict and wait for the summary line of a finished run that mentions ``expect``."""
    page.click("#run")
    page.wait_for_function("(x) => { const e = document.querySelector('#summary'); const t = e ? e.innerText : '';"
                           " return t.includes(x) && t.includes('seed') && !t.includes('queue'); }", arg=expect,
                           timeout=timeout_ms)
    return page.locator("#summary").inner_text()


def _shown(page, selector: str) -> list[np.ndarray]:
    imgs = page.locator(f"{selector} img")
    out = []
    for i in range(imgs.count()):
        src = imgs.nth(i).get_attribute("src")
        out.append(np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")))
    return out


def test_no_photo_is_a_clear_message(page):
    page.click("#run")
    page.wait_for_selector("text=upload a photo or pick an example first", timeout=30_000)


def test_upload_predict_show_download(page, predictors, tmp_path):
    page.locator("#input-image input[type=file]").set_input_files(str(PHOTO))
    page.wait_for_selector("#input-image img", timeout=30_000)
    summary = _run(page, "demo-depth")
    assert "demo-depth" in summary and "2 step(s)" in summary and "seed 0" in summary

    photo = load_image(PHOTO)
    ref = predictors["demo-depth"].predict(photo, num_inference_steps=2, processing_resolution=128, seed=0,
                                           batch_size=1)
    shown = _shown(page, "#slider-0")
    assert len(shown) == 2  # input | depth
    np.testing.assert_array_equal(shown[0], photo)
    np.testing.assert_array_equal(shown[1], predictors["demo-depth"].task.visualize("depth", ref.targets["depth"]))

    links = page.locator("#downloads a")
    names = [links.nth(i).get_attribute("download") or links.nth(i).get_attribute("href") for i in
             range(links.count())]
    assert any(n.endswith("prediction_depth.npy") for n in names), names
    assert any(n.endswith("prediction_mesh.glb") for n in names) and any(n.endswith("prediction_points.ply")
                                                                          for n in names)
    k = next(i for i, n in enumerate(names) if n.endswith("prediction_depth.npy"))
    with page.expect_download() as info:
        links.nth(k).click()
    saved = tmp_path / "depth.npy"
    info.value.save_as(saved)
    np.testing.assert_array_equal(np.load(saved), ref.targets["depth"])

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app_depth.png"), full_page=True)


def test_ensemble_shows_uncertainty_and_model_switch(page, predictors):
    page.locator("#model input").click()
    page.locator("[role=option]", has_text="demo-normals").click()
    ens = page.get_by_label("Ensemble size").first
    ens.fill("3")
    ens.press("Enter")
    summary = _run(page, "ensemble 3")
    assert "demo-normals" in summary and "ensemble 3" in summary
    page.screenshot(path=str(ARTIFACTS / "app_normals_uncertainty.png"), full_page=True)
    page.wait_for_selector("#uncertainty img", timeout=10_000)
    photo = load_image(PHOTO)
    ref = predictors["demo-normals"].predict(photo, num_inference_steps=2, processing_resolution=128, seed=0,
                                             ensemble_size=3, batch_size=3)
    shown = _shown(page, "#slider-0")
    np.testing.assert_array_equal(shown[1], predictors["demo-normals"].task.visualize("normals",
                                                                                      ref.targets["normals"]))
    assert len(_shown(page, "#uncertainty")) >= 1
    page.screenshot(path=str(ARTIFACTS / "app_normals_uncertainty.png"), full_page=True)

"""The web app (``marigold app``, Gradio): upload or pick a photo, choose model and settings, see the input and
each output side by side, the uncertainty, and download the arrays, 16-bit PNGs and (depth) PLY / GLB.

The app runs the models in-process (one request at a time per model); it works offline with the demo models.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..tasks import ImageContext
from ..tasks.depth.geometry import MAX_DEPTH_JUMP
from ..visualize import to_uint8_rgb, uncertainty_heatmap

logger = logging.getLogger(__name__)

#: the 3D exports the app offers for tasks that write them
APP_EXPORTS = ("ply", "glb")


class AppModels:
    """The app's models, each loaded on first use and kept (``loaders``: name -> function returning a
    :class:`~marigold_toolkit.pipeline.predictor.Predictor`)."""

    def __init__(self, loaders: Mapping[str, Callable[[], Any]]):
        if not loaders:
            raise ValueError("the app needs at least one model")
        self.loaders = dict(loaders)
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.loaders)

    def get(self, name: str) -> Any:
        with self._lock:
            if name not in self._loaded:
                if name not in self.loaders:
                    raise ValueError(f"model {name!r} is not one of {', '.join(self.loaders)}")
                logger.info("loading model %s", name)
                self._loaded[name] = self.loaders[name]()
            return self._loaded[name]


def run_prediction(models: AppModels, image: np.ndarray, model: str, steps: int, ensemble: int,
                   processing_resolution: int, seed: int, out_root: Path) -> dict[str, Any]:
    """One prediction as the app shows it: per target ``(input, visualisation)`` pairs, uncertainty heat maps
    and the files to download (written under ``out_root``, a folder per call).

    Returns a dict with ``pairs`` (list of ``(label, (input uint8, visualisation uint8))``), ``uncertainty``
    (list of ``(heat map, label)``), ``files`` (paths) and ``summary`` (a Markdown line).
    """
    if image is None:
        raise ValueError("upload a photo or pick an example first")
    predictor = models.get(model)
    task = predictor.task
    rgb = to_uint8_rgb(np.asarray(image))
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    rgb = np.ascontiguousarray(rgb[..., :3])
    out = predictor.predict(rgb, num_inference_steps=int(steps), ensemble_size=int(ensemble),
                            processing_resolution=int(processing_resolution), seed=int(seed),
                            batch_size=int(ensemble))
    folder = Path(tempfile.mkdtemp(prefix="marigold-app-", dir=out_root))
    stem = "prediction"
    files = task.write_outputs(folder, stem, out)
    options = {"export": tuple(f for f in APP_EXPORTS if "export" in task.extra_options), "intrinsics": None,
               "fov_x": None, "sparse_depth": None, "fit_space": "depth", "fit_method": "irls",
               "mesh_max_jump": MAX_DEPTH_JUMP}
    if options["export"]:
        try:
            files += task.write_extras(folder, stem, out, options, ImageContext(rgb, None, [out]))
        except (ImportError, ValueError) as exc:  # a missing optional package: the other downloads stay
            logger.warning("3D export skipped: %s", str(exc).splitlines()[0])
    pairs = [(name, (rgb, task.visualize(name, arr))) for name, arr in out.targets.items()]
    unc = [(uncertainty_heatmap(u), f"{name} uncertainty") for name, u in (out.uncertainty or {}).items()]
    h, w = out.input_size
    summary = (f"**{model}** ({task.name}): {', '.join(out.targets)} at {w}x{h}, {int(steps)} step(s), "
               f"ensemble {int(ensemble)}, processing resolution {int(processing_resolution)}, seed {int(seed)}")
    return {"pairs": pairs, "uncertainty": unc, "files": [str(p) for p in files if Path(p).is_file()],
            "summary": summary}


def build_app(loaders: Mapping[str, Callable[[], Any]], examples: Sequence[str | Path] = (),
              defaults: Mapping[str, int] | None = None):
    """The Gradio ``Blocks`` of the app; ``examples``: photos offered under the upload box."""
    import gradio as gr

    models = AppModels(loaders)
    defaults = {"steps": 4, "ensemble": 1, "processing_resolution": 768, "seed": 0, **(defaults or {})}
    out_root = Path(tempfile.mkdtemp(prefix="marigold-app-"))
    max_targets = 3  # the most targets a built-in task predicts (lighting intrinsics: albedo, shading, residual)

    with gr.Blocks(title="Marigold") as demo:
        gr.Markdown("# Marigold\nDepth, surface normals and intrinsic decomposition from one photo.")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="Photo", type="numpy", elem_id="input-image", sources=["upload", "clipboard"])
                model = gr.Dropdown(models.names, value=models.names[0], label="Model", elem_id="model")
                steps = gr.Slider(1, 50, value=defaults["steps"], step=1, label="Denoising steps")
                ensemble = gr.Slider(1, 10, value=defaults["ensemble"], step=1, label="Ensemble size")
                resolution = gr.Slider(0, 2048, value=defaults["processing_resolution"], step=8,
                                       label="Processing resolution (0 = native)")
                seed = gr.Number(value=defaults["seed"], precision=0, label="Seed")
                run = gr.Button("Predict", variant="primary", elem_id="run")
                if examples:
                    gr.Examples([[str(p)] for p in examples], inputs=[image], label="Examples")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="summary")
                sliders = [gr.ImageSlider(label=f"Output {i + 1}", visible=i == 0, elem_id=f"slider-{i}",
                                          type="numpy", format="png") for i in range(max_targets)]
                unc = gr.Gallery(label="Uncertainty (ensemble > 1)", visible=False, elem_id="uncertainty",
                                 columns=3, height="auto", format="png")
                files = gr.File(label="Downloads", file_count="multiple", elem_id="downloads")

        def on_run(img, name, n_steps, n_ens, res, s):
            try:
                result = run_prediction(models, img, name, n_steps, n_ens, res, 0 if s is None else s, out_root)
            except ValueError as exc:
                raise gr.Error(str(exc).splitlines()[0], duration=8) from None
            updates = []
            for i in range(max_targets):
                if i < len(result["pairs"]):
                    label, pair = result["pairs"][i]
                    updates.append(gr.ImageSlider(value=pair, label=f"Input | {label}", visible=True))
                else:
                    updates.append(gr.ImageSlider(value=None, visible=False))
            gallery = gr.Gallery(value=result["uncertainty"] or None, visible=bool(result["uncertainty"]))
            return [result["summary"], *updates, gallery, result["files"]]

        run.click(on_run, [image, model, steps, ensemble, resolution, seed], [summary, *sliders, unc, files],
                  concurrency_limit=1)
    return demo


def launch_app(demo, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serve ``demo`` (from :func:`build_app`) offline: no analytics, no share link, local fonts only.
    Returns what Gradio's ``launch`` returns (with ``block=False`` the server runs in a thread)."""
    import gradio as gr

    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    return demo.launch(server_name=host, server_port=port, share=False, inbrowser=False, theme=theme,
                       prevent_thread_lock=not block, quiet=True, footer_links=[], mcp_server=False, ssr_mode=False)

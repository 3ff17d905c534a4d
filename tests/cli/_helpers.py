"""Helpers for the ``marigold predict`` CLI tests: in-process runner, image writers and the diffusers oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from marigold_toolkit.cli.main import main

#: layout -> diffusers pipeline class used as the oracle
ORACLE_CLASSES = {
    "depth-v1-0": "MarigoldDepthPipeline",
    "depth-lcm-v1-0": "MarigoldDepthPipeline",
    "depth-v1-1": "MarigoldDepthPipeline",
    "normals-v1-1": "MarigoldNormalsPipeline",
    "iid-appearance-v1-1": "MarigoldIntrinsicsPipeline",
    "iid-lighting-v1-1": "MarigoldIntrinsicsPipeline",
}

TASK_OF = {
    "depth-v1-0": "depth",
    "depth-lcm-v1-0": "depth",
    "depth-v1-1": "depth",
    "normals-v1-1": "normals",
    "iid-appearance-v1-1": "intrinsics",
    "iid-lighting-v1-1": "intrinsics",
}

TARGETS_OF = {
    "depth-v1-0": ["depth"],
    "depth-lcm-v1-0": ["depth"],
    "depth-v1-1": ["depth"],
    "normals-v1-1": ["normals"],
    "iid-appearance-v1-1": ["albedo", "material"],
    "iid-lighting-v1-1": ["albedo", "shading", "residual"],
}


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``marigold predict ...`` in-process; returns ``(exit code, stdout, stderr)``. argparse errors raise
    ``SystemExit(2)``, which is turned into the exit code like the console script does."""
    argv = [str(a) for a in args]
    capsys.readouterr()  # drop anything captured before
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse usage errors, --help, --version
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return int(rc), out, err


def predict_args(inputs, model, out_dir, *, steps=1, ensemble=1, res=64, seed=0, batch_size=1, extra=()):
    """Argument list for ``marigold predict`` with explicit settings (always on the CPU)."""
    inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    return [
        "predict", *inputs, "--model", model, "--output-dir", out_dir, "--steps", steps, "--ensemble", ensemble,
        "--processing-resolution", res, "--seed", seed, "--batch-size", batch_size, "--device", "cpu", *extra,
    ]


def random_image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth-ish random uint8 RGB image ``h x w``."""
    rng = np.random.default_rng(seed)
    base = rng.random((max(2, h // 4), max(2, w // 4), 3))
    img = Image.fromarray((base * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    noise = rng.integers(-20, 21, (h, w, 3))
    return np.clip(np.asarray(img).astype(np.int64) + noise, 0, 255).astype(np.uint8)


def save_image(path: Path, h: int, w: int, seed: int, **save_kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(random_image(h, w, seed)).save(path, **save_kwargs)
    return path


def expected_names(layout: str, stem: str, ensemble: int) -> set[str]:
    """The contract's output file names for one input."""
    task = TASK_OF[layout]
    names = set()
    for t in TARGETS_OF[layout]:
        names |= {f"{stem}_{t}.npy", f"{stem}_{t}.png"}
        if task == "depth":
            names.add(f"{stem}_{t}_colored.png")
        if ensemble > 1:
            names |= {f"{stem}_{t}_uncertainty.npy", f"{stem}_{t}_uncertainty.png"}
    return names


def final_files(folder: Path) -> set[str]:
    """Names of the files in ``folder`` that are not hidden temporaries."""
    return {p.name for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")}


class Oracle:
    """diffusers' Marigold pipelines, one per layout, loaded lazily and kept for the module."""

    def __init__(self, checkpoints: dict[str, Path]):
        self.checkpoints = checkpoints
        self.pipes = {}

    def pipe(self, layout: str):
        if layout not in self.pipes:
            import diffusers

            cls = getattr(diffusers, ORACLE_CLASSES[layout])
            # explicit float32: the depth-v1-1 checkpoint also carries fp16 variant files whose text-encoder
            # config says float16, which transformers would otherwise follow
            pipe = cls.from_pretrained(self.checkpoints[layout], torch_dtype=torch.float32)
            pipe.set_progress_bar_config(disable=True)
            self.pipes[layout] = pipe
        return self.pipes[layout]

    def __call__(self, layout: str, image: Image.Image, *, steps, ensemble, res, seed, match=True) -> dict:
        """``{target: array, target + "_uncertainty": array}`` shaped like the CLI's .npy files."""
        pipe = self.pipe(layout)
        out = pipe(
            image, num_inference_steps=steps, ensemble_size=ensemble, processing_resolution=res,
            match_input_resolution=match, generator=torch.Generator("cpu").manual_seed(seed),
            output_uncertainty=ensemble > 1,
        )
        names = pipe.target_properties["target_names"] if TASK_OF[layout] == "intrinsics" else TARGETS_OF[layout]
        assert out.prediction.shape[0] == len(names)
        result = {}
        for k, name in enumerate(names):
            p = np.asarray(out.prediction[k], dtype=np.float32)
            result[name] = p[..., 0] if p.shape[-1] == 1 else p
            if ensemble > 1:
                u = np.asarray(out.uncertainty[k], dtype=np.float32)
                result[f"{name}_uncertainty"] = u[..., 0] if u.shape[-1] == 1 else u
        return result


def assert_matches_oracle(out_dir: Path, stem: str, expected: dict, atol: float = 1e-4) -> None:
    for key, ref in expected.items():
        ours = np.load(Path(out_dir) / f"{stem}_{key}.npy")
        assert ours.dtype == np.float32, key
        assert ours.shape == ref.shape, (key, ours.shape, ref.shape)
        diff = float(np.abs(ours - ref).max())
        assert diff <= atol, f"{stem}_{key}: max abs diff {diff:.3g} > {atol}"


def check_outputs(out_dir: Path, stem: str, layout: str, ensemble: int, h: int, w: int) -> None:
    """Contract checks on one input's files: dtypes, shapes ``h x w``, value ranges, PNG sizes and modes."""
    out_dir = Path(out_dir)
    task = TASK_OF[layout]
    for t in TARGETS_OF[layout]:
        arr = np.load(out_dir / f"{stem}_{t}.npy")
        assert arr.dtype == np.float32
        assert np.isfinite(arr).all()
        png = Image.open(out_dir / f"{stem}_{t}.png")
        assert png.size == (w, h)
        if task == "depth":
            assert arr.shape == (h, w)
            assert arr.min() >= 0.0 and arr.max() <= 1.0
            assert png.mode.startswith("I")  # 16-bit grey
            assert np.asarray(png).max() > 255
            colored = Image.open(out_dir / f"{stem}_{t}_colored.png")
            assert colored.size == (w, h) and colored.mode == "RGB"
        else:
            assert arr.shape == (h, w, 3)
            assert png.mode == "RGB"
            if task == "normals":
                assert arr.min() >= -1.0 and arr.max() <= 1.0
                np.testing.assert_allclose(np.linalg.norm(arr, axis=-1), 1.0, atol=1e-3)
            else:
                assert arr.min() >= 0.0 and arr.max() <= 1.0
        unc_npy, unc_png = out_dir / f"{stem}_{t}_uncertainty.npy", out_dir / f"{stem}_{t}_uncertainty.png"
        if ensemble > 1:
            unc = np.load(unc_npy)
            assert unc.dtype == np.float32
            assert unc.shape == ((h, w, 3) if task == "intrinsics" else (h, w))
            assert np.isfinite(unc).all() and unc.min() >= 0.0
            assert Image.open(unc_png).size == (w, h)
        else:
            assert not unc_npy.exists() and not unc_png.exists()

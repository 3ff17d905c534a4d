"""``marigold export-onnx`` and ``marigold predict --backend onnx | --compile`` (fast tier)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from marigold_toolkit.pipeline import backends
from marigold_toolkit.pipeline.backends import FAST_TIER_ABSREL_TOL, depth_absrel

from ._helpers import predict_args, run_cli, save_image

pytest.importorskip("onnxruntime", reason="the onnx backend needs onnxruntime (pip install '.[fast]')")


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    """(checkpoint, export folder) of the tiny depth checkpoint, exported through the CLI."""
    from marigold_toolkit.cli.main import main

    out = tmp_path_factory.mktemp("cli-onnx") / "depth-onnx"
    assert main(["export-onnx", str(checkpoints["depth-v1-1"]), str(out)]) == 0
    return checkpoints["depth-v1-1"], out


def test_export_onnx_writes_a_manifest_and_refuses_to_overwrite(exported, capsys):
    ckpt, out = exported
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "depth" and set(manifest["files"]) == {"unet", "vae_encoder", "vae_decoder"}
    rc, _, err = run_cli(capsys, "export-onnx", ckpt, out)
    assert rc == 2 and err.count("\n") == 1 and "--overwrite" in err


def test_export_onnx_bad_model_is_one_line(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "export-onnx", tmp_path / "missing-model", tmp_path / "out")
    assert rc == 2 and err.startswith("error:") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_predict_with_onnx_backend_matches_eager(exported, tmp_path, capsys):
    ckpt, onnx_dir = exported
    img = save_image(tmp_path / "in" / "a.png", 37, 53, seed=1)
    rc, _, err = run_cli(capsys, *predict_args(img, ckpt, tmp_path / "eager", res=0))
    assert rc == 0, err
    rc, _, err = run_cli(capsys, *predict_args(img, ckpt, tmp_path / "onnx", res=0,
                                               extra=("--backend", "onnx", "--onnx-dir", onnx_dir)))
    assert rc == 0, err
    ours, ref = np.load(tmp_path / "onnx" / "a_depth.npy"), np.load(tmp_path / "eager" / "a_depth.npy")
    assert depth_absrel(ours, ref) <= FAST_TIER_ABSREL_TOL


@pytest.mark.parametrize("extra,message", [
    (("--backend", "onnx"), "--onnx-dir"),
    (("--compile", "--backend", "onnx", "--onnx-dir", "x"), "conflicts"),
    (("--vae-tile-size", "12"), "tile size"),
    (("--channels-last", "--backend", "onnx", "--onnx-dir", "x"), "channels_last"),
])
def test_predict_backend_usage_errors(checkpoints, tmp_path, capsys, extra, message):
    img = save_image(tmp_path / "a.png", 16, 16, seed=0)
    rc, _, err = run_cli(capsys, *predict_args(img, checkpoints["depth-v1-1"], tmp_path / "out", extra=extra))
    assert rc == 2 and message in err and err.count("\n") == 1


def test_predict_channels_last_and_vae_tiles_run_close_to_the_default(checkpoints, tmp_path, capsys):
    """``--channels-last`` (float-rounding level) and ``--vae-tile-size`` (implies --tiled-vae; tiles change the
    numbers a little) on one image."""
    ckpt = checkpoints["depth-v1-1"]
    img = save_image(tmp_path / "in" / "a.png", 40, 56, seed=2)
    runs = {"plain": (), "cl": ("--channels-last",), "tiles": ("--vae-tile-size", "32")}
    for name, extra in runs.items():
        rc, _, err = run_cli(capsys, *predict_args(img, ckpt, tmp_path / name, res=0, extra=extra))
        assert rc == 0, err
    plain, cl, tiles = (np.load(tmp_path / n / "a_depth.npy") for n in runs)
    assert np.abs(cl - plain).max() <= 1e-4
    assert tiles.shape == plain.shape and not np.array_equal(tiles, plain)


def test_predict_compile_without_compiler_warns_once_and_runs(checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(backends, "compile_unavailable_reason", lambda *a, **k: "no C++ compiler found (test)")
    img = save_image(tmp_path / "in" / "a.png", 24, 32, seed=2)
    rc, _, err = run_cli(capsys, *predict_args(img, checkpoints["depth-v1-1"], tmp_path / "out", extra=("--compile",)))
    assert rc == 0, err
    lines = [line for line in err.splitlines() if "torch.compile" in line]
    assert len(lines) == 1 and lines[0].startswith("WARNING:") and "running eagerly" in lines[0]
    assert (tmp_path / "out" / "a_depth.npy").is_file()

"""Folder writer: layout readable by the training loader, resumable, deterministic; CLI hooks."""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("mitsuba")

from marigold_toolkit.data import get_train_dataset  # noqa: E402
from marigold_toolkit.synth import render_dataset, sample_complete  # noqa: E402
from marigold_toolkit.synth import cli as synth_cli  # noqa: E402
from marigold_toolkit.synth.writer import OUTPUTS, sample_paths, stem_for  # noqa: E402

RES = (24, 32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    assert render_dataset(root, 3, seed=7, resolution=RES, spp=2, progress=False) == 3
    return root


def test_layout_and_camera_json(dataset):
    for i in range(3):
        stem = stem_for(i)
        assert sample_complete(dataset, stem)
        meta = json.loads(sample_paths(dataset, stem)["camera"].read_text())
        assert {"fx", "fy", "cx", "cy", "width", "height", "seed", "scene"} <= set(meta)
        assert (meta["height"], meta["width"]) == RES
        depth = np.load(dataset / "depth" / f"{stem}.npy")
        normals = np.load(dataset / "normals" / f"{stem}.npy")
        assert depth.dtype == np.float32 and depth.shape == RES
        assert normals.dtype == np.float32 and normals.shape == (*RES, 3)
    assert not list(dataset.rglob(".marigold-tmp-*"))


def test_loads_as_depth(dataset):
    ds = get_train_dataset("folder", dataset, augment=False, targets=["depth"])
    assert len(ds) == 3
    for i in range(3):
        s = ds[i]
        depth = np.load(dataset / "depth" / f"{stem_for(i)}.npy")
        np.testing.assert_array_equal(s["depth"][0].numpy(), depth)
        valid = s["valid_mask"][0].numpy()
        np.testing.assert_array_equal(valid, depth > 0)
        assert s["rgb"].shape == (3, *RES)


def test_loads_as_normals(dataset):
    ds = get_train_dataset("folder", dataset, augment=False, targets=["normals"])
    for i in range(3):
        s = ds[i]
        n = s["normals"].numpy()
        valid = s["valid_mask"][0].numpy()
        assert valid.any()
        np.testing.assert_allclose(np.linalg.norm(n[:, valid], axis=0), 1.0, atol=1e-4)
        stored = np.load(dataset / "normals" / f"{stem_for(i)}.npy")
        np.testing.assert_allclose(np.moveaxis(n, 0, -1)[valid], stored[valid], atol=1e-5)


def test_loads_as_intrinsics(dataset):
    ds = get_train_dataset("folder", dataset, augment=False, targets=["albedo", "material"])
    s = ds[0]
    assert s["albedo"].shape == (3, *RES) and s["material"].shape == (3, *RES)
    assert float(s["material"][2].abs().max()) == 0.0


def test_resume_skips_and_rerenders_one(dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert render_dataset(root, 3, seed=7, resolution=RES, spp=2, progress=False) == 0
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mtimes
    old = np.load(root / "depth" / "000001.npy")
    (root / "depth" / "000001.npy").unlink()
    assert render_dataset(root, 3, seed=7, resolution=RES, spp=2, progress=False) == 1
    for p, t in mtimes.items():
        if p.exists() and "000001" not in p.name:
            assert p.stat().st_mtime_ns == t, p
    changed = [p for p in root.rglob("*000001*") if p.stat().st_mtime_ns != mtimes.get(p)]
    assert len(changed) == len(OUTPUTS)
    np.testing.assert_array_equal(np.load(root / "depth" / "000001.npy"), old)  # deterministic re-render


def test_seed_changes_output_and_workers_match(dataset, tmp_path):
    other = tmp_path / "other"
    # two worker processes produce the same files as the serial run; a different seed differs
    assert render_dataset(other, 2, seed=7, resolution=RES, spp=2, workers=2, progress=False) == 2
    for i in range(2):
        for folder, ext in OUTPUTS:
            if ext == ".npy":
                a = np.load(dataset / folder / f"{stem_for(i)}{ext}")
                b = np.load(other / folder / f"{stem_for(i)}{ext}")
                np.testing.assert_array_equal(a, b)
    diff = tmp_path / "diff"
    render_dataset(diff, 1, seed=8, resolution=RES, spp=2, progress=False)
    assert not np.array_equal(np.load(diff / "depth" / "000000.npy"), np.load(dataset / "depth" / "000000.npy"))


def test_cli_hooks(tmp_path):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    synth_cli.add_parser(sub)
    out = tmp_path / "cli"
    args = parser.parse_args(["synth", "--output-dir", str(out), "--num", "1", "--seed", "3", "--resolution",
                              "16", "24", "--spp", "1", "--workers", "1", "--scenes", "tabletop", "--no-progress"])
    assert args.func(args) == 0
    meta = json.loads((out / "camera" / "000000.json").read_text())
    assert meta["family"] == "tabletop" and (meta["height"], meta["width"]) == (16, 24)
    bad = parser.parse_args(["synth", "--output-dir", str(out), "--num", "1", "--scenes", "underwater"])
    assert synth_cli.run(bad) == 2  # usage error, like every other command
    bad_variant = parser.parse_args(["synth", "--output-dir", str(out), "--num", "1", "--variant", "no_such_rgb"])
    assert synth_cli.run(bad_variant) == 2
    assert os.path.isdir(out / "rgb")

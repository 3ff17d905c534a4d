"""``marigold predict`` as a batch tool: exit codes, error messages, resume, kill safety, awkward inputs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from ._helpers import (
    assert_matches_oracle,
    check_outputs,
    expected_names,
    final_files,
    predict_args,
    run_cli,
    save_image,
)

LAYOUT = "depth-v1-1"


def _mtimes(folder: Path) -> dict[str, int]:
    return {n: (Path(folder) / n).stat().st_mtime_ns for n in final_files(folder)}


def _err_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def _cli_subprocess(args, cwd, env_extra=None):
    """``(command, env, cwd)`` for ``python -m marigold_toolkit.cli.main ...`` offline."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **(env_extra or {}))
    cmd = [sys.executable, "-m", "marigold_toolkit.cli.main", *[str(a) for a in args]]
    return cmd, env, cwd


# -- exit codes -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        ["--ensemble", "0"],
        ["--ensemble", "two"],
        ["--batch-size", "0"],
        ["--steps", "0"],
        ["--processing-resolution", "-1"],
        ["--dtype", "float64"],
        ["--task", "segmentation"],
        ["--frobnicate"],
    ],
    ids=lambda b: " ".join(b),
)
def test_bad_flag_exits_2(tmp_path, capsys, checkpoints, bad):
    img = save_image(tmp_path / "in" / "x.png", 20, 20, seed=0)
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, *predict_args(img, checkpoints[LAYOUT], out, extra=bad))
    assert rc == 2
    assert err.strip() and "Traceback" not in err
    assert not out.exists() or not final_files(out)


def test_missing_model_folder_exits_2(tmp_path, capsys):
    img = save_image(tmp_path / "in" / "x.png", 20, 20, seed=0)
    missing = tmp_path / "no-such-model"
    rc, _, err = run_cli(capsys, *predict_args(img, missing, tmp_path / "out"))
    assert rc == 2
    assert "no-such-model" in err and "Traceback" not in err
    assert len(_err_lines(err)) == 1


def test_task_mismatch_exits_2(tmp_path, capsys, checkpoints):
    img = save_image(tmp_path / "in" / "x.png", 20, 20, seed=0)
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, *predict_args(img, checkpoints[LAYOUT], out, res=32, extra=["--task", "normals"]))
    assert rc == 2
    assert "normals" in err and "depth" in err and "Traceback" not in err
    assert not out.exists() or not final_files(out)
    rc, _, err = run_cli(capsys, *predict_args(img, checkpoints[LAYOUT], out, res=32, extra=["--task", "depth"]))
    assert rc == 0, err
    assert final_files(out) == expected_names(LAYOUT, "x", 1)


@pytest.mark.slow
def test_offline_hub_id_exits_2_with_local_folder_hint(tmp_path):
    """Also checks that ``python -m marigold_toolkit.cli.main`` works as an entry point."""
    img = save_image(tmp_path / "in" / "x.png", 20, 20, seed=0)
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    args = predict_args(img, "prs-eth/marigold-depth-v1-1", tmp_path / "out")
    cmd, env, cwd = _cli_subprocess(args, tmp_path, {"HF_HOME": str(hf_home)})
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = _err_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    msg = lines[0]
    assert "prs-eth/marigold-depth-v1-1" in msg
    assert "folder" in msg and "--model ./" in msg
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() or not final_files(tmp_path / "out")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_corrupt_input_exits_1_and_others_are_written(tmp_path, capsys, checkpoints, kind):
    folder = tmp_path / "in"
    save_image(folder / "a_good.png", 24, 30, seed=1)
    save_image(folder / "c_good.png", 30, 24, seed=2)
    bad = folder / "b_bad.png"
    if kind == "garbage":
        bad.write_bytes(b"this is not a png at all" * 10)
    elif kind == "truncated":
        save_image(bad, 40, 40, seed=3)
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_bytes(b"")
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, *predict_args(folder, checkpoints[LAYOUT], out, res=32, batch_size=2))
    assert rc == 1
    lines = _err_lines(err)
    assert len(lines) == 1, err
    assert str(bad) in lines[0] or "b_bad.png" in lines[0]
    assert "Traceback" not in err
    assert final_files(out) == expected_names(LAYOUT, "a_good", 1) | expected_names(LAYOUT, "c_good", 1)


def test_missing_explicit_input_exits_1(tmp_path, capsys, checkpoints):
    good = save_image(tmp_path / "in" / "good.png", 20, 20, seed=0)
    missing = tmp_path / "in" / "missing.png"
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, *predict_args([missing, good], checkpoints[LAYOUT], out, res=32))
    assert rc == 1
    lines = _err_lines(err)
    assert len(lines) == 1 and "missing.png" in lines[0] and "Traceback" not in err
    assert final_files(out) == expected_names(LAYOUT, "good", 1)


# -- resume ------------------------------------------------------------------------------------------------------
def test_resume_skips_existing_and_overwrite_recomputes(tmp_path, capsys, checkpoints):
    layout = "normals-v1-1"  # ensemble 2: the uncertainty files count as outputs too
    folder = tmp_path / "in"
    for i, stem in enumerate("abc"):
        save_image(folder / f"{stem}.png", 24 + 4 * i, 28, seed=i)
    out = tmp_path / "out"
    args = predict_args(folder, checkpoints[layout], out, ensemble=2, res=32, seed=0)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0, err
    expected = set().union(*(expected_names(layout, s, 2) for s in "abc"))
    assert final_files(out) == expected
    first = _mtimes(out)

    rc, _, err = run_cli(capsys, *args)  # rerun: everything exists -> nothing rewritten
    assert rc == 0, err
    assert _mtimes(out) == first

    rc, _, err = run_cli(capsys, *args, "--overwrite")
    assert rc == 0, err
    second = _mtimes(out)
    assert set(second) == expected
    assert all(second[n] > first[n] for n in expected)

    (out / "b_normals_uncertainty.png").unlink()  # one missing file -> only that image is recomputed
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0, err
    third = _mtimes(out)
    assert set(third) == expected
    for n in expected:
        if n.startswith("b_"):
            assert n == "b_normals_uncertainty.png" or third[n] > second[n], n
        else:
            assert third[n] == second[n], n


def _all_final_outputs_readable(folder: Path) -> None:
    for name in final_files(folder):
        p = folder / name
        assert p.stat().st_size > 0, name
        if name.endswith(".npy"):
            arr = np.load(p)
            assert arr.dtype == np.float32 and arr.size > 0, name
        elif name.endswith(".png"):
            with Image.open(p) as im:
                im.load()
        else:
            pytest.fail(f"unexpected output file {name}")


@pytest.mark.slow
def test_sigkill_leaves_no_partial_outputs_and_rerun_completes(tmp_path, capsys, checkpoints):
    folder = tmp_path / "imgs"
    stems = [f"img{i:02d}" for i in range(12)]
    for i, stem in enumerate(stems):
        save_image(folder / f"{stem}.png", 40 + i, 56, seed=50 + i)
    out = tmp_path / "out"
    args = predict_args(folder, checkpoints[LAYOUT], out, steps=2, res=64, seed=0)
    cmd, env, cwd = _cli_subprocess(args, tmp_path)
    with open(tmp_path / "stderr.txt", "wb") as err_file:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err_file)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if out.is_dir() and final_files(out):
                    break
                time.sleep(0.002)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()
    assert final_files(out), "the run was killed before writing anything"
    _all_final_outputs_readable(out)
    complete = [s for s in stems if expected_names(LAYOUT, s, 1) <= final_files(out)]
    assert len(complete) < len(stems), "the run finished before it could be killed"
    before = _mtimes(out)

    rc, _, err = run_cli(capsys, *args)  # rerun without --overwrite
    assert rc == 0, err
    assert final_files(out) == set().union(*(expected_names(LAYOUT, s, 1) for s in stems))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "stale temporaries left behind"
    _all_final_outputs_readable(out)
    after = _mtimes(out)
    for s in complete:  # images finished before the kill are not recomputed
        for n in expected_names(LAYOUT, s, 1):
            assert after[n] == before[n], n


# -- awkward inputs ----------------------------------------------------------------------------------------------
def test_same_stem_in_different_folders_is_not_overwritten(tmp_path, capsys, caplog, checkpoints, oracle):
    # sizes differ, so each output set can be traced back to its input
    inputs = {
        "a/img.png": (30, 40),
        "b/img.png": (36, 28),
        "c/img-2.png": (26, 34),  # its own stem equals the name the second img.png would get
        "d/IMG.png": (32, 32),  # differs in case only: would clash on case-insensitive file systems
    }
    root = tmp_path / "in"
    for i, (rel, (h, w)) in enumerate(inputs.items()):
        save_image(root / rel, h, w, seed=20 + i)
    out = tmp_path / "out"
    args = predict_args(root, checkpoints[LAYOUT], out, res=32, seed=2)
    with caplog.at_level(logging.WARNING):
        rc, _, err = run_cli(capsys, *args)
    assert rc == 0, err
    warnings = caplog.text + err
    assert "img" in warnings and str(root / "b" / "img.png") in warnings

    depth_files = sorted(n for n in final_files(out) if n.endswith("_depth.npy"))
    assert len(depth_files) == len(inputs), depth_files
    stems = [n[: -len("_depth.npy")] for n in depth_files]
    assert "img" in stems and "img-2" in stems
    assert len({s.lower() for s in stems}) == len(stems)
    assert final_files(out) == set().union(*(expected_names(LAYOUT, s, 1) for s in stems))
    by_shape = {np.load(out / f"{s}_depth.npy").shape: s for s in stems}
    assert len(by_shape) == len(inputs)
    for rel, (h, w) in inputs.items():
        stem = by_shape[(h, w)]
        ref = oracle(LAYOUT, Image.open(root / rel), steps=1, ensemble=1, res=32, seed=2)
        assert_matches_oracle(out, stem, ref)
    assert by_shape[inputs["a/img.png"]] == "img"  # the first in sorted order keeps its name
    assert by_shape[inputs["c/img-2.png"]] == "img-2"  # a real file stem is never taken by a renamed one

    first = _mtimes(out)
    rc, _, err = run_cli(capsys, *args)  # the renaming is stable, so a rerun skips everything
    assert rc == 0, err
    assert _mtimes(out) == first


def test_non_image_files_in_folders_are_ignored_silently(tmp_path, capsys, checkpoints):
    root = tmp_path / "in"
    save_image(root / "x.png", 20, 24, seed=1)
    save_image(root / "sub" / "deeper" / "y.JPG", 24, 20, seed=2, quality=95)
    (root / "notes.txt").write_text("hello")
    np.save(root / "data.npy", np.zeros(3))
    (root / "sub" / "README").write_text("readme")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "x.png.bak").write_bytes(b"old")
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, *predict_args(root, checkpoints[LAYOUT], out, res=32))
    assert rc == 0, err
    assert err.strip() == ""
    assert final_files(out) == expected_names(LAYOUT, "x", 1) | expected_names(LAYOUT, "y", 1)


def test_unicode_and_spaces_in_paths(tmp_path, capsys, checkpoints, oracle):
    folder = tmp_path / "my photos" / "été 2024"
    img = save_image(folder / "straße café 图.png", 22, 31, seed=8)
    single = save_image(tmp_path / "other dir" / "naïve file.jpeg", 25, 19, seed=9, quality=95)
    out = tmp_path / "out dir ü"
    rc, _, err = run_cli(capsys, *predict_args([folder, single], checkpoints[LAYOUT], out, res=32, seed=1))
    assert rc == 0, err
    assert final_files(out) == expected_names(LAYOUT, "straße café 图", 1) | expected_names(LAYOUT, "naïve file", 1)
    check_outputs(out, "straße café 图", LAYOUT, 1, 22, 31)
    check_outputs(out, "naïve file", LAYOUT, 1, 25, 19)
    ref = oracle(LAYOUT, Image.open(img), steps=1, ensemble=1, res=32, seed=1)
    assert_matches_oracle(out, "straße café 图", ref)


def test_exif_rotated_jpeg_gives_rotated_size(tmp_path, capsys, checkpoints, oracle):
    path = tmp_path / "in" / "rot.jpg"
    path.parent.mkdir(parents=True)
    stored = Image.fromarray(np.ascontiguousarray(np.broadcast_to(
        np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], (24, 40, 3))))  # stored 40 wide x 24 high
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise for display
    stored.save(path, quality=95, exif=exif)
    with Image.open(path) as raw:
        assert raw.size == (40, 24)
        upright = ImageOps.exif_transpose(raw)
    assert upright.size == (24, 40)
    out = tmp_path / "out"
    for layout in (LAYOUT, "normals-v1-1"):
        rc, _, err = run_cli(capsys, *predict_args(path, checkpoints[layout], out, res=32, seed=3))
        assert rc == 0, err
        check_outputs(out, "rot", layout, 1, 40, 24)
        ref = oracle(layout, upright, steps=1, ensemble=1, res=32, seed=3)
        assert_matches_oracle(out, "rot", ref)


@pytest.mark.parametrize("sub", ["out", "."], ids=["inside", "same"])
def test_output_dir_inside_input_folder_is_not_read_back(tmp_path, capsys, checkpoints, sub):
    """``marigold predict photos --output-dir photos/out`` (or ``photos``) twice: the second run must not take the
    first run's PNGs for new inputs (which would also defeat resuming)."""
    root = tmp_path / "photos"
    save_image(root / "a.png", 24, 32, seed=4)
    out = root / sub
    args = predict_args(root, checkpoints[LAYOUT], out, res=32)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0, err
    expected = expected_names(LAYOUT, "a", 1) | ({"a.png"} if sub == "." else set())
    assert final_files(out) == expected
    first = _mtimes(out)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0, err
    assert _mtimes(out) == first


def test_preview_is_input_next_to_each_target(checkpoints, tmp_path, capsys):
    img = save_image(tmp_path / "in" / "pic.png", 30, 40, 1)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *predict_args(img, checkpoints["iid-lighting-v1-1"], out, extra=("--preview",)))
    assert code == 0, err
    preview = Image.open(out / "pic_preview.png")
    assert preview.size == (40 * 4, 30) and preview.mode == "RGB"  # input + albedo, shading, residual
    np.testing.assert_array_equal(np.asarray(preview)[:, :40], np.asarray(Image.open(img).convert("RGB")))
    mtime = (out / "pic_preview.png").stat().st_mtime_ns
    code, _, _ = run_cli(capsys, *predict_args(img, checkpoints["iid-lighting-v1-1"], out, extra=("--preview",)))
    assert code == 0 and (out / "pic_preview.png").stat().st_mtime_ns == mtime  # resumed: nothing recomputed


def test_several_models_in_one_run_share_the_preview(checkpoints, tmp_path, capsys):
    """``--model A,B``: each model's files, one preview with every model's panels; each model's outputs equal
    those of a run with that model alone."""
    img = save_image(tmp_path / "in" / "pic.png", 30, 40, 2)
    out, alone = tmp_path / "out", tmp_path / "alone"
    both = f"{checkpoints['depth-v1-1']},{checkpoints['normals-v1-1']}"
    code, _, err = run_cli(capsys, *predict_args(img, both, out, extra=("--preview",)))
    assert code == 0, err
    for name in ("pic_depth.npy", "pic_depth.png", "pic_depth_colored.png", "pic_normals.npy", "pic_normals.png"):
        assert (out / name).is_file(), name
    assert Image.open(out / "pic_preview.png").size == (40 * 3, 30)  # input | depth | normals
    code, _, err = run_cli(capsys, *predict_args(img, checkpoints["normals-v1-1"], alone))
    assert code == 0, err
    np.testing.assert_array_equal(np.load(out / "pic_normals.npy"), np.load(alone / "pic_normals.npy"))
    # two models writing the same target would overwrite each other: refused before any work
    same = f"{checkpoints['depth-v1-1']},{checkpoints['depth-v1-0']}"
    code, _, err = run_cli(capsys, *predict_args(img, same, tmp_path / "x"))
    assert code == 2 and "same target" in err and not (tmp_path / "x").exists()

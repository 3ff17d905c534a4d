"""``marigold label --engine local``: the Parquet and files layouts against ``marigold predict`` on each image alone
with its derived seed, bad inputs, resume, changed inputs, settings guards, usage errors, process ranks, and a
driver killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit import Predictor
from marigold_toolkit.io.files import quantize_uint16, read_png16
from marigold_toolkit.io.images import load_image
from marigold_toolkit.label import job as label_job
from marigold_toolkit.label.job import LabelJob, run_label_job
from marigold_toolkit.checkpoints.loading import load_spec
from marigold_toolkit.label.records import InferenceSettings, decode_value, image_seed, result_settings, settings_hash

from ..cli._helpers import predict_args, run_cli, save_image
from ._helpers import label_args, make_images, manifest, rows_by_key, sha256_file, shard_files, torch_threads

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    return make_images(tmp_path_factory.mktemp("label-images"), 5)


def test_rows_equal_predict_on_each_image_alone_with_its_seed(images, depth_ckpt, tmp_path, capsys):
    out = tmp_path / "labels"
    rc, _, err = run_cli(capsys, *label_args([str(p) for p in images], depth_ckpt, out, shard_size=2))
    assert rc == 0, err
    m = manifest(out)
    rows = rows_by_key(out)
    assert set(rows) == {str(p) for p in images}
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "part-00000.parquet", "part-00001.parquet",
                                                      "part-00002.parquet"]
    assert m["counts"] == {"inputs": 5, "labelled": 5, "failed": 0, "shards": 3}
    assert m["failed"] == [] and m["columns"] == {"depth": {"encoding": "png16", "value_range": [0.0, 1.0]}}
    assert (m["model"], m["task"], m["targets"], m["format"]) == (str(depth_ckpt), "depth", ["depth"], "parquet")
    assert m["settings"]["num_inference_steps"] == 1 and m["settings"]["processing_resolution"] == 64
    assert [s["rows"] for s in m["shards"]] == [2, 2, 1]
    for path in images:
        row = rows[str(path)]
        h, w = load_image(path).shape[:2]
        assert (row["sha256"], row["width"], row["height"]) == (sha256_file(path), w, h)
        assert (row["model"], row["settings"]) == (str(depth_ckpt), m["settings_hash"])
        assert row["seed"] == image_seed(0, row["sha256"])
        ref = tmp_path / f"predict-{path.stem}"
        rc, _, err = run_cli(capsys, *predict_args([str(path)], depth_ckpt, ref, seed=row["seed"]))
        assert rc == 0, err
        ours = read_png16(row["depth"])
        assert ours.shape == (h, w)
        np.testing.assert_array_equal(ours, np.asarray(Image.open(ref / f"{path.stem}_depth.png")))
        np.testing.assert_array_equal(ours, quantize_uint16(np.load(ref / f"{path.stem}_depth.npy"), (0.0, 1.0)))
        decoded = decode_value(m["columns"]["depth"], row["depth"])
        assert np.abs(decoded - np.load(ref / f"{path.stem}_depth.npy")).max() <= 1 / 65535


def test_three_channel_targets_and_uncertainty(images, checkpoints, tmp_path):
    """normals with ensembling (float16 npy + 16-bit uncertainty PNG) and the three intrinsics targets, equal to
    the Predictor on each image alone with its seed."""
    for layout, ensemble in (("normals-v1-1", 2), ("iid-lighting-v1-1", 1)):
        settings = InferenceSettings(num_inference_steps=1, ensemble_size=ensemble, processing_resolution=64,
                                     device="cpu")
        out = tmp_path / layout
        summary = run_label_job(LabelJob([str(p) for p in images[:2]], out, str(checkpoints[layout]), settings,
                                         shard_size=4), show_progress=False)
        assert summary.manifest["counts"]["labelled"] == 2 and summary.shards_written == 1
        predictor = Predictor.from_pretrained(checkpoints[layout], device="cpu")
        columns = summary.manifest["columns"]
        expected_columns = ({"normals": "npy", "normals_uncertainty": "png16"} if ensemble > 1
                            else {"albedo": "npy", "shading": "npy", "residual": "npy"})
        assert {n: c["encoding"] for n, c in columns.items()} == expected_columns
        for key, row in rows_by_key(out).items():
            ref = predictor.predict(load_image(key), seed=row["seed"], num_inference_steps=1,
                                    ensemble_size=ensemble, processing_resolution=64)
            for name, col in columns.items():
                target = name.removesuffix("_uncertainty")
                arr = ref.uncertainty[target] if name.endswith("_uncertainty") else ref.targets[target]
                got = decode_value(col, row[name])
                if col["encoding"] == "npy":
                    assert got.dtype == np.float16
                    np.testing.assert_array_equal(got, arr.astype(np.float16))
                else:
                    np.testing.assert_array_equal(read_png16(row[name]), quantize_uint16(arr, col["value_range"]))


def test_files_layout_is_predicts(depth_ckpt, tmp_path, capsys):
    a = save_image(tmp_path / "in" / "a" / "photo.png", 30, 40, 1)
    b = save_image(tmp_path / "in" / "b" / "photo.png", 36, 28, 2)
    out = tmp_path / "labels"
    rc, _, err = run_cli(capsys, *label_args([str(tmp_path / "in")], depth_ckpt, out, extra=("--format", "files")))
    assert rc == 0, err
    record = json.loads((out / "part-00000.json").read_text())
    assert [r["key"] for r in record["rows"]] == [str(a), str(b)] and record["failed"] == []
    assert record["rows"][1]["files"] == ["photo-2_depth.npy", "photo-2_depth.png", "photo-2_depth_colored.png"]
    for path, stem in ((a, "photo"), (b, "photo-2")):  # predict's rule for a repeated stem
        seed = image_seed(0, sha256_file(path))
        ref = tmp_path / f"predict-{stem}"
        assert run_cli(capsys, *predict_args([str(path)], depth_ckpt, ref, seed=seed))[0] == 0
        for suffix in ("_depth.npy", "_depth.png", "_depth_colored.png"):
            assert (out / f"{stem}{suffix}").read_bytes() == (ref / f"photo{suffix}").read_bytes(), suffix
    assert manifest(out)["counts"] == {"inputs": 2, "labelled": 2, "failed": 0, "shards": 1}


def test_bad_inputs_are_listed_and_the_rest_complete(images, depth_ckpt, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    good = images[:2]
    truncated = bad / "truncated.png"
    truncated.write_bytes(good[0].read_bytes()[:200])
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("not an image")
    huge = save_image(bad / "huge.png", 80, 80, 3)  # 6400 px, over --max-megapixels 0.005
    listing = tmp_path / "list.txt"
    listing.write_text(f"{good[0]}\n{truncated}\n{bad / 'empty.jpg'}\n{bad / 'text.jpg'}\n{huge}\n"
                       f"{tmp_path / 'gone.png'}\n")
    out = tmp_path / "labels"
    rc, _, err = run_cli(capsys, *label_args([str(listing), str(good[1]), str(tmp_path / "missing.png")],
                                             depth_ckpt, out, shard_size=3,
                                             extra=("--max-megapixels", "0.005")))
    assert rc == 1
    m = manifest(out)
    assert m["failed"] == [
        {"key": str(bad / "empty.jpg"), "reason": "empty file (0 bytes)"},
        {"key": str(huge), "reason": "image is 80x80 = 0 MP, over the limit of 0 MP"},
        {"key": str(bad / "text.jpg"), "reason": "not a recognised image format"},
        {"key": str(truncated), "reason": m["failed"][3]["reason"]},
        {"key": str(tmp_path / "gone.png"), "reason": "no such file or directory"},
        {"key": str(tmp_path / "missing.png"), "reason": "no such file or directory"},
    ]
    assert m["failed"][3]["reason"].startswith("corrupt or truncated image")
    assert m["counts"] == {"inputs": 8, "labelled": 2, "failed": 6, "shards": 2}
    assert set(rows_by_key(out)) == {str(p) for p in good}
    lines = err.strip().splitlines()
    for f in m["failed"]:
        assert f"error: {f['key']}: {f['reason']}" in lines
    assert lines[-1].startswith("labelled 2 of 8 input(s) in 2 shard(s), 6 failed")


def test_rerun_resumes_and_never_rewrites_finished_shards(images, depth_ckpt, tmp_path, capsys):
    out = tmp_path / "labels"
    args = label_args([str(p) for p in images], depth_ckpt, out, shard_size=2)
    assert run_cli(capsys, *args)[0] == 0
    first = shard_files(out)
    rows = rows_by_key(out)
    (out / "part-00001.parquet").unlink()  # as if the job had been killed before shard 1 was complete
    (out / ".marigold-tmp-0123456789abcdef.parquet").write_bytes(b"half a shard")
    time.sleep(0.01)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0, err
    second = shard_files(out)
    assert second["part-00000.parquet"] == first["part-00000.parquet"]
    assert second["part-00002.parquet"] == first["part-00002.parquet"]
    assert second["part-00001.parquet"][0] != first["part-00001.parquet"][0]  # rewritten ...
    assert rows_by_key(out) == rows  # ... with the same rows, each key once
    assert not list(out.glob(".marigold-tmp-*"))
    assert "this run: 2 image(s) in 1 new shard(s)" in err
    rc, _, err = run_cli(capsys, *args)  # all finished: nothing is touched
    assert rc == 0 and shard_files(out) == second and "this run: 0 image(s)" in err


def test_changed_inputs_go_to_new_shards(images, depth_ckpt, tmp_path, capsys):
    out = tmp_path / "labels"
    assert run_cli(capsys, *label_args([str(p) for p in images[:4]], depth_ckpt, out, shard_size=2))[0] == 0
    before = shard_files(out)
    extra = [save_image(tmp_path / "new" / "aaa.png", 30, 30, 7), save_image(tmp_path / "new" / "zzz.png", 30, 30, 8)]
    inputs = [str(extra[0]), *map(str, images), str(extra[1])]  # one more old image, two new ones
    assert run_cli(capsys, *label_args(inputs, depth_ckpt, out, shard_size=2))[0] == 0
    after = shard_files(out)
    assert {k: after[k] for k in before} == before
    rows = rows_by_key(out)
    assert set(rows) == set(inputs)
    new = sorted(set(after) - set(before))
    assert new == ["part-00002.parquet", "part-00003.parquet"]
    assert manifest(out)["counts"] == {"inputs": 7, "labelled": 7, "failed": 0, "shards": 4}


def test_other_settings_or_layout_are_refused(images, depth_ckpt, tmp_path, capsys):
    out = tmp_path / "labels"
    assert run_cli(capsys, *label_args([str(images[0])], depth_ckpt, out))[0] == 0
    before = shard_files(out)
    rc, _, err = run_cli(capsys, *label_args([str(images[0])], depth_ckpt, out, steps=2))
    assert rc == 2 and "holds shards made with other settings" in err and err.count("\n") == 1
    rc, _, err = run_cli(capsys, *label_args([str(images[0])], depth_ckpt, out, extra=("--format", "files")))
    assert rc == 2 and "holds shards of --format parquet" in err
    assert shard_files(out) == before


@pytest.mark.parametrize("change, message", [
    (("--shard-size", "0"), "--shard-size must be >= 1"),
    (("--workers", "2"), "--workers applies to --engine ray"),
    (("--address", "auto"), "--address applies to --engine ray"),
    (("--max-megapixels", "0"), "--max-megapixels must be > 0"),
    (("--task", "normals"), "is a depth pipeline, not normals"),
    (("--reduction", "closest"), "--reduction"),
    (("--ensembling-method", "lsq"), "--ensembling-method: depth: ensembling method must be one of"),
    (("--model", "a,b"), "label runs one model per job"),
    (("--model", "/no/such/model"), "/no/such/model"),
])
def test_usage_errors_exit_2_with_one_line(change, message, images, depth_ckpt, tmp_path, capsys):
    args = label_args([str(images[0])], depth_ckpt, tmp_path / "o") + list(change)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2 and message in err, err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("part-*"))


def test_ensembling_method_is_a_result_setting_and_fast_picks_least_squares(images, depth_ckpt, tmp_path, capsys):
    spec = load_spec(str(depth_ckpt))
    base = InferenceSettings(ensemble_size=2)
    default = result_settings(spec, base)
    assert "ensembling_method" not in default  # jobs from before the flag keep their settings hash
    assert settings_hash(result_settings(spec, InferenceSettings(ensemble_size=2, ensembling_method="bfgs"))) \
        == settings_hash(default)  # naming the default computes the same numbers
    lsq = result_settings(spec, InferenceSettings(ensemble_size=2, ensembling_method="least-squares"))
    assert lsq["ensembling_method"] == "least-squares" and settings_hash(lsq) != settings_hash(default)
    out = tmp_path / "fast"
    rc, _, err = run_cli(capsys, *label_args([str(images[0])], depth_ckpt, out, ensemble=2, extra=("--fast",)))
    assert rc == 0, err
    assert manifest(out)["settings"]["ensembling_method"] == "least-squares"
    rc, _, err = run_cli(capsys, *label_args([str(images[0])], depth_ckpt, out, ensemble=2,
                                             extra=("--fast", "--ensembling-method", "least-squares")))
    assert rc == 0, err  # the same job: nothing refused, nothing recomputed
    assert manifest(out)["counts"]["labelled"] == 1


def test_processes_split_the_shards_by_rank(images, depth_ckpt, tmp_path, monkeypatch):
    """Under ``accelerate launch`` each process takes every world_size-th planned shard; process 0 writes the
    manifest. Ranks run one after the other here, each seeing the other's finished shards as a rerun does."""
    out = tmp_path / "labels"
    settings = InferenceSettings(num_inference_steps=1, processing_resolution=64, device="cpu")
    job = LabelJob([str(p) for p in images], out, str(depth_ckpt), settings, shard_size=1)
    summaries = {}
    for rank in (1, 0):
        monkeypatch.setattr(label_job, "_distributed", lambda r=rank: (r, 2, lambda: None, None))
        summaries[rank] = run_label_job(job, show_progress=False)
    # process 1 took shards 1 and 3 of 0..4; process 0 then planned what was left (0, 2, 4) and took 0 and 4
    assert summaries[1].shards_written == 2 and summaries[1].manifest_path is None
    assert {p.name for p in out.glob("part-*")} == {f"part-{i:05d}.parquet" for i in (0, 1, 3, 4)}
    assert (summaries[0].shards_skipped, summaries[0].shards_written) == (2, 2)
    assert summaries[0].manifest_path == out / "manifest.json"
    assert manifest(out)["counts"] == {"inputs": 5, "labelled": 4, "failed": 0, "shards": 4}
    last = run_label_job(job, show_progress=False)  # process 0 again: the one shard left is its share
    assert (last.shards_skipped, last.shards_written) == (4, 1)
    assert manifest(out)["counts"] == {"inputs": 5, "labelled": 5, "failed": 0, "shards": 5}
    assert len(rows_by_key(out)) == 5


@pytest.mark.slow
def test_killed_driver_resumes_without_duplicates(depth_ckpt, tmp_path, capsys):
    """SIGKILL the `marigold label` process once a few shards are finished; the same command then completes,
    leaves the finished shards untouched and writes every key once, equal to an uninterrupted run."""
    paths = [str(p) for p in make_images(tmp_path / "in", 16, seed=100)]
    out = tmp_path / "labels"
    args = [str(a) for a in label_args(paths, depth_ckpt, out, res=128, shard_size=2)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "marigold_toolkit.cli.main", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    proc.stderr.close()
    finished = shard_files(out)
    assert 2 <= len(finished) < 8, f"killed too late to test anything: {sorted(finished)}"
    assert not (out / "manifest.json").exists()
    time.sleep(0.01)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0, err
    after = shard_files(out)
    assert {k: after[k] for k in finished} == finished
    assert len(after) == 8 and not list(out.glob(".marigold-tmp-*"))
    ref = tmp_path / "reference"
    assert run_cli(capsys, *label_args(paths, depth_ckpt, ref, res=128, shard_size=2))[0] == 0
    assert rows_by_key(out) == rows_by_key(ref)
    assert manifest(out)["counts"] == {"inputs": 16, "labelled": 16, "failed": 0, "shards": 8}


@pytest.mark.slow
def test_processes_under_torchrun_share_the_shards(images, depth_ckpt, tmp_path, capsys):
    """Two real processes (``torchrun``, what ``accelerate launch --multi_gpu`` runs; on CPUs accelerate's
    process group is gloo): every shard written once, by one of them, equal to a single process's output; only
    process 0 reports."""
    out = tmp_path / "labels"
    args = [str(a) for a in label_args([str(p) for p in images], depth_ckpt, out, shard_size=1)]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "marigold_toolkit.cli.main", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    reports = [line for line in r.stderr.splitlines() if line.startswith("labelled ")]
    assert reports == [reports[0]] and "labelled 5 of 5 input(s) in 5 shard(s)" in reports[0]
    assert "this run: 3 image(s) in 3 new shard(s)" in reports[0]  # process 0: shards 0, 2, 4
    with torch_threads(1):  # torchrun runs each process with OMP_NUM_THREADS=1
        assert run_cli(capsys, *label_args([str(p) for p in images], depth_ckpt, tmp_path / "one", shard_size=1))[0] == 0
    assert rows_by_key(out) == rows_by_key(tmp_path / "one")

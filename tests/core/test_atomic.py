"""Atomic writes: a final file name only ever holds a complete version, even when the writer is SIGKILLed."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import marigold_toolkit.core.atomic as atomic_module
from marigold_toolkit.core.atomic import TMP_PREFIX, atomic_open, atomic_write, clean_stale_temporaries


def _temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(TMP_PREFIX))


class Boom(RuntimeError):
    pass


def test_atomic_write_creates_file(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(target, lambda f: f.write(b"hello"))
    assert target.read_bytes() == b"hello"
    assert _temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_write_creates_parent_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.npy"
    atomic_write(str(target), lambda f: f.write(b"x"))
    assert target.read_bytes() == b"x"


def test_atomic_write_replaces_existing_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old content that is longer than the new one")
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    assert _temporaries(tmp_path) == []


def test_final_name_keeps_old_content_until_the_writer_finishes(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    seen = {}

    def writer(f):
        f.write(b"half")
        f.flush()
        seen["during"] = target.read_bytes()
        seen["temporaries"] = _temporaries(tmp_path)

    atomic_write(target, writer)
    assert seen["during"] == b"old"
    (tmp,) = seen["temporaries"]  # exactly one hidden temporary next to the target, with the same suffix
    assert tmp.parent == tmp_path and tmp.suffix == ".png"
    assert target.read_bytes() == b"half"
    assert not tmp.exists()


@pytest.mark.parametrize("exc_type", [Boom, KeyboardInterrupt])
def test_exception_in_writer_leaves_old_file_untouched(tmp_path, exc_type):
    target = tmp_path / "out.bin"
    target.write_bytes(b"precious")
    before = target.stat()

    def writer(f):
        f.write(b"partial " * 1000)
        raise exc_type("writer failed")

    with pytest.raises(exc_type, match="writer failed"):
        atomic_write(target, writer)
    assert target.read_bytes() == b"precious"
    assert target.stat().st_ino == before.st_ino and target.stat().st_mtime_ns == before.st_mtime_ns
    assert _temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_exception_in_writer_without_old_file_creates_nothing(tmp_path):
    target = tmp_path / "out.bin"

    def writer(f):
        f.write(b"partial")
        raise Boom("nope")

    with pytest.raises(Boom):
        atomic_write(target, writer)
    assert list(tmp_path.iterdir()) == []


def test_exception_in_atomic_open_block(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(Boom):
        with atomic_open(target, "w") as f:
            f.write("new")
            raise Boom()
    assert target.read_text() == "old"
    assert _temporaries(tmp_path) == []


def test_atomic_open_text_mode(tmp_path):
    target = tmp_path / "t.txt"
    with atomic_open(target, "w") as f:
        f.write("ünïcödé\n")
    assert target.read_text(encoding=f.encoding) == "ünïcödé\n"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_file_gets_ordinary_permissions(tmp_path, umask):
    """Like ``open(path, "w")``: 0o666 minus the umask (not mkstemp's private 0o600)."""
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "atomic.bin", lambda f: f.write(b"x"))
        (tmp_path / "plain.bin").write_bytes(b"x")
    finally:
        os.umask(old)
    atomic_mode = stat.S_IMODE((tmp_path / "atomic.bin").stat().st_mode)
    assert atomic_mode == 0o666 & ~umask
    assert atomic_mode == stat.S_IMODE((tmp_path / "plain.bin").stat().st_mode)


def test_clean_stale_temporaries(tmp_path):
    keep = [tmp_path / n for n in ("img_depth.npy", "img_depth.png", ".hidden", "marigold-tmp-x")]
    for p in keep:
        p.write_bytes(b"keep")
    stale = [tmp_path / f"{TMP_PREFIX}{n}" for n in ("abc.npy", "def.png", "0")]
    for p in stale:
        p.write_bytes(b"partial")
    assert clean_stale_temporaries(tmp_path) == 3
    assert sorted(tmp_path.iterdir()) == sorted(keep)
    assert clean_stale_temporaries(str(tmp_path)) == 0


def test_clean_stale_temporaries_missing_folder(tmp_path):
    assert clean_stale_temporaries(tmp_path / "does-not-exist") == 0


# ------------------------------------------------------------------------------------------------------------
# kill -9 while writing

SIZE = 20 * 1024 * 1024
HEADER = 16

# The child imports the real ``marigold_toolkit.core.atomic`` module from the package folder, but under an empty
# stand-in for the top-level package so that it does not pay the package __init__'s torch import (seconds) per
# child. It rewrites the same file forever, each version with a distinct header and fill byte, and reports
# "mid <v>" once version v is partly written and "done <v>" when atomic_write has returned.
CHILD = textwrap.dedent(
    """
    import sys, time, types
    pkgdir, target, start, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    pkg = types.ModuleType("marigold_toolkit")
    pkg.__path__ = [pkgdir]
    sys.modules["marigold_toolkit"] = pkg
    from marigold_toolkit.core.atomic import atomic_write

    CHUNK = 1 << 20
    version = start
    while True:
        version += 1
        header = b"v%015d" % version
        fill = bytes([version % 251 + 1]) * CHUNK

        def writer(f):
            f.write(header)
            left, i = size - len(header), 0
            while left > 0:
                n = min(CHUNK, left)
                f.write(fill[:n])
                left -= n
                i += 1
                if i == 2:
                    print("mid", version, flush=True)
                time.sleep(0.004)

        atomic_write(target, writer)
        print("done", version, flush=True)
    """
)


def _read_version(path: Path) -> int:
    """The version a complete file holds; fails on any partial, empty or mixed content."""
    data = np.fromfile(path, dtype=np.uint8)
    assert data.size == SIZE, f"partial file: {data.size} of {SIZE} bytes"
    header = data[:HEADER].tobytes()
    assert header.startswith(b"v"), header
    version = int(header[1:])
    payload = data[HEADER:]
    assert payload.min() == payload.max() == version % 251 + 1, "mixed or zeroed content"
    return version


@pytest.mark.timeout(120)
def test_sigkill_never_leaves_a_partial_file(tmp_path):
    pkgdir = str(Path(atomic_module.__file__).resolve().parent.parent)
    target = tmp_path / "big_depth.npy"
    rng = random.Random(1234)
    completed: set[int] = set()
    latest_seen = 0
    for round_ in range(6):
        start = round_ * 100_000
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, pkgdir, str(target), str(start), str(SIZE)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            kill_during = rng.randint(1, 3)  # kill while (or just after) writing this round's n-th version
            mids, in_flight = 0, None
            while mids < kill_during:
                line = proc.stdout.readline()
                assert line, f"child exited early: {proc.stderr.read()}"
                kind, v = line.split()
                if kind == "done":
                    completed.add(int(v))
                else:
                    mids += 1
                    in_flight = int(v)
            # a random moment: usually mid-write, sometimes during fsync/rename or the next version
            time.sleep(rng.uniform(0.0, 0.12))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            for line in proc.stdout.read().splitlines():  # reports written before the kill
                kind, v = line.split()
                if kind == "done":
                    completed.add(int(v))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

        if not target.exists():
            assert not completed, "a completed version disappeared"
            continue
        version = _read_version(target)
        # the file holds a version that was completed, or the one being written when the kill came (its rename
        # may have happened just before the kill), and never an older one than before
        assert version in completed or (start < version and version >= in_flight), (version, in_flight)
        assert version >= latest_seen
        latest_seen = version

    assert completed, "no write ever completed: the test did not exercise anything"
    assert target.exists()
    final_version = _read_version(target)

    leftovers = _temporaries(tmp_path)
    assert leftovers, "no kill landed mid-write"
    assert all(p.stat().st_size <= SIZE for p in leftovers)
    assert clean_stale_temporaries(tmp_path) == len(leftovers)
    assert _temporaries(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert _read_version(target) == final_version

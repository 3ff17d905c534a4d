"""Atomic writes of files and folders: the content is built under a hidden temporary name next to the target
and renamed into place only when complete, so a killed process never leaves a partial or empty file (or a
half-written folder) under a final name. :func:`clean_stale_temporaries` removes what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

TMP_PREFIX = ".marigold-tmp-"


def _create_temporary(folder: Path, suffix: str) -> tuple[int, str]:
    """Create a new hidden temporary file in ``folder`` like :func:`tempfile.mkstemp`, but with the
    permissions an ordinary ``open(path, "w")`` gives (``0o666`` minus the umask) instead of mkstemp's
    ``0o600``, so the renamed output file is readable by others as usual."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = os.path.join(folder, f"{TMP_PREFIX}{secrets.token_hex(8)}{suffix}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder}")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on clean exit it is flushed, fsync'ed and replaces ``path``; on
    error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path.parent, path.suffix)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, writer: Callable[[IO], None]) -> None:
    """Call ``writer(file)`` on a temporary file and move it to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        writer(f)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the name of a new empty temporary file next to ``path`` for a writer that only takes file names (e.g.
    an image library); on clean exit it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path.parent, path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(data))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on clean exit it becomes ``path``, on error it is removed.

    An existing ``path`` is replaced: it is first renamed to a temporary name, the new folder is renamed into
    place, then the old one is deleted, so ``path`` never names a partial folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}-{path.name}"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}-old-{path.name}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove the temporary files and folders a killed run left in ``folder``; returns how many."""
    n = 0
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob(TMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                n += 1
    return n

"""Atomic file writes: data goes to a hidden temporary file in the target folder, is flushed and fsync'ed, then
renamed over the final name. A killed process never leaves a partial or zero-byte file under a final name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

TMP_PREFIX = ".marigold-tmp-"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on clean exit it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
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


def clean_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove temporary files a killed run left in ``folder``; returns how many."""
    n = 0
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob(TMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
    return n

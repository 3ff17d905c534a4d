"""A video job's work folder: memory-mapped arrays and a state file, so a killed job resumes where it stopped.

Arrays are ``.npy`` memory maps (created once, then filled in place and flushed); the state is a small JSON file
replaced atomically after each finished chunk. A job records the hash of its settings; a rerun with other
settings starts afresh instead of mixing results.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..core.atomic import atomic_write_bytes

STATE = "state.json"


def settings_hash(settings: dict[str, Any]) -> str:
    """A stable hash of JSON-able settings.

    >>> settings_hash({"b": 1, "a": [2]}) == settings_hash({"a": [2], "b": 1})
    True
    """
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class WorkFolder:
    """``folder`` holding the arrays and state of one job with ``settings``."""

    def __init__(self, folder: str | Path, settings: dict[str, Any]):
        self.folder = Path(folder)
        self.key = settings_hash(settings)
        state = self._read()
        if state.get("key") != self.key:
            if self.folder.exists():
                shutil.rmtree(self.folder)
            self.folder.mkdir(parents=True, exist_ok=True)
            state = {"key": self.key, "settings": json.loads(json.dumps(settings, default=str))}
            self._write(state)
        self.state = state

    @property
    def resumed(self) -> bool:
        return len(self.state) > 2

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads((self.folder / STATE).read_text())
        except (OSError, ValueError):
            return {}

    def _write(self, state: dict[str, Any]) -> None:
        atomic_write_bytes(self.folder / STATE, json.dumps(state, indent=1).encode())

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)

    def commit(self, **updates: Any) -> None:
        """Record progress (after the arrays it describes were flushed)."""
        self.state.update(updates)
        self._write(self.state)

    def array(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """The memory map ``name.npy`` of ``shape`` (created zero-filled the first time)."""
        path = self.folder / f"{name}.npy"
        if path.exists():
            arr = np.load(path, mmap_mode="r+")
            if arr.shape == tuple(shape) and arr.dtype == np.dtype(dtype):
                return arr
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))

    def save_npz(self, name: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(self.folder / f"{name}.npz", buf.getvalue())

    def load_npz(self, name: str) -> dict[str, np.ndarray] | None:
        path = self.folder / f"{name}.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

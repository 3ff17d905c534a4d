"""Shards of a labelling job: the plan (which keys go to which shard), the finished shards already in the output
folder, the one writer of a shard, and the manifest.

**Plan** (:func:`plan_shards`): the inputs sorted by key, without the keys that finished shards already hold
(labelled or failed), cut into runs of ``shard_size``; the runs take the lowest shard numbers not taken by a
finished shard. For an unchanged input list this reproduces the first run's plan exactly (finished shards are
whole runs of the sorted list), so a rerun maps the same keys to the same shards. When the input list changed,
finished shards stay as they are (never rewritten), new keys go into new shards, and a key is still labelled at
most once; keys of finished shards that are no longer inputs stay in their shards.

**Shard files** are complete or absent: a shard is written under a hidden temporary name and renamed into place
(:mod:`marigold_toolkit.core.atomic`), so ``part-XXXXX.parquet`` (or ``part-XXXXX.json`` for the files layout)
existing means the shard is finished. A shard records its own failed inputs (Parquet: in the file's key-value
metadata ``marigold_label``; JSON: a ``failed`` list), so a killed job loses nothing that was finished, and the
manifest is rebuilt from the shards at the end of every run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_open, atomic_write_bytes
from .records import FORMAT_VERSION, Failure, LabelRow, OutputColumn, decode_value
from .sources import Item

#: output layouts: Parquet shards, or ``marigold predict``'s files plus one JSON record per shard
FORMATS = ("parquet", "files")
SHARD_SUFFIX = {"parquet": ".parquet", "files": ".json"}
#: the key of a Parquet shard's own metadata (JSON) in the file's key-value metadata
METADATA_KEY = b"marigold_label"
MANIFEST = "manifest.json"
#: the columns before the output columns, in order
BASE_COLUMNS = ("key", "sha256", "width", "height", "model", "settings", "seed")
_SHARD_FILE = re.compile(r"^part-(\d{5,})\.(parquet|json)$")


class ShardError(Exception):
    """The output folder holds shards that do not fit this job (other settings or format); a usage error."""


def shard_name(index: int, fmt: str) -> str:
    """``part-00007.parquet`` (files layout: ``part-00007.json``).

    >>> shard_name(7, "parquet")
    'part-00007.parquet'
    """
    return f"part-{index:05d}{SHARD_SUFFIX[fmt]}"


@dataclass
class Shard:
    """A planned shard: its number and its inputs (sorted by key); ``stems`` (files layout) name each input's
    output files."""

    index: int
    items: list[Item]
    stems: list[str] | None = None


@dataclass
class FinishedShard:
    """A shard file found in the output folder: the keys it labelled and the inputs that failed in it."""

    index: int
    path: Path
    keys: list[str]
    failed: list[Failure]
    settings_hash: str

    @property
    def all_keys(self) -> set[str]:
        return set(self.keys) | {f.key for f in self.failed}


def plan_shards(items: Sequence[Item], shard_size: int, finished: Sequence[FinishedShard] = (),
                stems: dict[str, str] | None = None) -> list[Shard]:
    """The shards still to do (see the module docstring). ``items`` sorted by key; ``stems``: key -> stem.

    >>> items = [Item(k, k) for k in "abcdefg"]
    >>> [(s.index, [i.key for i in s.items]) for s in plan_shards(items, 3)]
    [(0, ['a', 'b', 'c']), (1, ['d', 'e', 'f']), (2, ['g'])]
    >>> done = [FinishedShard(1, Path("part-00001.parquet"), ["d", "f"], [Failure("e", "corrupt")], "h")]
    >>> [(s.index, [i.key for i in s.items]) for s in plan_shards(items, 3, done)]
    [(0, ['a', 'b', 'c']), (2, ['g'])]
    """
    if shard_size < 1:
        raise ValueError(f"shard size must be >= 1, got {shard_size}")
    done: set[str] = set()
    for f in finished:
        done |= f.all_keys
    taken = {f.index for f in finished}
    pending = [it for it in items if it.key not in done]
    shards, index = [], 0
    for start in range(0, len(pending), shard_size):
        while index in taken:
            index += 1
        chunk = pending[start : start + shard_size]
        shards.append(Shard(index, chunk, [stems[i.key] for i in chunk] if stems is not None else None))
        index += 1
    return shards


def scan_finished(out_dir: str | Path, fmt: str) -> list[FinishedShard]:
    """The finished shards of layout ``fmt`` in ``out_dir``, by number. Raises :class:`ShardError` when the folder
    holds shards of the other layout."""
    out_dir = Path(out_dir)
    found = []
    if not out_dir.is_dir():
        return found
    for p in sorted(out_dir.iterdir()):
        m = _SHARD_FILE.match(p.name)
        if not m:
            continue
        if SHARD_SUFFIX[fmt] != "." + m.group(2):
            other = next(f for f, s in SHARD_SUFFIX.items() if s == "." + m.group(2))
            raise ShardError(f"{out_dir} holds shards of --format {other} ({p.name}); use --format {other} or "
                             "another --output")
        found.append(_read_parquet_shard(p, int(m.group(1))) if fmt == "parquet"
                     else _read_json_shard(p, int(m.group(1))))
    return found


def _read_parquet_shard(path: Path, index: int) -> FinishedShard:
    import pyarrow.parquet as pq

    meta = json.loads((pq.read_schema(path).metadata or {}).get(METADATA_KEY, b"{}"))
    keys = pq.read_table(path, columns=["key"]).column(0).to_pylist()
    return FinishedShard(index, path, keys, [Failure(f["key"], f["reason"]) for f in meta.get("failed", [])],
                         meta.get("settings_hash", ""))


def _read_json_shard(path: Path, index: int) -> FinishedShard:
    meta = json.loads(path.read_text(encoding="utf-8"))
    return FinishedShard(index, path, [r["key"] for r in meta.get("rows", [])],
                         [Failure(f["key"], f["reason"]) for f in meta.get("failed", [])],
                         meta.get("settings_hash", ""))


@dataclass
class ShardWriter:
    """Writes one finished shard atomically: ``part-XXXXX.parquet`` (one row per labelled image, rows sorted by
    key, columns :data:`BASE_COLUMNS` then one binary column per output) or, for the files layout,
    ``part-XXXXX.json`` (the rows' keys, stems, files and metadata). Both record the shard's failed inputs."""

    out_dir: Path
    fmt: str
    model: str
    settings_hash: str
    columns: list[OutputColumn] = field(default_factory=list)
    on_written: Callable[[Path], None] | None = None

    def write(self, index: int, rows: list[LabelRow], failed: list[Failure]) -> Path:
        rows = sorted(rows, key=lambda r: r.key)
        failed = sorted(failed, key=lambda f: f.key)
        path = Path(self.out_dir) / shard_name(index, self.fmt)
        meta: dict[str, Any] = {"version": FORMAT_VERSION, "shard": index, "model": self.model,
                                "settings_hash": self.settings_hash,
                                "failed": [{"key": f.key, "reason": f.reason} for f in failed]}
        if self.fmt == "parquet":
            self._write_parquet(path, rows, meta)
        else:
            meta["rows"] = [{"key": r.key, "sha256": r.sha256, "width": r.width, "height": r.height,
                             "seed": r.seed, "files": r.files} for r in rows]
            atomic_write_bytes(path, (json.dumps(meta, indent=1) + "\n").encode())
        if self.on_written is not None:
            self.on_written(path)
        return path

    def _write_parquet(self, path: Path, rows: list[LabelRow], meta: dict) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        n = len(rows)
        data = {
            "key": pa.array([r.key for r in rows], pa.string()),
            "sha256": pa.array([r.sha256 for r in rows], pa.string()),
            "width": pa.array([r.width for r in rows], pa.int32()),
            "height": pa.array([r.height for r in rows], pa.int32()),
            "model": pa.array([self.model] * n, pa.string()),
            "settings": pa.array([self.settings_hash] * n, pa.string()),
            "seed": pa.array([r.seed for r in rows], pa.int64()),
        }
        for col in self.columns:
            data[col.name] = pa.array([r.outputs[col.name] for r in rows], pa.binary())
        meta = dict(meta, rows=n, columns={c.name: c.describe() for c in self.columns})
        table = pa.table(data).replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
        with atomic_open(path, "wb") as f:
            pq.write_table(table, f, row_group_size=64)


def build_manifest(header: dict[str, Any], finished: Sequence[FinishedShard], expansion_failed: Sequence[Failure],
                   inputs: int) -> dict[str, Any]:
    """The manifest: ``header`` (model, task, settings, columns, ...), counts, the shards and every failed input
    (those of the finished shards and those that failed at expansion), sorted by key."""
    failed = sorted([*expansion_failed, *(f for s in finished for f in s.failed)], key=lambda f: f.key)
    labelled = sum(len(s.keys) for s in finished)
    return {
        **header,
        "counts": {"inputs": inputs, "labelled": labelled, "failed": len(failed), "shards": len(finished)},
        "shards": [{"file": s.path.name, "rows": len(s.keys), "failed": len(s.failed)}
                   for s in sorted(finished, key=lambda s: s.index)],
        "failed": [{"key": f.key, "reason": f.reason} for f in failed],
    }


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``OUT/manifest.json`` atomically."""
    path = Path(out_dir) / MANIFEST
    atomic_write_bytes(path, (json.dumps(manifest, indent=1) + "\n").encode())
    return path


class ShardCollector:
    """Gathers results (in any order, duplicates dropped) and writes each planned shard once, when every one of
    its keys has a result. The driver of the Ray engine is the single writer of shards through this; the local
    engine uses it too."""

    def __init__(self, shards: Sequence[Shard], writer: ShardWriter, on_result: Callable[[int], None] | None = None):
        self.writer = writer
        self.on_result = on_result
        self.shard_of = {item.key: s.index for s in shards for item in s.items}
        self.missing = {s.index: len(s.items) for s in shards}
        self.rows: dict[int, list[LabelRow]] = {s.index: [] for s in shards}
        self.failed: dict[int, list[Failure]] = {s.index: [] for s in shards}
        self.seen: set[str] = set()
        self.duplicates = 0
        self.written: list[Path] = []
        self.new_failures: list[Failure] = []

    def add(self, result: LabelRow | Failure) -> None:
        key = result.key
        if key in self.seen or key not in self.shard_of:
            self.duplicates += 1  # a retried task's repeated result: the first one counts
            return
        self.seen.add(key)
        index = self.shard_of[key]
        if isinstance(result, Failure):
            self.failed[index].append(result)
            self.new_failures.append(result)
        else:
            self.rows[index].append(result)
        self.missing[index] -= 1
        if self.on_result is not None:
            self.on_result(1)
        if self.missing[index] == 0:
            self.written.append(self.writer.write(index, self.rows.pop(index), self.failed.pop(index)))

    @property
    def complete(self) -> bool:
        return all(v == 0 for v in self.missing.values())


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The content of ``OUT/manifest.json``."""
    return json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))


def iter_labels(out_dir: str | Path, decode: bool = True) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet labelling job's shards, shard by shard: :data:`BASE_COLUMNS` and, per output column,
    the decoded float32 array (``decode=False``: the stored bytes). For the files layout, the shard records' rows.

    Example::

        for row in iter_labels("labels/"):
            row["key"], row["depth"]  # the input, float32 H x W in [0, 1]
    """
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    fmt = manifest.get("format", "parquet")
    for shard in scan_finished(out_dir, fmt):
        if fmt == "files":
            yield from json.loads(shard.path.read_text(encoding="utf-8"))["rows"]
            continue
        import pyarrow.parquet as pq

        columns = manifest["columns"]
        for batch in pq.ParquetFile(shard.path).iter_batches(batch_size=64):
            for row in batch.to_pylist():
                if decode:
                    row.update({n: decode_value(c, row[n]) for n, c in columns.items()})
                yield row

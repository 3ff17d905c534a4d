"""The inputs of a labelling job: command-line arguments expanded into keyed images, and their bytes.

An argument is one of

* an image file, or a folder (searched recursively for image files, hidden files skipped, as ``marigold
  predict`` does: :func:`~marigold_toolkit.io.images.find_images`);
* a glob pattern (``"photos/**/*.jpg"``, quoted so the shell leaves it alone; ``**`` recurses); matches that are
  folders are searched, matches ending in ``.parquet`` are read as tables;
* a text file (``.txt``) listing one input per line (any of these kinds except another list; blank lines and
  lines starting with ``#`` are skipped; relative paths are relative to the list's folder);
* a Parquet file (``.parquet``) with one image per row: the image bytes are the column ``image`` (binary, or a
  struct with a binary ``bytes`` field, as Hugging Face ``datasets`` store images), else the first binary column;
  the key is the string column ``key``, else ``path``, else ``<file>#<row>`` (the row number zero-padded, so
  keys sort in row order);
* an fsspec URL (``s3://bucket/photos/``, ``gs://...``, ``memory://...``, ``file://...``) of any of the above,
  when the matching fsspec backend is installed (``s3fs``, ``gcsfs``, ...).

Every image gets a **key**: the path as given (folder contents: the folder joined with the file's relative path),
the URL, or the Parquet key. Keys are unique (a repeated key keeps its first occurrence) and the images are
sorted by key, so the shard plan depends only on the set of inputs. Missing local inputs and folders without
images fail here, at expansion; a listed or named URL is not probed, and a missing one fails when it is read.
"""

from __future__ import annotations

import bisect
import glob as globlib
import logging
import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..io.images import find_images, is_image_path

logger = logging.getLogger(__name__)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_MAGIC = re.compile(r"[*?[]")
PARQUET_SUFFIX = ".parquet"
LIST_SUFFIX = ".txt"


class SourceError(Exception):
    """An input cannot be expanded or read because of the setup (e.g. a missing fsspec backend or pyarrow):
    a usage error, not a bad input."""


@dataclass(frozen=True, slots=True)
class Item:
    """One input image: its ``key`` and where its bytes are: the file or URL ``source``, or for a Parquet row the
    table's file or URL, the ``row`` index and the image ``column`` (``"image"`` or ``"image.bytes"``)."""

    key: str
    source: str
    row: int = -1
    column: str = ""


@dataclass
class Inputs:
    """The expanded inputs: ``items`` sorted by key (unique), and ``failed`` ``(input, reason)`` pairs for inputs
    that gave no image at all (missing, a folder without images, a table without an image column)."""

    items: list[Item] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (``scheme://...``).

    >>> is_url("s3://bucket/a.jpg"), is_url("photos/a.jpg")
    (True, False)
    """
    return bool(_URL.match(str(text)))


def _fs(url: str):
    """``(filesystem, path)`` of an fsspec URL; a missing backend is a :class:`SourceError`."""
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec comes with huggingface_hub
        raise SourceError(f"{url}: URLs need fsspec (pip install fsspec)") from exc
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise SourceError(f"{url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


def expand_inputs(inputs: Sequence[str], exclude: str | os.PathLike | None = None) -> Inputs:
    """Expand command-line inputs (see the module docstring) into sorted, unique :class:`Item` s.

    ``exclude``: a local folder whose contents are never inputs when found by a folder search or a glob (the job's
    own output folder; files named explicitly are kept).
    """
    out = Inputs()
    excluded = Path(exclude).resolve() if exclude is not None else None
    found: list[Item] = []
    for raw in inputs:
        found += _expand(str(raw), out.failed, excluded, in_list=False)
    seen: set[str] = set()
    unique = []
    for item in found:
        if item.key in seen:
            logger.warning("%s: listed more than once; labelled once", item.key)
            continue
        seen.add(item.key)
        unique.append(item)
    out.items = sorted(unique, key=lambda i: i.key)
    return out


def _outside(path: Path, excluded: Path | None) -> bool:
    if excluded is None:
        return True
    resolved = path.resolve()
    return resolved != excluded and excluded not in resolved.parents


def _expand(raw: str, failed: list, excluded: Path | None, in_list: bool) -> list[Item]:
    lower = raw.lower()
    if lower.endswith(LIST_SUFFIX) and not in_list:
        return _expand_list(raw, failed, excluded)
    if lower.endswith(PARQUET_SUFFIX) and not _MAGIC.search(raw):
        return _expand_parquet(raw, failed)
    if is_url(raw):
        return _expand_url(raw, failed, excluded, in_list)
    if _MAGIC.search(raw) and not os.path.exists(raw):
        matches = sorted(globlib.glob(raw, recursive=True))
        if not matches:
            failed.append((raw, "no file matches this pattern"))
            return []
        items = []
        for m in matches:
            p = Path(m)
            if m.lower().endswith(PARQUET_SUFFIX):
                items += _expand_parquet(m, failed)
            elif p.is_dir():
                items += _expand_local(m, failed, excluded)
            elif is_image_path(p) and not p.name.startswith(".") and _outside(p, excluded):
                items.append(Item(str(p), str(p)))
        return items
    return _expand_local(raw, failed, excluded)


def _expand_local(raw: str, failed: list, excluded: Path | None) -> list[Item]:
    images, errors = find_images([raw])
    failed += [(str(p), reason) for p, reason in errors]
    explicit = not Path(raw).is_dir()
    return [Item(str(p), str(p)) for p in images if explicit or _outside(p, excluded)]


def _normalise_url(url: str) -> str:
    """``scheme://a/b/../c`` -> ``scheme://a/c`` (fsspec does not resolve ``..``)."""
    scheme, rest = url.split("://", 1)
    lead = "/" if rest.startswith("/") else ""
    return f"{scheme}://{lead}{posixpath.normpath(rest).lstrip('/')}" if rest.strip("/") else url


def _expand_url(raw: str, failed: list, excluded: Path | None, in_list: bool) -> list[Item]:
    fs, path = _fs(_normalise_url(raw))
    if _MAGIC.search(path):
        hits = sorted(fs.glob(path))
    elif raw.endswith("/") or (not in_list and fs.isdir(path)):
        hits = sorted(p for p in fs.find(path) if is_image_path(p) and not posixpath.basename(p).startswith("."))
        if not hits:
            failed.append((raw, "folder contains no images"))
            return []
    else:
        url = fs.unstrip_protocol(path)  # one spelling per object, so a key is never labelled twice
        return [Item(url, url)]
    items = []
    for p in hits:
        url = fs.unstrip_protocol(p)
        if p.lower().endswith(PARQUET_SUFFIX):
            items += _expand_parquet(url, failed)
        elif is_image_path(p) and not fs.isdir(p):
            items.append(Item(url, url))
    if not items:
        failed.append((raw, "no file matches this pattern"))
    return items


def _read_text(raw: str) -> str:
    if is_url(raw):
        fs, path = _fs(raw)
        with fs.open(path, "rb") as f:
            return f.read().decode("utf-8")
    return Path(raw).read_text(encoding="utf-8")


def _expand_list(raw: str, failed: list, excluded: Path | None) -> list[Item]:
    try:
        text = _read_text(raw)
    except FileNotFoundError:
        failed.append((raw, "no such file or directory"))
        return []
    except (OSError, UnicodeDecodeError) as exc:
        failed.append((raw, f"cannot read the list ({getattr(exc, 'strerror', None) or exc})"))
        return []
    base = raw.rsplit("/", 1)[0] if is_url(raw) else os.path.dirname(raw)
    items = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not is_url(entry) and not os.path.isabs(entry) and base:
            entry = posixpath.join(base, entry) if is_url(base) else os.path.normpath(os.path.join(base, entry))
        items += _expand(entry, failed, excluded, in_list=True)
    return items


# --- Parquet tables of images -----------------------------------------------------------------------------------

def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise SourceError('Parquet needs pyarrow: pip install "marigold-toolkit[ray]" (or pyarrow)') from exc
    return pyarrow


@lru_cache(maxsize=8)
def _parquet_file(source: str):
    """An open :class:`pyarrow.parquet.ParquetFile` of a local path or URL (a few kept open per process)."""
    pa = _pyarrow()
    if is_url(source):
        fs, path = _fs(source)
        return pa.parquet.ParquetFile(fs.open(path, "rb"))
    return pa.parquet.ParquetFile(source)


def image_column(schema) -> str | None:
    """The image column of a table's Arrow ``schema``: ``"image"`` (binary) or ``"image.bytes"`` (a struct with
    binary ``bytes``), else the first binary column; ``None`` if there is none."""
    pa = _pyarrow()

    def binary(t) -> bool:
        return pa.types.is_binary(t) or pa.types.is_large_binary(t)

    if "image" in schema.names:
        t = schema.field("image").type
        if binary(t):
            return "image"
        if pa.types.is_struct(t) and t.get_field_index("bytes") >= 0 and binary(t.field("bytes").type):
            return "image.bytes"
    for f in schema:
        if binary(f.type):
            return f.name
    return None


def _expand_parquet(raw: str, failed: list) -> list[Item]:
    pa = _pyarrow()
    try:
        pf = _parquet_file(raw)
        schema = pf.schema_arrow
    except FileNotFoundError:
        failed.append((raw, "no such file or directory"))
        return []
    except (OSError, pa.ArrowException) as exc:
        failed.append((raw, f"not a readable Parquet file ({str(exc).splitlines()[0] if str(exc) else exc})"))
        return []
    column = image_column(schema)
    if column is None:
        failed.append((raw, f"no image column (a binary column, e.g. 'image'); columns: {', '.join(schema.names)}"))
        return []
    n = pf.metadata.num_rows
    key_col = next((c for c in ("key", "path") if c in schema.names and pa.types.is_string(schema.field(c).type)),
                   None)
    keys = pf.read(columns=[key_col]).column(0).to_pylist() if key_col else [None] * n
    width = len(str(max(n - 1, 0)))
    return [Item(k if k else f"{raw}#{r:0{width}d}", raw, r, column) for r, k in enumerate(keys)]


#: the image column of the row group read last in this process: ``((source, group, column), cells)``; batches
#: of one shard mostly read the same row group one after another
_last_group: list = [None, None]


def _row_group_cells(pf, source: str, group: int, column: str) -> list:
    top, _, sub = column.partition(".")
    if _last_group[0] != (source, group, column):
        col = pf.read_row_group(group, columns=[top]).column(0).combine_chunks()
        _last_group[:] = [(source, group, column), (col.field(sub) if sub else col)]
    return _last_group[1]


def _read_parquet_rows(source: str, rows: list[int], column: str) -> dict[int, bytes | None]:
    """Cells of the image ``column`` at ``rows`` of one table, reading each needed row group once."""
    pf = _parquet_file(source)
    starts, total = [], 0
    for g in range(pf.metadata.num_row_groups):
        starts.append(total)
        total += pf.metadata.row_group(g).num_rows
    by_group: dict[int, list[int]] = {}
    for r in rows:
        g = bisect.bisect_right(starts, r) - 1
        by_group.setdefault(g, []).append(r)
    out: dict[int, bytes | None] = {}
    for g, members in by_group.items():
        cells = _row_group_cells(pf, source, g, column)
        for r in members:
            out[r] = cells[r - starts[g]].as_py()
    return out


# --- reading bytes -------------------------------------------------------------------------------------------------

def read_items(items: Iterable[Item]) -> list[tuple[bytes | None, str | None]]:
    """The bytes of each item, or ``(None, reason)`` with a one-line reason (missing, a folder, unreadable)."""
    items = list(items)
    out: list[tuple[bytes | None, str | None]] = [(None, None)] * len(items)
    tables: dict[tuple[str, str], list[int]] = {}
    for i, item in enumerate(items):
        if item.row >= 0:
            tables.setdefault((item.source, item.column), []).append(i)
        else:
            out[i] = _read_file(item.source)
    for (source, column), idx in tables.items():
        try:
            cells = _read_parquet_rows(source, [items[i].row for i in idx], column)
        except (OSError, ValueError, IndexError) as exc:
            reason = f"cannot read the table ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            for i in idx:
                out[i] = (None, reason)
            continue
        for i in idx:
            data = cells.get(items[i].row)
            out[i] = (data, None) if data is not None else (None, "empty image cell (null)")
    return out


def _read_file(source: str) -> tuple[bytes | None, str | None]:
    try:
        if is_url(source):
            fs, path = _fs(source)
            with fs.open(path, "rb") as f:
                return f.read(), None
        with open(source, "rb") as f:
            return f.read(), None
    except FileNotFoundError:
        return None, "no such file"
    except IsADirectoryError:
        return None, "is a directory, not an image file"
    except PermissionError:
        return None, "permission denied"
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or exc})"
    except SourceError as exc:
        return None, str(exc)

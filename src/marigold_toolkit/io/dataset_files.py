"""Dataset file plumbing shared by the evaluation datasets and the training datasets: data roots (a folder or
the authors' ``.tar`` archive), the split-file reader and the :class:`SplitFileDataset` base, filesystem-safe
stems, and the raw decoders (8-bit RGB, 16-bit PNG, ``.npy``, EXR, the Hypersim IID cut-off)."""

from __future__ import annotations

import io
import logging
import os
import re
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def stem_from_relpath(rel_path: str) -> str:
    """A unique, filesystem-safe id from a split-file path.

    The extension is dropped, ``/`` becomes ``__`` and any other character outside ``[A-Za-z0-9._-]`` becomes
    ``_``: ``test/kitchen_0004/rgb_0001.png`` -> ``test__kitchen_0004__rgb_0001``.
    """
    rel = rel_path.replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    rel = rel.strip("/")
    base, ext = os.path.splitext(rel)
    if ext and "/" not in ext:
        rel = base
    parts = [_UNSAFE.sub("_", p) for p in rel.split("/") if p not in ("", ".")]
    stem = "__".join(parts)
    if not stem or stem.strip(".") == "":
        raise ValueError(f"cannot derive a sample id from path {rel_path!r}")
    return stem


@dataclass
class SplitEntry:
    """One line of a split file: the sample id, the relative paths it names and any extra columns."""

    stem: str
    paths: tuple[str, ...]
    line_no: int
    extra: dict[str, Any] = field(default_factory=dict)


class DataSource:
    """Read files named by split-file paths from a data folder or from an (uncompressed or compressed) tar.

    The authors ship the depth benchmarks as ``.tar`` archives whose members are named ``./<relative path>``
    (InteriorVerse's archive has no ``./``); both spellings are accepted. The tar handle opens lazily and is
    not pickled, so a benchmark can cross into DataLoader worker processes.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.is_tar = self.root.is_file() and tarfile.is_tarfile(self.root)
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] | None = None
        self._pid: int | None = None

    # tar handles cannot cross process boundaries
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_tar"] = None
        state["_members"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
        self._tar = None
        self._members = None

    @staticmethod
    def _norm(name: str) -> str:
        name = name.replace("\\", "/")
        while name.startswith("./"):
            name = name[2:]
        return name.lstrip("/")

    def _tar_index(self) -> dict[str, tarfile.TarInfo]:
        if self._tar is None or self._pid != os.getpid():
            self._tar = tarfile.open(self.root)  # noqa: SIM115 - held open across reads
            self._pid = os.getpid()
            self._members = None
        if self._members is None:
            self._members = {self._norm(m.name): m for m in self._tar.getmembers() if m.isfile()}
        return self._members

    def local_path(self, rel_path: str) -> Path | None:
        """The file's path on disk for a folder root; ``None`` for a tar root."""
        return None if self.is_tar else self.root / self._norm(rel_path)

    def exists(self, rel_path: str) -> bool:
        if self.is_tar:
            return self._norm(rel_path) in self._tar_index()
        return (self.root / self._norm(rel_path)).is_file()

    def open(self, rel_path: str) -> IO[bytes]:
        """A readable, seekable binary file object. Raises FileNotFoundError naming the root."""
        if self.is_tar:
            member = self._tar_index().get(self._norm(rel_path))
            if member is None:
                raise FileNotFoundError(f"{rel_path}: not in archive {self.root}")
            fobj = self._tar.extractfile(member)  # type: ignore[union-attr]
            if fobj is None:  # pragma: no cover - isfile() members always extract
                raise FileNotFoundError(f"{rel_path}: not a regular file in archive {self.root}")
            return io.BytesIO(fobj.read())
        path = self.root / self._norm(rel_path)
        if not path.is_file():
            raise FileNotFoundError(f"{rel_path}: no such file under {self.root}")
        return open(path, "rb")

    def read_bytes(self, rel_path: str) -> bytes:
        with self.open(rel_path) as f:
            return f.read()


# ----------------------------------------------------------------------------------------------------------
# split files


def read_split_file(
    path: Path,
    parse_line: Callable[[list[str], int], SplitEntry | None],
    min_columns: int = 1,
    unique: bool = False,
    delimiter: str | None = None,
) -> list[SplitEntry]:
    """Parse a split file into entries: whitespace-separated columns, or with ``delimiter`` (``","`` for the
    RollingDepth authors' CSV files) columns cut at that character and stripped.

    Blank lines and lines starting with ``#`` are skipped (a UTF-8 byte-order mark is ignored);
    ``parse_line(columns, line_no)`` may drop a line (e.g. a CSV header) by returning ``None``. A repeated
    sample id is an error with ``unique`` (evaluation: every sample is scored once), else kept with one warning
    (training: it is sampled more often).
    """
    entries: list[SplitEntry] = []
    seen: dict[str, int] = {}
    repeats = 0
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if delimiter is None:
                cols = line.split()
            else:
                cols = [c.strip() for c in line.rstrip("\r\n").split(delimiter)] if line.strip() else []
                while cols and not cols[-1]:
                    cols.pop()  # a trailing delimiter adds no column
            if not cols or cols[0].startswith("#"):
                continue
            if len(cols) < min_columns:
                raise ValueError(f"{path}:{line_no}: expected at least {min_columns} columns, got {len(cols)}: "
                                 f"{line.strip()!r}")
            entry = parse_line(cols, line_no)
            if entry is None:
                continue
            if entry.stem in seen:
                if unique:
                    raise ValueError(f"{path}:{line_no}: sample id {entry.stem!r} repeats line {seen[entry.stem]}; "
                                     "ids must be unique")
                repeats += 1
            seen.setdefault(entry.stem, line_no)
            entries.append(entry)
    if repeats:
        logger.warning("%s: %d lines repeat an earlier sample; they are kept (sampled more often)", path, repeats)
    return entries


class SplitFileDataset:
    """A dataset in a published on-disk layout: a data root (a folder, or the authors' ``.tar``) plus a split
    file whose lines name each sample's files relative to the root. The base of the training datasets
    (:class:`marigold_toolkit.data.base.TrainDataset`) and of the evaluation datasets
    (:class:`marigold_toolkit.evaluation.datasets.base.FileBenchmark`).

    The split file is ``split`` when given, else the first of ``split_files`` (or ``split_file``) found in the
    data folder (the archive's folder for a tar root).
    """

    name: str = ""
    #: what the dataset is, for messages ("training dataset", "benchmark")
    kind: str = "dataset"
    #: default split file name(s), tried in order in the data folder
    split_file: str = ""
    split_files: tuple[str, ...] = ()
    #: where the split file lives in the authors' repository (:attr:`split_repository`), for error messages
    split_source: str = ""
    #: the authors' repository that publishes the split files
    split_repository: str = "prs-eth/Marigold"
    #: the fewest whitespace-separated columns a split line must have
    min_columns: int = 2
    #: whether a repeated sample id is an error (see :func:`read_split_file`)
    unique_stems: bool = False

    def __init__(self, root: str | os.PathLike, split: str | os.PathLike | None = None):
        self.root = Path(root)
        self._check_root()
        self.source = DataSource(self.root)
        self.split_path = Path(split) if split is not None else self.default_split_path()
        self.entries = self.read_split(self.split_path)

    def _check_root(self) -> None:
        if not (self.root.is_dir() or (self.root.is_file() and tarfile.is_tarfile(self.root))):
            raise FileNotFoundError(
                f"{self.root}: data folder (or .tar archive) for {self.kind} '{self.name}' does not exist")

    def _split_names(self) -> tuple[str, ...]:
        return self.split_files or ((self.split_file,) if self.split_file else ())

    def data_folder(self) -> Path:
        """The folder holding the data (the archive's folder for a tar root)."""
        return self.root if self.root.is_dir() else self.root.parent

    def default_split_path(self) -> Path:
        folder = self.data_folder()
        names = self._split_names()
        for name in names:
            if (folder / name).is_file():
                return folder / name
        return folder / (names[0] if names else "split.txt")

    def read_split(self, path: Path) -> list[SplitEntry]:
        """Parse the split file at ``path`` (see :meth:`parse_line`)."""
        if not Path(path).is_file():
            hint = (f" (the authors' `{self.split_source}` from {self.split_repository})" if self.split_source
                    else "")
            raise FileNotFoundError(
                f"{path}: split file for {self.kind} '{self.name}' not found; place "
                f"{' or '.join(self._split_names()) or 'it'}{hint} in the data folder or pass split=...")
        return read_split_file(Path(path), self.parse_line, self.min_columns, self.unique_stems)

    def parse_line(self, cols: list[str], line_no: int) -> SplitEntry | None:
        """One split line -> entry (``None`` drops the line). Default: the first column names the sample and
        the first ``min_columns`` columns are its files."""
        return SplitEntry(stem_from_relpath(cols[0]), tuple(cols[: self.min_columns]), line_no)

    def describe(self, rel_path: str) -> str:
        """A readable location of ``rel_path``: the file path, or ``<archive>::<member>``."""
        local = self.source.local_path(rel_path)
        return str(local) if local is not None else f"{self.root}::{rel_path}"

    def __len__(self) -> int:
        return len(self.entries)

    def close(self) -> None:
        self.source.close()


# ----------------------------------------------------------------------------------------------------------
# decoders


def _open_pil(fobj: IO[bytes], what: str) -> Image.Image:
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # ETH3D frames are 24 MP; the split file is trusted
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(fobj)
            img.load()
    except (OSError, ValueError) as err:
        raise ValueError(f"{what}: cannot decode image ({err})") from err
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    return img


def read_rgb_uint8(source: DataSource, rel_path: str) -> np.ndarray:
    """An 8-bit colour image as ``[H, W, 3]`` uint8, decoded like the authors' ``Image.open`` and
    ``np.asarray``.

    No EXIF rotation is applied (the ground truth is aligned with the stored pixel grid). Grey, palette and
    RGBA files are converted to RGB; 16-bit colour images are refused.
    """
    with source.open(rel_path) as f:
        img = _open_pil(f, rel_path)
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            raise ValueError(f"{rel_path}: expected an 8-bit colour image, got PIL mode {img.mode}")
        if img.mode != "RGB":
            img = img.convert("RGB")
        arr = np.array(img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - convert("RGB") guarantees it
        raise ValueError(f"{rel_path}: expected [H, W, 3] RGB, got {arr.shape}")
    return arr


def read_png_depth(source: DataSource, rel_path: str, scale: float) -> np.ndarray:
    """A single-channel integer PNG divided by ``scale`` (1000 for mm, 256 for KITTI): ``[H, W]`` float32."""
    with source.open(rel_path) as f:
        img = _open_pil(f, rel_path)
        raw = np.asarray(img)
    if raw.ndim != 2:
        raise ValueError(f"{rel_path}: expected a single-channel depth PNG, got shape {raw.shape}")
    if not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"{rel_path}: expected an integer depth PNG, got dtype {raw.dtype}")
    return (raw.astype(np.float64) / scale).astype(np.float32)


def read_npy(source: DataSource, rel_path: str) -> np.ndarray:
    path = source.local_path(rel_path)
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"{rel_path}: no such file under {source.root}")
        return np.load(path, allow_pickle=False)
    with source.open(rel_path) as f:
        return np.load(f, allow_pickle=False)


def read_exr_rgb(source: DataSource, rel_path: str) -> np.ndarray:
    """An OpenEXR image as ``[H, W, 3]`` float32 in channel order R, G, B (alpha dropped, a lone Y/grey
    channel repeated), like the authors' ``cv2.imread(..., -1)`` followed by BGR->RGB.

    Needs the ``OpenEXR`` package (>= 3.2, ``pip install OpenEXR``); falls back to OpenCV with its EXR codec.
    """
    try:
        import OpenEXR  # noqa: F401
    except ImportError:
        return _read_exr_cv2(source, rel_path)
    return _read_exr_openexr(source, rel_path)


def _pick_rgb(channels: dict[str, np.ndarray], rel_path: str) -> np.ndarray:
    by_suffix: dict[str, np.ndarray] = {}
    for name, arr in channels.items():
        by_suffix.setdefault(name.split(".")[-1].upper(), arr)
    if all(c in by_suffix for c in "RGB"):
        planes = [by_suffix[c] for c in "RGB"]
    elif "Y" in by_suffix:
        planes = [by_suffix["Y"]] * 3
    elif len(channels) == 1:
        planes = [next(iter(channels.values()))] * 3
    else:
        raise ValueError(f"{rel_path}: EXR has no R, G, B (or Y) channels: {sorted(channels)}")
    return np.stack([np.asarray(p, dtype=np.float32) for p in planes], axis=-1)


def _read_exr_openexr(source: DataSource, rel_path: str) -> np.ndarray:
    import OpenEXR

    def _channels(f) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, ch in f.channels().items():
            px = np.asarray(ch.pixels)
            if px.ndim == 3:  # coalesced group despite separate_channels (defensive)
                for i, suffix in enumerate(name[: px.shape[2]]):
                    out[suffix] = px[..., i]
            else:
                out[name] = px
        return out

    path = source.local_path(rel_path)
    try:
        if path is not None:
            if not path.is_file():
                raise FileNotFoundError(f"{rel_path}: no such file under {source.root}")
            with OpenEXR.File(str(path), separate_channels=True) as f:
                chans = _channels(f)
        else:
            data = source.read_bytes(rel_path)
            with tempfile.NamedTemporaryFile(suffix=".exr") as tmp:
                tmp.write(data)
                tmp.flush()
                with OpenEXR.File(tmp.name, separate_channels=True) as f:
                    chans = _channels(f)
    except FileNotFoundError:
        raise
    except Exception as err:  # OpenEXR raises RuntimeError/ValueError on corrupt input
        raise ValueError(f"{rel_path}: cannot decode EXR ({err})") from err
    return _pick_rgb(chans, rel_path)


def _read_exr_cv2(source: DataSource, rel_path: str) -> np.ndarray:
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    try:
        import cv2
    except ImportError as err:
        raise ImportError(
            "reading EXR files (InteriorVerse) needs the OpenEXR package: pip install OpenEXR"
        ) from err
    buf = np.frombuffer(source.read_bytes(rel_path), dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{rel_path}: OpenCV cannot decode this EXR (install OpenEXR: pip install OpenEXR)")
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    return img[..., 2::-1].copy() if img.shape[2] >= 3 else np.repeat(img[..., :1], 3, axis=2)


def read_png_unit(source: DataSource, rel_path: str) -> np.ndarray:
    """8-bit colour/grey PNG -> ``[H, W, 3]`` float32 / 255; 16-bit grey -> / 65535, repeated to 3 channels."""
    with source.open(rel_path) as f, Image.open(f) as img:
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            arr = np.asarray(img).astype(np.float32) / 65535.0
            return np.repeat(arr[..., None], 3, axis=2)
    return read_rgb_uint8(source, rel_path).astype(np.float32) / 255.0


def hypersim_iid_cut_off(shading: np.ndarray, residual: np.ndarray, q: float = 0.98) -> float:
    """The authors' Hypersim IID normaliser: ``max(quantile(shading, q), quantile(residual, q))`` over all
    finite values of each array (linear interpolation; NaN when an array has no finite value)."""
    def qf(x: np.ndarray) -> float:
        x = np.asarray(x, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        return float(np.quantile(x, q)) if x.size else float("nan")

    return max(qf(shading), qf(residual))

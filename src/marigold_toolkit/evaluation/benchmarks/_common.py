"""The common base of the benchmark loaders (file plumbing lives in :mod:`marigold_toolkit.io.dataset_files`)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from ...io.dataset_files import (  # noqa: F401 - re-exported for the benchmark modules
    DataSource,
    SplitEntry,
    read_exr_rgb,
    read_npy,
    read_png_depth,
    read_rgb_uint8,
    stem_from_relpath,
)
from .base import Benchmark


# ----------------------------------------------------------------------------------------------------------
# the common benchmark base


class FileBenchmark(Benchmark):
    """A benchmark read from the published files under ``root`` in the order of the authors' split file.

    ``root`` is the dataset folder (or, where the authors ship one, the ``.tar`` archive itself). The split
    file is not shipped with this package: by default it is read from ``root/<split_file>`` (next to the
    archive for a tar root); ``split=`` points anywhere else.
    """

    #: where the split file lives in the authors' repository (prs-eth/Marigold), for error messages
    split_source: str = ""
    #: the fewest whitespace-separated columns a split line must have
    min_columns: int = 2

    def __init__(self, root: str | os.PathLike, split: str | os.PathLike | None = None):
        self.root = Path(root)
        if not (self.root.is_dir() or (self.root.is_file() and tarfile.is_tarfile(self.root))):
            raise FileNotFoundError(
                f"{self.root}: data folder (or .tar archive) for benchmark '{self.name}' does not exist"
            )
        self.source = DataSource(self.root)
        self.split_path = Path(split) if split is not None else self.default_split_path()
        self.entries = self.read_split(self.split_path)

    def default_split_path(self) -> Path:
        folder = self.root if self.root.is_dir() else self.root.parent
        return folder / self.split_file

    def close(self) -> None:
        self.source.close()

    # ---- split parsing -------------------------------------------------------------------------------------
    def read_split(self, split: Path | None) -> list[SplitEntry]:
        path = Path(split) if split is not None else self.default_split_path()
        if not path.is_file():
            hint = f" (the authors' `{self.split_source}` from prs-eth/Marigold)" if self.split_source else ""
            raise FileNotFoundError(
                f"{path}: split file for benchmark '{self.name}' not found; place {self.split_file}{hint} "
                f"in the data folder or pass split=..."
            )
        entries: list[SplitEntry] = []
        seen: dict[str, int] = {}
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                cols = line.split()
                if not cols:
                    continue
                if len(cols) < self.min_columns:
                    raise ValueError(
                        f"{path}:{line_no}: expected at least {self.min_columns} columns, "
                        f"got {len(cols)}: {line.strip()!r}"
                    )
                entry = self.parse_line(cols, line_no)
                if entry is None:
                    continue
                if entry.stem in seen:
                    raise ValueError(
                        f"{path}:{line_no}: sample id {entry.stem!r} repeats line {seen[entry.stem]}; "
                        "ids must be unique"
                    )
                seen[entry.stem] = line_no
                entries.append(entry)
        return entries

    def parse_line(self, cols: list[str], line_no: int) -> SplitEntry | None:
        """One split line -> entry (``None`` drops the line). Default: the first column names the sample."""
        return SplitEntry(stem=stem_from_relpath(cols[0]), paths=tuple(cols), line_no=line_no)

"""Evaluation datasets (benchmark loaders) of the Marigold evaluation protocol, by name.

Each loader reads the authors' published files under a data root (a folder, or for the depth sets the
authors' ``.tar`` archive itself) in the order of the authors' split file. The split files are not shipped:
put the authors' file (``data_split/...`` in prs-eth/Marigold; see each class docstring for its name and line
format) in the data root, or pass ``split=`` with its path.
"""

from __future__ import annotations

import os

from ...core.checks import lookup
from .base import Benchmark, EvalSample, InferenceDefaults
from .completion import COMPLETION_BENCHMARKS, DepthCompletionBenchmark
from .depth import DIODEDepth, ETH3DDepth, KITTIEigenDepth, NYUv2Depth, ScanNetDepth
from .intrinsics import HypersimIIDLighting, InteriorVerseAppearance
from .normals import DIODENormals, IBimsNormals, NYUv2Normals, OASISNormals, ScanNetNormals

BENCHMARKS: dict[str, type[Benchmark]] = {
    cls.name: cls
    for cls in (
        NYUv2Depth,
        KITTIEigenDepth,
        ETH3DDepth,
        ScanNetDepth,
        DIODEDepth,
        NYUv2Normals,
        ScanNetNormals,
        IBimsNormals,
        DIODENormals,
        OASISNormals,
        InteriorVerseAppearance,
        HypersimIIDLighting,
        *COMPLETION_BENCHMARKS,
    )
}


def get_benchmark(name: str, root: str | os.PathLike, split: str | os.PathLike | None = None) -> Benchmark:
    """The benchmark ``name`` reading data under ``root`` (split file: ``split`` or the default in ``root``).

    Raises:
        ValueError: unknown name (the message lists the known ones).
        FileNotFoundError: missing data root or split file.
    """
    return lookup(BENCHMARKS, name, "benchmark")(root, split=split)


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "DIODEDepth",
    "DepthCompletionBenchmark",
    "DIODENormals",
    "ETH3DDepth",
    "EvalSample",
    "HypersimIIDLighting",
    "IBimsNormals",
    "InferenceDefaults",
    "InteriorVerseAppearance",
    "KITTIEigenDepth",
    "NYUv2Depth",
    "NYUv2Normals",
    "OASISNormals",
    "ScanNetDepth",
    "ScanNetNormals",
    "get_benchmark",
]

"""Evaluation datasets (benchmark loaders) of the Marigold evaluation protocol, by name.

Each loader reads the authors' published files under a data root (a folder, or for the depth sets the
authors' ``.tar`` archive itself) in the order of the authors' split file. The split files are not shipped:
put the authors' file (``data_split/...`` in prs-eth/Marigold; see each class docstring for its name and line
format) in the data root, or pass ``split=`` with its path.

:data:`VIDEO_BENCHMARKS` are the video depth sets of RollingDepth (:mod:`.video`; split folders of per-sequence CSV
files from prs-eth/RollingDepth); :func:`get_benchmark` finds both kinds.
"""

from __future__ import annotations

import os

from ...core.checks import lookup
from .base import Benchmark, EvalSample, InferenceDefaults
from .completion import COMPLETION_BENCHMARKS, DepthCompletionBenchmark
from .depth import DIODEDepth, ETH3DDepth, KITTIEigenDepth, NYUv2Depth, ScanNetDepth
from .intrinsics import HypersimIIDLighting, InteriorVerseAppearance
from .normals import DIODENormals, IBimsNormals, NYUv2Normals, OASISNormals, ScanNetNormals
from .video import (
    VIDEO_BENCHMARKS,
    BonnVideo,
    DyDToFVideo,
    PointOdysseyVideo,
    ScanNetVideo,
    VideoBenchmark,
    VideoSample,
)

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
    """The benchmark ``name`` (an image benchmark of :data:`BENCHMARKS` or a video benchmark of
    :data:`VIDEO_BENCHMARKS`) reading data under ``root`` (split: ``split`` or the default in ``root``).

    Raises:
        ValueError: unknown name (the message lists the known ones).
        FileNotFoundError: missing data root or split file.
    """
    return lookup({**BENCHMARKS, **VIDEO_BENCHMARKS}, name, "benchmark")(root, split=split)


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BonnVideo",
    "DyDToFVideo",
    "PointOdysseyVideo",
    "ScanNetVideo",
    "VIDEO_BENCHMARKS",
    "VideoBenchmark",
    "VideoSample",
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

"""Which frames each RollingDepth snippet holds.

A snippet of length ``L`` at dilation ``d`` takes frames ``i, i + d, ..., i + (L - 1) d`` for every start ``i``
(stride 1), so a video of ``N`` frames has ``N - (L - 1) d`` snippets at that dilation.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def cap_dilation(n_frames: int, length: int, dilation: int) -> int:
    """The largest dilation a video of ``n_frames`` allows for snippets of ``length`` frames: ``min(dilation,
    n_frames // length - 1)`` (at least 1), the authors' cap for short videos.

    >>> cap_dilation(100, 3, 25), cap_dilation(30, 3, 25), cap_dilation(4, 3, 25)
    (25, 9, 1)
    """
    return max(1, min(int(dilation), int(n_frames / length) - 1))


def snippet_indices(n_frames: int, length: int, dilation: int) -> list[list[int]]:
    """Frame indices of every snippet (stride 1).

    >>> snippet_indices(6, 3, 2)
    [[0, 2, 4], [1, 3, 5]]
    >>> snippet_indices(4, 3, 1)
    [[0, 1, 2], [1, 2, 3]]
    """
    if length < 1 or dilation < 1:
        raise ValueError(f"snippet length and dilation must be >= 1, got {length}, {dilation}")
    span = (length - 1) * dilation + 1
    if span > n_frames:
        raise ValueError(f"a snippet of {length} frames at dilation {dilation} spans {span} frames; the video has "
                         f"{n_frames}")
    return [list(range(i, i + span, dilation)) for i in range(n_frames - span + 1)]


def refinement_dilation(step: int, n_steps: int, start: int, end: int = 1) -> int:
    """The dilation of refinement step ``step`` of ``n_steps``: from ``start`` down to ``end`` linearly,
    truncated in floating point as the authors' schedule is (``1 - 4/5`` is just below ``0.2``, so the last of 5
    steps from 6 lands on 1).

    >>> [refinement_dilation(i, 5, 6) for i in range(5)]
    [6, 5, 4, 3, 1]
    """
    if start < end:
        raise ValueError(f"refinement dilation must fall: start {start} < end {end}")
    gap_start, gap_end = start - 1, end - 1
    return int((1 - step / n_steps) * (gap_start - gap_end) + gap_end) + 1

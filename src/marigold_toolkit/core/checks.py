"""Shape checks with one-line errors, in the style of kornia's ``KORNIA_CHECK_SHAPE``.

A shape pattern is a list of tokens (or one string of space-separated tokens), one per dimension:

* a number (``"3"``) must match exactly; alternatives are written ``"1|3"``;
* a name (``"B"``, ``"H"``) matches any size;
* a leading ``"*"`` matches any number (zero or more) of leading dimensions.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any


def _tokens(pattern: str | Sequence[str]) -> list[str]:
    return pattern.split() if isinstance(pattern, str) else [str(t) for t in pattern]


def shape_matches(x: Any, pattern: str | Sequence[str]) -> bool:
    """Whether ``x.shape`` (a tensor or an array) matches ``pattern`` (see the module docstring).

    >>> import numpy as np
    >>> shape_matches(np.zeros((2, 3, 4, 5)), "B 3 H W"), shape_matches(np.zeros((4, 5)), "* H W")
    (True, True)
    >>> shape_matches(np.zeros((2, 2, 4, 5)), "B 1|3 H W")
    False
    """
    tokens = _tokens(pattern)
    shape = tuple(getattr(x, "shape", ()))
    if tokens and tokens[0] == "*":
        tokens = tokens[1:]
        if len(shape) < len(tokens):
            return False
        shape = shape[len(shape) - len(tokens):]
    if len(shape) != len(tokens):
        return False
    for size, token in zip(shape, tokens):
        if token[0].isdigit() and int(size) not in {int(t) for t in token.split("|")}:
            return False
    return True


def check_shape(x: Any, pattern: str | Sequence[str], name: str = "input") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x.shape`` matches ``pattern``.

    >>> import torch
    >>> check_shape(torch.zeros(2, 3, 4, 5), "B 3 H W")
    >>> check_shape(torch.zeros(2, 1, 4, 5), "B 3 H W", "normals")
    Traceback (most recent call last):
    ...
    ValueError: normals: expected shape [B, 3, H, W], got (2, 1, 4, 5)
    """
    if not shape_matches(x, pattern):
        got = tuple(int(s) for s in getattr(x, "shape", ())) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"{name}: expected shape [{', '.join(_tokens(pattern))}], got {got}")


def check_same_shape(a: Any, b: Any, names: tuple[str, str] = ("pred", "gt")) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape.

    >>> import numpy as np
    >>> check_same_shape(np.zeros((2, 3)), np.zeros((3, 2)))
    Traceback (most recent call last):
    ...
    ValueError: shape mismatch: pred (2, 3) vs gt (3, 2)
    """
    sa, sb = tuple(a.shape), tuple(b.shape)
    if sa != sb:
        raise ValueError(f"shape mismatch: {names[0]} {sa} vs {names[1]} {sb}")


def check_hw(size: Any, what: str = "resize") -> tuple[int, int]:
    """``(H, W)`` of positive ints, else a ``ValueError`` naming ``what``.

    >>> check_hw([480, 640])
    (480, 640)
    """
    try:
        h, w = (operator.index(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an (H, W) pair of positive ints, got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{what} must be an (H, W) pair of positive ints, got {size!r}")
    return int(h), int(w)


def lookup(table: Mapping[str, Any], name: str, what: str, error: type[Exception] = ValueError) -> Any:
    """``table[name]``, else ``error`` naming the unknown ``what`` and listing the known names (sorted).

    >>> lookup({"b": 2, "a": 1}, "c", "benchmark")
    Traceback (most recent call last):
    ...
    ValueError: unknown benchmark 'c'; known benchmarks: a, b
    """
    try:
        return table[name]
    except KeyError:
        raise error(f"unknown {what} {name!r}; known {what}s: {', '.join(sorted(table))}") from None


def check_map(arr: Any, hw: tuple[int, int], channels: int | None, what: str) -> None:
    """Raise ``ValueError`` unless ``arr`` is a per-pixel map of an ``hw``-sized image: ``[H, W]`` when
    ``channels`` is ``None``, else ``[H, W, channels]``.

    >>> import numpy as np
    >>> check_map(np.zeros((4, 5, 3)), (4, 6), 3, "normal map")
    Traceback (most recent call last):
    ...
    ValueError: normal map is 4x5 but the image is 4x6
    """
    pattern = "H W" if channels is None else f"H W {channels}"
    if not shape_matches(arr, pattern):
        raise ValueError(f"expected a [{pattern.replace(' ', ', ')}] {what}, got shape {tuple(arr.shape)}")
    if tuple(arr.shape[:2]) != tuple(hw):
        raise ValueError(f"{what} is {arr.shape[0]}x{arr.shape[1]} but the image is {hw[0]}x{hw[1]}")

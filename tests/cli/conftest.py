"""Fixtures for the ``marigold predict`` CLI tests (helpers live in ``_helpers.py``)."""

from __future__ import annotations

import pytest

from ._helpers import Oracle


@pytest.fixture(scope="module")
def oracle(checkpoints) -> Oracle:
    return Oracle(checkpoints)

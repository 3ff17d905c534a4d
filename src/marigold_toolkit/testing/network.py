"""Local-network helpers for tests and benchmarks that start a server."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it).

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


__all__ = ["free_port"]

"""Running the API under uvicorn with a graceful stop: SIGTERM (or SIGINT) stops accepting connections, answers
503 to new requests on open ones, finishes the requests in flight, and returns normally (exit code 0)."""

from __future__ import annotations

import logging
import signal
from typing import Any

logger = logging.getLogger(__name__)


def run_server(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
               graceful_timeout_s: int | None = 300) -> None:
    """Serve ``app`` (from :func:`~.api.create_app`) until SIGTERM/SIGINT, then drain and return."""
    import uvicorn

    state = app.state.server

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame) -> None:
            # uvicorn re-raises the signals it captured once it has stopped (exit status 143); a drained server
            # has done what SIGTERM asks, so it returns instead. A second SIGINT still forces the exit.
            logger.info("%s: draining (finishing the requests in flight)", signal.Signals(sig).name)
            state.drain()
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=graceful_timeout_s, lifespan="on")
    _Server(config).run()
    logger.info("stopped")

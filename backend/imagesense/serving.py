"""`imagesense serve`: uvicorn with a graceful shutdown.

On SIGTERM (or Ctrl-C) the server keeps listening while it drains: /ready answers 503 "shutting down"
(a load balancer stops sending), new work gets 503 with Retry-After, and queued and running work gets
IMAGESENSE_SHUTDOWN_GRACE_S to finish; then what is left is stopped (a `cancelled` event on the stream,
503 over HTTP) and the server exits. A second signal exits at once.
"""

from __future__ import annotations

import logging
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from imagesense.schemas.stream import MAX_STREAM_MESSAGE_BYTES
from imagesense.service import TaskService
from imagesense.settings import Settings

log = logging.getLogger(__name__)
_FLUSH_S = 0.5  # after stopping the work: time for the last events to reach their sockets


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, grace_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._grace_s = grace_s
        self._draining: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        service: TaskService | None = getattr(self._app.state, "service", None)
        if self._draining is not None or service is None:
            super().handle_exit(sig, frame)  # a second signal, or nothing started: exit now
            return
        log.info("shutting down: new work is refused; running work has %.0f s to finish", self._grace_s)
        self._draining = threading.Thread(target=self._drain, args=(service,), name="imagesense-drain", daemon=True)
        self._draining.start()

    def _drain(self, service: TaskService) -> None:
        service.shut_down(self._grace_s)
        threading.Event().wait(_FLUSH_S)
        self.should_exit = True


def serve(app: FastAPI, settings: Settings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # the service configured logging itself (logs.py)
        ws_max_size=4 * MAX_STREAM_MESSAGE_BYTES,  # past this the socket closes; up to it, a clear error event
    )
    GracefulServer(config, app, settings.shutdown_grace_s).run()

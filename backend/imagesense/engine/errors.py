"""The engine layer's own exceptions. The service maps them to API errors in one place (``errors.py``)."""

from __future__ import annotations


class EngineError(Exception):
    """Anything an engine reports that its caller can act on."""


class EngineUnavailable(EngineError):
    """The engine can't take work now (not loaded, an upstream down); the message says why and how to fix it.
    ``retry_after_s``: when it is worth trying again (an upstream that said so), if known."""

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EngineOverloaded(EngineError):
    """The engine refused the work for now (an upstream's own queue is full); try again later."""

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InvalidGenerationRequest(EngineError):
    """The request can't be run as given (too long a prompt, a schema the engine can't follow)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

"""Typed errors and the one JSON shape every error takes: ``{"error": {"code", "message", "field"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagesense.engine.errors import EngineError, EngineOverloaded, EngineUnavailable, InvalidGenerationRequest
from imagesense.jobs import JobTimedOut, PoolError, QueueFull
from imagesense.schemas.errors import ErrorBody, ErrorResponse

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a client can act on. Subclasses fix the status and code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> ErrorResponse:
        return ErrorResponse(error=ErrorBody(code=self.code, message=self.message, field=self.field))


class InvalidImage(ApiError):
    status, code = 400, "invalid_image"


class NotFound(ApiError):
    status, code = 404, "not_found"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(ApiError):
    status, code = 422, "validation_error"


class TooManyRequests(ApiError):
    status, code = 429, "queue_full"


class ModelUnavailable(ApiError):
    status, code = 503, "model_unavailable"


class GenerationTimeout(ApiError):
    status, code = 504, "timeout"


class ClientGone(ApiError):
    """The client closed the request before its answer (logged; nobody is left to read it)."""

    status, code = 499, "client_closed_request"


def api_error_from(error: Exception) -> ApiError | None:
    """The API error for an exception of the engine or the pool: the one place where they are mapped."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, QueueFull | EngineOverloaded):
        return TooManyRequests(str(error), headers={"Retry-After": str(error.retry_after_s)})
    if isinstance(error, JobTimedOut):
        return GenerationTimeout(str(error))
    if isinstance(error, EngineUnavailable):
        return ModelUnavailable(str(error))
    if isinstance(error, InvalidGenerationRequest):
        return ValidationFailed(str(error), field=error.field)
    return None


def validation_error_from(errors: list[Any], *, skip: int = 1, prefix: str | None = None) -> ValidationFailed:
    """The first of pydantic's errors as a 422 naming the field. ``skip`` drops leading parts of the
    location that name no field (FastAPI's "body", a tagged union's tag); ``prefix`` names what was
    validated when the locations start inside it (a form field holding JSON)."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ())]
    parts = [prefix] if prefix else []
    parts += location[skip:] if len(location) > skip else location
    field = ".".join(parts) or None
    message = str(first.get("msg", "invalid value"))
    return ValidationFailed(f"{field}: {message}" if field else message, field=field)


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body().model_dump(exclude_none=True), status_code=error.status, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        error = api_error_from(exc)
        if error is None:  # an engine or pool error with no meaning for clients
            return await on_unexpected(request, exc)
        return error_response(error)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error_from(list(exc.errors())))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = ErrorResponse(error=ErrorBody(code=code, message=str(exc.detail)))
        return JSONResponse(body.model_dump(exclude_none=True), status_code=exc.status_code)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        body = ErrorResponse(error=ErrorBody(code="internal_error", message="internal server error"))
        return JSONResponse(body.model_dump(exclude_none=True), status_code=500)

    for kind in (ApiError, EngineError, PoolError):
        app.add_exception_handler(kind, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)

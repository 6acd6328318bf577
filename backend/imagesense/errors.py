"""Typed errors and the one JSON shape every error takes: ``{"error": {"code", "message", "field"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


class QueueFull(ApiError):
    status, code = 429, "queue_full"


class ModelUnavailable(ApiError):
    status, code = 503, "model_unavailable"


class GenerationTimeout(ApiError):
    status, code = 504, "timeout"


class JobCancelled(Exception):
    """The job was cancelled by its client (not an HTTP error: nobody is left to answer)."""


def _field_of(location: tuple[Any, ...]) -> str | None:
    # ("body", "max_new_tokens") -> "max_new_tokens"; ("query", "x") -> "x"
    parts = [str(part) for part in location[1:]] if len(location) > 1 else [str(p) for p in location]
    return ".".join(parts) or None


def validation_error_from(errors: list[Any]) -> ValidationFailed:
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _field_of(tuple(first.get("loc", ())))
    message = str(first.get("msg", "invalid value"))
    return ValidationFailed(f"{field}: {message}" if field else message, field=field)


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body().model_dump(exclude_none=True), status_code=error.status, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc)

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

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)

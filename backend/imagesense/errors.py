"""Typed errors and the one JSON shape every error takes: ``{"error": {"code", "message", "field"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagesense.engine.errors import EngineError, EngineOverloaded, EngineUnavailable, InvalidGenerationRequest
from imagesense.jobs import JobTimedOut, PoolClosed, PoolError, QueueFull
from imagesense.logs import request_id
from imagesense.methods import allowed_methods
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
        return ErrorResponse(
            error=ErrorBody(code=self.code, message=self.message, field=self.field, request_id=request_id.get())
        )


class InternalError(ApiError):
    status, code = 500, "internal_error"


class InvalidImage(ApiError):
    status, code = 400, "invalid_image"


class InvalidDocument(ApiError):
    status, code = 400, "invalid_document"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code or self.code


class BadHost(ApiError):
    status, code = 400, "bad_host"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


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


class ShuttingDown(ApiError):
    status, code = 503, "shutting_down"

    def __init__(self, message: str, *, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message, field=field, headers={"Retry-After": "5", **(headers or {})})


class GenerationTimeout(ApiError):
    status, code = 504, "timeout"


class ClientGone(ApiError):
    """The client closed the request before its answer (logged; nobody is left to read it)."""

    status, code = 499, "client_closed_request"


def api_error_from(error: Exception) -> ApiError | None:
    """The API error for an exception of the engine or the pool: the one place where they are mapped."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, PoolClosed):
        return ShuttingDown(str(error), headers={"Retry-After": str(error.retry_after_s)})
    if isinstance(error, QueueFull | EngineOverloaded):
        return TooManyRequests(str(error), headers={"Retry-After": str(error.retry_after_s)})
    if isinstance(error, JobTimedOut):
        return GenerationTimeout(str(error))
    if isinstance(error, EngineUnavailable):
        later = {"Retry-After": str(error.retry_after_s)} if error.retry_after_s is not None else None
        return ModelUnavailable(str(error), headers=later)
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
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")  # our own validators' words
    return ValidationFailed(f"{field}: {message}" if field else message, field=field)


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class HttpError(ApiError):
    code = "http_error"


HTTP_ERRORS: dict[int, type[ApiError]] = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge}


OPENAI_PREFIX = "/v1/"
OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
    504: "timeout",
}


def openai_status(error: ApiError) -> int:
    return 400 if error.status == 422 else error.status  # OpenAI answers an invalid parameter with 400


def openai_error_body(error: ApiError) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``: the envelope OpenAI's SDKs read."""
    kind = OPENAI_TYPES.get(error.status, "invalid_request_error")
    return {"error": {"message": error.message, "type": kind, "param": error.field, "code": error.code}}


def error_response(error: ApiError, path: str = "") -> JSONResponse:
    """The error in the shape of the API its path belongs to: OpenAI's under /v1, ours elsewhere."""
    if path.startswith(OPENAI_PREFIX):
        return JSONResponse(openai_error_body(error), status_code=openai_status(error), headers=error.headers)
    # Every field of the shape, null included: the schema marks them all present.
    return JSONResponse(error.body().model_dump(), status_code=error.status, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        error = api_error_from(exc)
        if error is None:  # an engine or pool error with no meaning for clients
            return await on_unexpected(request, exc)
        return error_response(error, request.url.path)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error_from(list(exc.errors())), request.url.path)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = HTTP_ERRORS.get(exc.status_code, HttpError)
        error = kind(str(exc.detail), headers=dict(exc.headers or {}))
        if exc.status_code == 405:  # Starlette lists only the first route's methods for a shared path
            error.headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
        error.status = exc.status_code
        return error_response(error, request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        error = InternalError("internal server error; the log has the details under the request id")
        return error_response(error, request.url.path)

    for kind in (ApiError, EngineError, PoolError):
        app.add_exception_handler(kind, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)

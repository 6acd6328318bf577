"""ASGI middleware: a request id on every request, and the request body bounded before anything reads it."""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagesense.auth import ApiKeys, bearer_token
from imagesense.errors import ApiError, BadHost, Forbidden, InternalError, PayloadTooLarge, error_response
from imagesense.logs import request_id
from imagesense.metrics import Metrics

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-request-id"
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestIds:
    """Takes the client's ``X-Request-ID`` when it is a sane token, else makes one; echoes it on the
    response, and sets it for the logs and error bodies of everything the request does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        current = given if _ACCEPTED_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(current)

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.encode(), current.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.error("unexpected error", exc_info=exc)
            if scope["type"] == "http" and not started:
                error = InternalError("internal server error; the log has the details under the request id")
                await error_response(error, scope.get("path", ""))(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class KeyGate:
    """With API keys on, a request that sends a body to the API (``/api/``, ``/v1/``) is refused with 401
    before any of it is read or parsed unless it presents a right key: parsing is work no caller without
    a key may cause (an 81 MiB JSON body of ``[{},{},…]`` is ~1.9 GB of Python objects). Every such
    route needs a key anyway; the routes' own check still names the client."""

    _BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
    _GATED = ("/api/", "/v1/")

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gated = (
            scope["type"] == "http"
            and self.keys.enabled
            and scope["method"] in self._BODY_METHODS
            and scope["path"].startswith(self._GATED)
        )
        if gated:
            authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            try:
                self.keys.client(bearer_token(authorization), "unchecked")
            except ApiError as error:
                await _answer(error, scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuses a request body over its limit with 413 before it is read (by its Content-Length), or as soon
    as a body without one passes it, so nothing larger is ever spooled to disk. ``/v1`` bodies are JSON
    with base64 images: they get their own byte limit, and their objects and arrays are counted as the
    bytes arrive, so an over-nested body is refused before it is parsed."""

    _JSON_PREFIX = "/v1/"

    def __init__(self, app: ASGIApp, max_bytes: int, json_max_bytes: int, json_max_containers: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.json_max_bytes = json_max_bytes
        self.json_max_containers = json_max_containers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_json = scope["path"].startswith(self._JSON_PREFIX)
        limit = self.json_max_bytes if is_json else self.max_bytes
        too_large = f"the request body is larger than {limit} bytes, the limit for this server"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(PayloadTooLarge(too_large), scope.get("path", ""))(scope, receive, send)
            return
        seen = containers = 0

        async def counted() -> Message:
            nonlocal seen, containers
            message = await receive()
            body = message.get("body", b"")
            seen += len(body)
            if seen > limit:
                raise HTTPException(413, too_large)  # FastAPI passes HTTPExceptions on as they are
            if is_json and (containers := containers + body.count(b"{") + body.count(b"[")) > (
                self.json_max_containers
            ):
                raise HTTPException(
                    413, f"the JSON body has over {self.json_max_containers} objects and arrays, the limit"
                )
            return message

        await self.app(scope, counted, send)


class BrowserGuard:
    """What a web page in the user's browser may not do to a service it can reach:

    - name a Host the service does not answer to (DNS rebinding: a foreign site's name resolving to this
      server) — 400;
    - open the stream from another origin (WebSockets are outside CORS) — 403;
    - send a state-changing request from another site while keys are off (a simple multipart POST needs
      no CORS preflight) — 403. With keys on, such a request can't carry the key.

    Requests without an Origin (curl, SDKs, servers) are not browsers' and pass.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: list[str], origins: list[str], keys_enabled: bool) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.allowed_hosts = {host.lower().strip("[]") for host in allowed_hosts}
        self.origins = {origin.rstrip("/") for origin in origins}
        self.keys_enabled = keys_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get("host", "")
        if not self.any_host and _host_name(host) not in self.allowed_hosts:
            error: ApiError = BadHost(f"this service does not answer to the host {_host_name(host)!r}")
            await _answer(error, scope, receive, send)
            return
        if self._foreign(headers, host) and (scope["type"] == "websocket" or self._changes_state(scope)):
            await _answer(Forbidden("requests from another site's pages are refused"), scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _foreign(self, headers: dict[str, str], host: str) -> bool:
        origin = headers.get("origin", "").rstrip("/")
        if origin and origin != "null":
            return urlsplit(origin).netloc.lower() != host.lower() and origin not in self.origins
        return headers.get("sec-fetch-site") == "cross-site"

    def _changes_state(self, scope: Scope) -> bool:
        return not self.keys_enabled and scope["method"] not in ("GET", "HEAD", "OPTIONS")


def _host_name(host: str) -> str:
    """The name in a Host header, without its port: "[::1]:8000" -> "::1", "localhost:8000" -> "localhost"."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


async def _answer(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    """An HTTP error response, also in place of a WebSocket upgrade where the server can send one."""
    if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
        await error_response(error, scope.get("path", ""))(scope, receive, send)
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": error.code})


class HttpMetrics:
    """Counts HTTP requests by method, route template (never the raw path: ids would explode the series)
    and status, and times them."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.http.labels(scope["method"], route, str(status)).inc()
            self.metrics.http_seconds.labels(scope["method"], route).observe(time.perf_counter() - began)

"""Serve the built single-page app at / next to /api, when it has been built."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from imagesense.methods import allowed_methods


def mount_spa(app: FastAPI, static_dir: Path) -> None:
    index = static_dir / "index.html"
    if not index.is_file():
        return
    if (static_dir / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=static_dir / "assets"), name="assets")

    @app.api_route("/{path:path}", methods=list(_METHODS), include_in_schema=False)
    async def spa(path: str, request: Request) -> FileResponse:
        if path == "api" or path.startswith("api/"):
            raise _api_miss(app, request)
        if request.method not in ("GET", "HEAD"):
            raise HTTPException(405, "the web app is only read", headers={"Allow": "GET, HEAD"})
        # Files at the top of the build (favicon, ...) as themselves; any other path is the app's route.
        candidate = (static_dir / path).resolve()
        if path and candidate.is_file() and candidate.is_relative_to(static_dir.resolve()):
            return FileResponse(candidate)
        return FileResponse(index)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _api_miss(app: FastAPI, request: Request) -> HTTPException:
    """An /api path the catch-all caught: 405 when the API has the path with other methods, else 404."""
    if allowed := allowed_methods(app, request.url.path):
        message = f"{request.method} is not accepted at {request.url.path}"
        return HTTPException(405, message, headers={"Allow": ", ".join(allowed)})
    return HTTPException(404, f"no such endpoint: {request.url.path}")

"""Which methods a path accepts, read from the OpenAPI spec: for the `Allow` header of every 405."""

from __future__ import annotations

import functools
import re

from fastapi import FastAPI
from starlette.routing import compile_path


@functools.cache
def _paths(app: FastAPI) -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    compiled = []
    for template, operations in app.openapi().get("paths", {}).items():
        regex, _format, _converters = compile_path(template)
        compiled.append((regex, tuple(sorted(method.upper() for method in operations))))
    return tuple(compiled)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the spec documents for ``path`` (HEAD with GET); empty for an unknown path."""
    methods = {method for regex, accepted in _paths(app) if regex.match(path) for method in accepted}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)

"""Extraction presets: JSON Schemas shipped with the package, one file per preset."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, get_args

from imagesense.schemas.extract import Preset

PRESETS: tuple[Preset, ...] = get_args(Preset)


@cache
def _text(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")


def preset_schema(name: Preset) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_text(name))  # a fresh copy: callers may not share it
    return schema

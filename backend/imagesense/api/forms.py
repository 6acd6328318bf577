"""HTTP form fields built from the public models, so a bound is defined once (in ``schemas``) and holds
for the forms and the WebSocket stream alike."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Form
from pydantic import BaseModel, TypeAdapter, ValidationError

from imagesense.errors import ValidationFailed, validation_error_from
from imagesense.schemas.tasks import History, JsonSchema, TaskOptions

M = TypeVar("M", bound=BaseModel)
_HISTORY: TypeAdapter[list[Any]] = TypeAdapter(History)
_JSON_SCHEMA: TypeAdapter[dict[str, Any]] = TypeAdapter(JsonSchema)


def form_of(model: type[M], *, only: tuple[str, ...]) -> Callable[..., M]:
    """A dependency that reads the ``only`` fields of ``model`` from a form, each with the model's own
    type, bounds and description, and returns the validated model (other fields at their defaults)."""
    parameters = []
    for name in only:
        field = model.model_fields[name]
        annotation = Annotated[field.annotation, *field.metadata, Form(description=field.description)]  # type: ignore[name-defined]
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=annotation)
        )

    def read(**values: Any) -> M:
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            raise validation_error_from(list(exc.errors()), skip=0) from None

    read.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    read.__name__ = f"{model.__name__}_form"
    return read


_COMMON = ("max_new_tokens", "resolution", "max_pixels", "temperature", "top_p")
ocr_options = form_of(TaskOptions, only=(*_COMMON, "engine"))
describe_options = form_of(TaskOptions, only=(*_COMMON, "detail"))
ask_options = form_of(TaskOptions, only=_COMMON)
extract_options = form_of(TaskOptions, only=_COMMON)
estimate_options = form_of(TaskOptions, only=(*_COMMON, "detail", "engine"))

HISTORY_DESCRIPTION = 'Earlier turns as JSON: [{"role": "user", "content": "..."}, {"role": "assistant", ...}, ...]'


def parse_history(raw: str | None) -> list[Any]:
    """The ``history`` form field (a JSON string), validated as the stream validates its ``history``."""
    if not raw:
        return []
    try:
        history: list[Any] = _HISTORY.validate_json(raw)
    except ValidationError as exc:
        detail = validation_error_from(list(exc.errors()), skip=0, prefix="history").message
        raise ValidationFailed(
            f"history must be a JSON list of {{role, content}} turns ({detail})", field="history"
        ) from None
    return history


def parse_json_schema(raw: str | None, field: str = "json_schema") -> dict[str, Any] | None:
    """The ``json_schema`` form field (a JSON object as text), bounded as the stream's and /v1's."""
    if not raw:
        return None
    try:
        schema: dict[str, Any] = _JSON_SCHEMA.validate_json(raw)
    except ValidationError as exc:
        detail = validation_error_from(list(exc.errors()), skip=0, prefix=field).message
        raise ValidationFailed(f"{field} must be a JSON object ({detail})", field=field) from None
    return schema

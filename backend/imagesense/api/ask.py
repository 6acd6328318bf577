"""Ask: a question about one or more images, with the earlier turns of the conversation."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import TypeAdapter, ValidationError

from imagesense.api.deps import ERROR_RESPONSES, ServiceDep, many_images, task_options
from imagesense.errors import ValidationFailed
from imagesense.schemas.tasks import MAX_HISTORY_TURNS, MAX_QUESTION_CHARS, TaskOptions, TaskResult, Turn
from imagesense.service import TaskSpec

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)
_HISTORY = TypeAdapter(list[Turn])


def parse_history(raw: str | None) -> list[Turn]:
    if not raw:
        return []
    try:
        history = _HISTORY.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValidationFailed(
            f"history must be a JSON list of {{role, content}} turns ({where}: {first['msg']})", field="history"
        ) from None
    if len(history) > MAX_HISTORY_TURNS:
        raise ValidationFailed(f"history has {len(history)} turns; the limit is {MAX_HISTORY_TURNS}", field="history")
    return history


@router.post("/ask")
async def ask(
    request: Request,
    service: ServiceDep,
    question: Annotated[str, Form(min_length=1, max_length=MAX_QUESTION_CHARS)],
    options: Annotated[TaskOptions, Depends(task_options)],
    files: Annotated[list[UploadFile] | None, File(description="Images to ask about.")] = None,
    image_ids: Annotated[list[str] | None, Form(description="Ids of uploaded images.")] = None,
    history: Annotated[
        str | None, Form(description='Earlier turns as JSON: [{"role": "user", "content": "..."}, ...]')
    ] = None,
) -> TaskResult:
    turns = parse_history(history)
    images = await many_images(service, files, image_ids)
    spec = TaskSpec("ask", images, options, question=question, history=turns)
    return await service.run(spec, request.is_disconnected)

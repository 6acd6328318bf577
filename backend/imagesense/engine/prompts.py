"""Task prompts as chat messages, rendered later by the processor's own chat template.

Images always sit at the start of the first user turn, so a conversation about the same images keeps
the same prompt prefix from one follow-up to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from imagesense.errors import ValidationFailed
from imagesense.schemas.tasks import DescribeDetail, TaskName, Turn

Message = dict[str, Any]

OCR_PROMPT = (
    "Read all the text in this image. Write it out in natural reading order and keep the layout as lines: "
    "one output line per line of text in the image. Output only the text, with no commentary."
)
DESCRIBE_PROMPTS: dict[DescribeDetail, str] = {
    "brief": "Describe this image in one or two sentences.",
    "detailed": (
        "Describe this image in detail: the main subject, the setting, notable objects and people, "
        "colors and layout, and any visible text."
    ),
}


def image_items(count: int) -> list[Message]:
    """One image entry per image; several images are numbered so a question can say "image 2"."""
    if count == 1:
        return [{"type": "image"}]
    items: list[Message] = []
    for number in range(1, count + 1):
        items += [{"type": "text", "text": f"Image {number}:"}, {"type": "image"}]
    return items


def user_turn(image_count: int, text: str) -> Message:
    return {"role": "user", "content": [*image_items(image_count), {"type": "text", "text": text}]}


def validate_history(history: Sequence[Turn]) -> None:
    """Earlier turns must alternate user / assistant, starting with the user and ending with an answer."""
    for index, turn in enumerate(history):
        expected: Literal["user", "assistant"] = "user" if index % 2 == 0 else "assistant"
        if turn.role != expected:
            raise ValidationFailed(
                f"history[{index}] has role {turn.role!r}; turns must alternate user, assistant, ... "
                "starting with user",
                field="history",
            )
    if len(history) % 2:
        raise ValidationFailed("history must end with an assistant turn", field="history")


def build_messages(
    task: TaskName,
    image_count: int,
    *,
    question: str | None = None,
    history: Sequence[Turn] = (),
    detail: DescribeDetail = "brief",
) -> list[Message]:
    if task == "ocr":
        return [user_turn(image_count, OCR_PROMPT)]
    if task == "describe":
        return [user_turn(image_count, DESCRIBE_PROMPTS[detail])]
    if not question:
        raise ValidationFailed("a question is required for the ask task", field="question")
    validate_history(history)
    turns = [*(turn.content for turn in history), question]
    messages: list[Message] = [user_turn(image_count, turns[0])]
    for index, content in enumerate(turns[1:], start=1):
        role = "assistant" if index % 2 else "user"
        messages.append({"role": role, "content": [{"type": "text", "text": content}]})
    return messages

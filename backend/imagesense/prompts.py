"""Task prompts as chat messages, rendered later by the processor's own chat template.

Images always sit at the start of the first user turn, so a conversation about the same images keeps
the same prompt prefix from one follow-up to the next.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from imagesense.engine.protocol import ChatMessage, ImagePart, TextPart
from imagesense.errors import ValidationFailed
from imagesense.schemas.tasks import DescribeDetail, TaskName, Turn

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

JSON_INSTRUCTION = "Answer with JSON only, following this JSON schema:"
EXTRACT_PROMPT = (
    "Extract the fields described by this JSON schema from the document in the image. Copy values as "
    "they are written; use null for a field the document doesn't show."
)
TEXT_HINT = "The document's text, as read by OCR (it may contain errors; the image is authoritative):"


def extract_prompt(json_schema: Mapping[str, Any], document_text: str | None) -> str:
    prompt = f"{EXTRACT_PROMPT}\n{json.dumps(json_schema, ensure_ascii=False)}"
    if document_text:
        prompt += f"\n\n{TEXT_HINT}\n{document_text}"
    return prompt


def text_part(text: str) -> TextPart:
    return {"type": "text", "text": text}


def image_items(count: int) -> list[TextPart | ImagePart]:
    """One image entry per image; several images are numbered so a question can say "image 2"."""
    image: ImagePart = {"type": "image"}
    if count == 1:
        return [image]
    items: list[TextPart | ImagePart] = []
    for number in range(1, count + 1):
        items += [text_part(f"Image {number}:"), image]
    return items


def user_turn(image_count: int, text: str) -> ChatMessage:
    return {"role": "user", "content": [*image_items(image_count), text_part(text)]}


def build_messages(
    task: TaskName,
    image_count: int,
    *,
    question: str | None = None,
    history: Sequence[Turn] = (),
    detail: DescribeDetail = "brief",
    json_schema: Mapping[str, Any] | None = None,
    document_text: str | None = None,
) -> list[ChatMessage]:
    """The conversation for a task; ``history`` is already valid (see schemas.tasks.History)."""
    if task == "ocr":
        return [user_turn(image_count, OCR_PROMPT)]
    if task == "describe":
        return [user_turn(image_count, DESCRIBE_PROMPTS[detail])]
    if task == "extract":
        return [user_turn(image_count, extract_prompt(json_schema or {"type": "object"}, document_text))]
    if task == "chat":
        raise ValueError("a chat brings its own messages (TaskSpec.conversation)")
    if not question:
        raise ValidationFailed("a question is required for the ask task", field="question")
    if json_schema is not None:  # the grammar enforces the shape; the model still has to know what to fill in
        question = f"{question}\n\n{JSON_INSTRUCTION}\n{json.dumps(json_schema, ensure_ascii=False)}"
    turns = [*(turn.content for turn in history), question]
    messages = [user_turn(image_count, turns[0])]
    for index, content in enumerate(turns[1:], start=1):
        messages.append({"role": "assistant" if index % 2 else "user", "content": [text_part(content)]})
    return messages

"""Task prompts (unit tests of imagesense.engine.prompts)."""

from __future__ import annotations

import pytest

from imagesense.engine.prompts import DESCRIBE_PROMPTS, OCR_PROMPT, build_messages
from imagesense.errors import ValidationFailed
from imagesense.schemas.tasks import Turn


def texts(message: dict[str, object]) -> list[str]:
    content = message["content"]
    assert isinstance(content, list)
    return [item["text"] for item in content if item["type"] == "text"]


def image_count(message: dict[str, object]) -> int:
    content = message["content"]
    assert isinstance(content, list)
    return sum(item["type"] == "image" for item in content)


def test_ocr_asks_for_all_text_in_reading_order_with_lines() -> None:
    [message] = build_messages("ocr", 1)
    assert message["role"] == "user"
    assert image_count(message) == 1
    assert texts(message) == [OCR_PROMPT]
    assert "reading order" in OCR_PROMPT
    assert "line" in OCR_PROMPT


@pytest.mark.parametrize("detail", ["brief", "detailed"])
def test_describe_follows_the_detail_level(detail: str) -> None:
    [message] = build_messages("describe", 1, detail=detail)  # type: ignore[arg-type]
    assert texts(message) == [DESCRIBE_PROMPTS[detail]]  # type: ignore[index]
    assert DESCRIBE_PROMPTS["brief"] != DESCRIBE_PROMPTS["detailed"]


def test_ask_puts_images_first_and_replays_history() -> None:
    history = [Turn(role="user", content="What is this?"), Turn(role="assistant", content="A receipt.")]
    messages = build_messages("ask", 2, question="What is the total?", history=history)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert image_count(messages[0]) == 2
    assert texts(messages[0]) == ["Image 1:", "Image 2:", "What is this?"]
    assert texts(messages[1]) == ["A receipt."]
    assert image_count(messages[2]) == 0
    assert texts(messages[2]) == ["What is the total?"]


def test_follow_up_keeps_the_prompt_prefix() -> None:
    """The first turn (with the images) is identical across follow-ups: the basis for prefix reuse."""
    first = build_messages("ask", 1, question="Q1")
    follow_up = build_messages(
        "ask", 1, question="Q2", history=[Turn(role="user", content="Q1"), Turn(role="assistant", content="A1")]
    )
    assert follow_up[0] == first[0]


def test_ask_needs_a_question() -> None:
    with pytest.raises(ValidationFailed) as caught:
        build_messages("ask", 1, question=None)
    assert caught.value.field == "question"


@pytest.mark.parametrize(
    "roles",
    [["assistant", "user"], ["user", "user"], ["user"], ["user", "assistant", "user"]],
)
def test_history_must_alternate_and_end_with_an_answer(roles: list[str]) -> None:
    history = [Turn(role=role, content="x") for role in roles]  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed) as caught:
        build_messages("ask", 1, question="Q", history=history)
    assert caught.value.field == "history"

"""Task prompts (unit tests of imagesense.prompts) and the history rules of the public schema."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from imagesense.errors import ValidationFailed
from imagesense.prompts import build_messages
from imagesense.schemas.tasks import MAX_HISTORY_CHARS, MAX_HISTORY_TURNS, History, Turn


def texts(message: Any) -> list[str]:
    return [item["text"] for item in message["content"] if item["type"] == "text"]


def kinds(message: Any) -> list[str]:
    return [item["type"] for item in message["content"]]


@pytest.mark.parametrize("task", ["ocr", "describe"])
def test_one_image_comes_first_then_one_instruction(task: str) -> None:
    [message] = build_messages(task, 1)  # type: ignore[arg-type]
    assert message["role"] == "user"
    assert kinds(message) == ["image", "text"]


def test_each_task_and_detail_level_has_its_own_instruction() -> None:
    instructions = {
        "ocr": texts(build_messages("ocr", 1)[0])[0],
        "brief": texts(build_messages("describe", 1, detail="brief")[0])[0],
        "detailed": texts(build_messages("describe", 1, detail="detailed")[0])[0],
    }
    assert len(set(instructions.values())) == 3
    assert "text" in instructions["ocr"].lower()
    assert len(instructions["detailed"]) > len(instructions["brief"])


def test_several_images_are_numbered_so_a_question_can_name_one() -> None:
    [message] = build_messages("ocr", 3)
    assert kinds(message) == ["text", "image", "text", "image", "text", "image", "text"]
    assert texts(message)[:3] == ["Image 1:", "Image 2:", "Image 3:"]


def test_ask_puts_images_first_and_replays_history() -> None:
    history = [Turn(role="user", content="What is this?"), Turn(role="assistant", content="A receipt.")]
    messages = build_messages("ask", 2, question="What is the total?", history=history)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert kinds(messages[0]).count("image") == 2
    assert texts(messages[0]) == ["Image 1:", "Image 2:", "What is this?"]
    assert texts(messages[1]) == ["A receipt."]
    assert kinds(messages[2]) == ["text"]
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


HISTORY: TypeAdapter[list[Turn]] = TypeAdapter(History)


@pytest.mark.parametrize(
    "roles",
    [["assistant", "user"], ["user", "user"], ["user"], ["user", "assistant", "user"]],
)
def test_history_must_alternate_and_end_with_an_answer(roles: list[str]) -> None:
    with pytest.raises(ValidationError):
        HISTORY.validate_python([{"role": role, "content": "x"} for role in roles])


def test_history_is_bounded_in_turns_and_characters() -> None:
    def turns(count: int, chars: int) -> list[dict[str, str]]:
        return [{"role": ("user", "assistant")[i % 2], "content": "x" * chars} for i in range(count)]

    assert len(HISTORY.validate_python(turns(MAX_HISTORY_TURNS, 10))) == MAX_HISTORY_TURNS
    with pytest.raises(ValidationError):
        HISTORY.validate_python(turns(MAX_HISTORY_TURNS + 2, 10))
    per_turn = MAX_HISTORY_CHARS // 4
    assert len(HISTORY.validate_python(turns(4, per_turn))) == 4
    with pytest.raises(ValidationError, match="characters"):
        HISTORY.validate_python(turns(4, per_turn + 1))

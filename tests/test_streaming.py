"""Streaming and stopping helpers (unit tests of imagesense.engine.streaming)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer

from imagesense.engine.streaming import RepetitionGuard, StopWhen, TextDeltaStreamer


def test_deltas_add_up_to_the_text_and_never_split_a_character(tiny_checkpoint: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    text = "Total: 42 元 — 你好，世界! 🙂 done"
    ids = tokenizer(text).input_ids
    deltas: list[str] = []
    streamer = TextDeltaStreamer(tokenizer, deltas.append)
    streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt comes first and is not echoed
    for token in ids:
        streamer.put(torch.tensor([token]))
    streamer.end()
    assert "".join(deltas) == text
    assert all("\ufffd" not in delta for delta in deltas)
    assert streamer.first_token_at is not None
    assert streamer.last_token_at is not None
    assert streamer.last_token_at >= streamer.first_token_at


def test_stop_when_follows_the_signal() -> None:
    flag = {"stop": False}
    criterion = StopWhen(lambda: flag["stop"])
    ids, scores = torch.zeros((1, 5), dtype=torch.long), torch.zeros((1, 10))
    assert not bool(criterion(ids, scores)[0])
    flag["stop"] = True
    assert bool(criterion(ids, scores)[0])
    assert criterion.triggered


def test_repetition_guard_catches_loops_but_not_ordinary_repeats() -> None:
    guard = RepetitionGuard(prompt_length=0)
    assert guard.is_looping([7] * 64)
    assert guard.is_looping(list(range(20)) * 4)  # a 20-token line repeated four times
    assert not guard.is_looping([7] * 63)  # a long row of one symbol is still text
    assert not guard.is_looping(list(range(20)) * 3)
    assert not guard.is_looping(list(range(200)))
    looping = torch.tensor([[0, 0, 0] + [5, 6] * 40])
    assert bool(RepetitionGuard(prompt_length=3)(looping, torch.zeros(1))[0])

"""Token streaming and early stopping, called by ``model.generate`` on the worker thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer


class TextDeltaStreamer(BaseStreamer):
    """Turns generated ids into text deltas as they are produced.

    Decoding runs over a short window of recent tokens and holds back a delta that ends in a partial
    UTF-8 character (U+FFFD), so multi-byte text (Chinese, emoji) arrives whole.
    """

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
        self._tokenizer = tokenizer
        self._on_text = on_text
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self._prompt_seen = False
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        now = time.perf_counter()
        self.first_token_at = self.first_token_at or now
        self.last_token_at = now
        self._ids.extend(int(token) for token in value.reshape(-1).tolist())
        self._emit_ready_text()

    def _decode(self, ids: list[int]) -> str:
        text: str = self._tokenizer.decode(ids, skip_special_tokens=True)
        return text

    def _emit_ready_text(self) -> None:
        before = self._decode(self._ids[self._prefix_offset : self._read_offset])
        after = self._decode(self._ids[self._prefix_offset :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
            self._on_text(after[len(before) :])

    @property
    def ids(self) -> list[int]:
        """The tokens generated so far (what a generation stopped mid-step has produced)."""
        return list(self._ids)

    def end(self) -> None:
        before = self._decode(self._ids[self._prefix_offset : self._read_offset])
        after = self._decode(self._ids[self._prefix_offset :])
        if len(after) > len(before):
            self._on_text(after[len(before) :])
        self._prefix_offset = self._read_offset = len(self._ids)


class StopWhen(StoppingCriteria):
    """Stops generation as soon as ``should_stop()`` says so (cancel, deadline)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self._should_stop = should_stop
        self.triggered = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:  # noqa: ARG002
        self.triggered = self.triggered or self._should_stop()
        return torch.full((input_ids.shape[0],), self.triggered, dtype=torch.bool)  # type: ignore[return-value]


class FollowThreadShare(StoppingCriteria):
    """Never stops anything: before each token it gives this generation its current share of the cores.

    One generation alone gets every core (a single request stays fast); when a second starts, each gets
    half, so two never oversubscribe the CPU. torch's thread count is per calling thread, so each worker
    sets its own.
    """

    def __init__(self, threads_now: Callable[[], int]) -> None:
        self._threads_now = threads_now
        self._current = 0
        self.adjust()

    def adjust(self) -> None:
        wanted = self._threads_now()
        if wanted != self._current:
            torch.set_num_threads(wanted)
            self._current = wanted

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:  # noqa: ARG002
        self.adjust()
        return torch.zeros((input_ids.shape[0],), dtype=torch.bool)  # type: ignore[return-value]


class RepetitionGuard(StoppingCriteria):
    """Stops a generation that has fallen into a loop: the same span of ``period`` tokens repeated.

    A loop must cover at least ``min_span`` tokens and ``min_repeats`` copies, so legitimately repeated
    text (a row of dashes, a table with equal rows) is not cut short.
    """

    def __init__(self, prompt_length: int, max_period: int = 64, min_span: int = 64, min_repeats: int = 4):
        self._prompt_length = prompt_length
        self._max_period = max_period
        self._min_span = min_span
        self._min_repeats = min_repeats
        self.triggered = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:  # noqa: ARG002
        generated = input_ids[0, self._prompt_length :]
        self.triggered = self.triggered or self.is_looping(generated.tolist())
        return torch.full((input_ids.shape[0],), self.triggered, dtype=torch.bool)  # type: ignore[return-value]

    def is_looping(self, tokens: list[int]) -> bool:
        for period in range(1, self._max_period + 1):
            repeats = max(self._min_repeats, -(-self._min_span // period))
            span = period * repeats
            if span > len(tokens):
                continue
            tail = tokens[-span:]
            if tail == tail[:period] * repeats:
                return True
        return False


class GenerationInterrupted(Exception):
    """Raised inside the model's forward pass to stop a generation that was asked to stop."""


class LayerStops:
    """Stops a generation inside a forward pass: before every vision block and decoder layer, the control of
    the generation running on this thread is asked whether to stop. So a cancel or a deadline frees the
    slot within one layer (well under a second, even in the vision encoder at thousands of patches)
    instead of at the end of a prefill that can take half a minute.

    The hooks are registered once on the shared model; which generation they stop is per thread, as each
    generation runs on a worker thread of its own.
    """

    def __init__(self, layers: list[torch.nn.Module]) -> None:
        self._current = threading.local()
        for layer in layers:
            layer.register_forward_pre_hook(self._check)

    def _check(self, _module: torch.nn.Module, _args: Any) -> None:
        should_stop: Callable[[], bool] | None = getattr(self._current, "should_stop", None)
        if should_stop is not None and should_stop():
            raise GenerationInterrupted

    @contextmanager
    def watching(self, should_stop: Callable[[], bool]) -> Iterator[None]:
        self._current.should_stop = should_stop
        try:
            yield
        finally:
            self._current.should_stop = None

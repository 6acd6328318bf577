"""Sampling with a generator of the request's own, so a seed gives the same answer however many
generations run beside it (``model.generate`` would draw from torch's one global generator)."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

SEED_SPACE = 2**64  # torch seeds are unsigned 64-bit; any integer a client sends maps into them


class SeededSampler(LogitsProcessor):
    """The last processor of a sampled generation: temperature, then nucleus (top-p), then one draw.
    It returns logits where only the drawn token is finite, so ``generate`` (run greedy) takes it."""

    def __init__(self, temperature: float, top_p: float, seed: int | None) -> None:
        self._temperature = temperature
        self._top_p = top_p
        self._generator = torch.Generator()
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(seed % SEED_SPACE)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:  # noqa: ARG002
        probabilities = torch.softmax(scores.float() / self._temperature, dim=-1)
        if self._top_p < 1.0:
            probabilities = nucleus(probabilities, self._top_p)
        drawn = torch.multinomial(probabilities, 1, generator=self._generator)
        chosen = torch.full_like(scores, float("-inf"))
        chosen.scatter_(-1, drawn, 0.0)
        return chosen  # type: ignore[return-value]


def nucleus(probabilities: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keeps the most likely tokens whose probabilities add up to ``top_p`` (at least one)."""
    ordered, order = torch.sort(probabilities, descending=True, dim=-1)
    before = torch.cumsum(ordered, dim=-1) - ordered  # mass of the tokens ranked above each one
    ordered = ordered.masked_fill(before >= top_p, 0.0)
    kept = torch.zeros_like(probabilities).scatter_(-1, order, ordered)
    return kept / kept.sum(dim=-1, keepdim=True)

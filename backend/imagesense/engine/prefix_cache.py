"""Reuse of the KV cache of a prompt prefix already computed: the image and the earlier turns.

Prompts put the images first, so every request about the same images (at the same pixel budget) shares
the prefix up to the end of the image tokens, and a follow-up question shares the whole earlier
conversation. After each generation its KV cache is kept here (bounded, least recently used first);
the next request about the same images starts from the longest cached prefix of its own tokens, so
neither the vision encoder nor the shared part of the prompt runs again.

Entries are keyed by the images' content ids and the pixel budget: image tokens are all the same
placeholder id, so the tokens alone can't tell two images of the same size apart.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from imagesense.engine.kv_cache import GrowingLayer

ImagesKey = tuple[tuple[str, ...], int, int]  # (image content ids, max pixels, min pixels)
MIN_REUSE_TOKENS = 8  # shorter shared prefixes are not worth a copy


@dataclass(frozen=True)
class _Entry:
    tokens: torch.Tensor  # 1-D: the ids the cache covers
    cache: DynamicCache
    nbytes: int


def cache_nbytes(cache: DynamicCache) -> int:
    total = 0
    for layer in cache.layers:
        held = (
            layer.held()
            if isinstance(layer, GrowingLayer)
            else (getattr(layer, "keys", None), getattr(layer, "values", None))
        )
        for tensor in held:
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def common_prefix_length(a: torch.Tensor, b: torch.Tensor) -> int:
    length = min(a.shape[0], b.shape[0])
    if length == 0:
        return 0
    differs = (a[:length] != b[:length]).nonzero()
    return int(differs[0, 0]) if differs.numel() else length


class PrefixCache:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[ImagesKey, int], _Entry] = OrderedDict()
        self._bytes = 0
        self._ids = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._max_bytes > 0

    def lookup(self, key: ImagesKey, tokens: torch.Tensor) -> tuple[DynamicCache, int] | None:
        """A private copy of the cache of the longest stored prefix of ``tokens``, cut to that prefix,
        leaving at least one token to compute (the model needs the last one's logits)."""
        if not self.enabled:
            return None
        with self._lock:
            best, best_length, best_slot = None, 0, None
            for slot, entry in self._entries.items():
                if slot[0] != key:
                    continue
                length = min(common_prefix_length(entry.tokens, tokens), tokens.shape[0] - 1)
                if length > best_length:
                    best, best_length, best_slot = entry, length, slot
            if best is None or best_length < MIN_REUSE_TOKENS:
                return None
            self._entries.move_to_end(best_slot)  # type: ignore[arg-type]
        reused = copy.deepcopy(best.cache)  # stored caches are never modified: generation gets its own
        extra = reused.get_seq_length() - best_length
        if extra:
            reused.crop(-extra)
        return reused, best_length

    def store(self, key: ImagesKey, tokens: torch.Tensor, cache: DynamicCache) -> None:
        if not self.enabled:
            return
        nbytes = cache_nbytes(cache)
        if nbytes > self._max_bytes:
            return
        with self._lock:
            # A stored prefix of these tokens is superseded: the new entry covers all it could serve.
            for slot, entry in list(self._entries.items()):
                if slot[0] == key and common_prefix_length(entry.tokens, tokens) == entry.tokens.shape[0]:
                    self._drop(slot)
            self._ids += 1
            self._entries[(key, self._ids)] = _Entry(tokens.clone(), cache, nbytes)
            self._bytes += nbytes
            while self._bytes > self._max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, slot: tuple[ImagesKey, int]) -> None:
        self._bytes -= self._entries.pop(slot).nbytes

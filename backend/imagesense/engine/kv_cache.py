"""A KV cache that appends in place.

transformers' ``DynamicLayer`` concatenates each new token's keys and values onto the cache: every
token copies the whole cache of every layer (at 2B shapes and ~220 tokens, 114 copies and ~15 ms a
token, growing with the context). ``GrowingLayer`` keeps them in buffers with room to spare and
writes the new token into them; ``keys`` / ``values`` are views of the filled part, so everything that
reads a ``DynamicLayer`` (crop, deepcopy, the prefix cache) works unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

_ROOM = 256  # tokens of room added whenever a buffer grows (and at least half its size again)


class GrowingLayer(DynamicLayer):
    _key_room: torch.Tensor | None = None
    _value_room: torch.Tensor | None = None

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        *args: Any,  # noqa: ARG002 - DynamicLayer's signature
        **kwargs: Any,  # noqa: ARG002
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        key_room, value_room, length = self.room_for(key_states.shape[-2], key_states, value_states)
        end = length + key_states.shape[-2]
        key_room[..., length:end, :].copy_(key_states)
        value_room[..., length:end, :].copy_(value_states)
        return self.filled_to(end)

    def room_for(
        self, count: int, key_like: torch.Tensor, value_like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The buffers, with room for ``count`` more tokens after the cached ones, and how many are cached
        (where the new ones go); ``filled_to`` then marks them cached. ``*_like``: shaped as the cache's."""
        length = self.get_seq_length()
        end = length + count
        if not self._holds_cache(length) or end > self._capacity():
            self._grow(key_like, value_like, length, end)
        key_room, value_room = self.held()
        return key_room, value_room, length

    def filled_to(self, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        key_room, value_room = self.held()
        self.keys = key_room[..., :end, :]
        self.values = value_room[..., :end, :]
        return self.keys, self.values

    def held(self) -> tuple[torch.Tensor, ...]:
        """The tensors this layer holds, room included (what it costs in memory)."""
        if self._key_room is None or self._value_room is None:
            return ()
        return (self._key_room, self._value_room)

    def _capacity(self) -> int:
        return 0 if self._key_room is None else self._key_room.shape[-2]

    def _holds_cache(self, length: int) -> bool:
        """Whether ``keys`` is still the start of the buffer (anything that replaced it, a batch selection
        say, made new tensors, which are then copied into a new buffer)."""
        rooms, filled = self.held(), (self.keys, self.values)
        if not rooms or length == 0:
            return bool(rooms)
        return all(
            view is not None and view.data_ptr() == room.data_ptr() and view.shape[:-2] == room.shape[:-2]
            for view, room in zip(filled, rooms, strict=True)
        )

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, length: int, end: int) -> None:
        capacity = max(end + _ROOM, self._capacity() * 3 // 2)
        rooms = []
        for old, new in ((self.keys, key_states), (self.values, value_states)):
            room = new.new_empty((*new.shape[:-2], capacity, new.shape[-1]))
            if length and old is not None:
                room[..., :length, :].copy_(old)
            rooms.append(room)
        self._key_room, self._value_room = rooms


def growing_cache(config: Any) -> DynamicCache:
    """A ``DynamicCache`` for ``config`` whose full-attention layers append in place."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]  # type: ignore[no-untyped-call]
    return cache

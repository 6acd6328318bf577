"""Stop sequences: the answer ends where one of them first appears, and never contains it.

The text streams on as it is generated, except for a tail that could be the start of a stop sequence:
that is held back until the next piece says whether it was one.
"""

from __future__ import annotations

from collections.abc import Sequence

from imagesense.engine.protocol import GenerationControl


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """The text up to the first stop sequence, and whether there was one."""
    found = [index for stop in stops if (index := text.find(stop)) >= 0]
    return (text[: min(found)], True) if found else (text, False)


class StopSequences:
    """A ``GenerationControl`` in front of the caller's: it ends the generation at a stop sequence."""

    def __init__(self, control: GenerationControl, stops: Sequence[str]) -> None:
        self._control = control
        self.sequences = [stop for stop in stops if stop]
        self._text = ""  # everything generated so far
        self._sent = 0  # how much of it the caller has
        self.found = False

    def should_stop(self) -> bool:
        return self.found or self._control.should_stop()

    def emit(self, text: str) -> None:
        if self.found:
            return
        self._text += text
        kept, self.found = cut_at_stop(self._text, self.sequences)
        ready = len(kept) if self.found else len(kept) - self._held_back(kept)
        if ready > self._sent:
            self._control.emit(kept[self._sent : ready])
            self._sent = ready

    def _held_back(self, text: str) -> int:
        """The length of the longest end of ``text`` that begins a stop sequence."""
        longest = 0
        for stop in self.sequences:
            for length in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[-length:]):
                    longest = length
                    break
        return longest

    def flush(self) -> None:
        """At the end: what was held back turned out not to be a stop sequence."""
        if not self.found and len(self._text) > self._sent:
            self._control.emit(self._text[self._sent :])
            self._sent = len(self._text)

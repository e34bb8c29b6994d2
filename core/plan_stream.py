"""Objects out of a language model's answer while it is still being written (pure).

A model asked for a JSON array of objects streams it a few characters at a
time, often after some prose or a code fence. `ObjectStream` is fed the
answer so far and returns each object of the array once it is complete, so a
product can start as soon as its plan is written rather than when the whole
answer is in. Whatever comes before the array's `[` (prose, a fence, an
object wrapping the array, as in `{"products": [...]}`) is skipped; a piece
that does not parse yet is waited for, not refused.
"""

from __future__ import annotations

import json
from typing import Any

_DECODER = json.JSONDecoder()


class ObjectStream:
    """The complete objects of the first JSON array in a growing text, each given once."""

    def __init__(self) -> None:
        self.text = ""
        self.found: list[Any] = []  # every object given so far, in order
        self._pos: int | None = None  # where to look for the next object; None: no `[` yet
        self.closed = False  # the array's `]` has been read

    def feed(self, text: str) -> list[Any]:
        """The answer so far (each call gives the whole text): the objects completed since."""
        grown, new_from = text.startswith(self.text), len(self.text)
        self.text = text
        if grown and self._pos is not None and not _closes(text[new_from:]):
            return []  # nothing can have been completed: no object or array closed since
        if self._pos is None:
            start = text.find("[")
            if start < 0:
                return []
            self._pos = start + 1
        new: list[Any] = []
        while not self.closed:
            pos = _skip(text, self._pos)
            if pos >= len(text):
                break
            if text[pos] == "]":
                self.closed = True
                break
            if text[pos] != "{":  # not an array of objects: `parse_plans` words the reason
                self.closed = True
                break
            try:
                value, end = _DECODER.raw_decode(text, pos)
            except ValueError:
                break  # not complete yet
            self._pos = end
            new.append(value)
        self.found += new
        return new


def _closes(text: str) -> bool:
    """Whether `text` holds a character that can end an object or the array."""
    return "}" in text or "]" in text


def _skip(text: str, pos: int) -> int:
    """The position of the next character that is not white space or a comma."""
    while pos < len(text) and (text[pos].isspace() or text[pos] == ","):
        pos += 1
    return pos

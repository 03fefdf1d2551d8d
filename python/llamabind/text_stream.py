"""Token bytes → text pieces: UTF-8 safe across token boundaries, with stop strings.

A token can end in the middle of a multi-byte character and a stop string can span several
tokens; ``TextStream`` holds back exactly as much as it must and no more.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class TextStream:
    """Decodes a stream of token pieces and cuts it at the first stop string.

    Args:
        stop: Strings that end the text; they are not emitted.
    """

    __slots__ = ("_decoder", "_stop", "_pending", "stopped", "matched_stop")

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._pending = ""
        self.stopped = False
        self.matched_stop: str | None = None

    def feed(self, piece: bytes) -> str:
        """Adds a token's bytes; returns the text that is now safe to emit (maybe "")."""
        text = self._decoder.decode(piece)
        if not self._stop or self.stopped:
            return "" if self.stopped else text
        pending = self._pending + text
        cut, matched = -1, None
        for stop in self._stop:
            at = pending.find(stop)
            if at != -1 and (cut == -1 or at < cut):
                cut, matched = at, stop
        if matched is not None:
            self._pending = ""
            self.stopped, self.matched_stop = True, matched
            return pending[:cut]
        held = self._held_suffix(pending)
        self._pending = pending[len(pending) - held :] if held else ""
        return pending[: len(pending) - held]

    def flush(self) -> str:
        """The text still held back at the end (a partial stop, an incomplete character)."""
        if self.stopped:
            return ""
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return rest

    def _held_suffix(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins some stop string."""
        best = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best

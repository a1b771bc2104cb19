"""Incremental detokenisation and stop-string handling for one generated sequence."""

from __future__ import annotations


class TextTracker:
    """Turns a growing list of token ids into text, finds stop strings, and yields safe-to-show deltas.

    A delta is withheld while the text ends in an incomplete UTF-8 sequence (byte-fallback tokens) or in a prefix
    of a stop string, so a client never sees text that is later cut.
    """

    def __init__(self, tokenizer, stop: list[str], *, skip_special_tokens: bool = False,
                 include_stop: bool = False):
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.skip_special = skip_special_tokens
        self.include_stop = include_stop  # vLLM's include_stop_str_in_output: the matched stop string stays
        self.ids: list[int] = []
        self._text = ""
        self._decoded = 0  # len(ids) when _text was last decoded
        self.emitted = 0
        self.stopped_at: int | None = None  # index in text where a stop string starts

    @property
    def text(self) -> str:
        # decoded lazily: without stop strings or streaming, a sequence is decoded once at the end
        if self._decoded != len(self.ids):
            self._text = self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special)
            self._decoded = len(self.ids)
        return self._text

    def add(self, token_id: int) -> None:
        self.ids.append(token_id)
        if self.stop and self.stopped_at is None:
            # only the tail can hold a new match
            window = max(len(s) for s in self.stop) + 16
            start = max(0, len(self.text) - window - 16)
            hits = [(i, len(s)) for s in self.stop if (i := self.text.find(s, start)) >= 0]
            if hits:
                at, length = min(hits)
                self.stopped_at = at + length if self.include_stop else at

    @property
    def final_text(self) -> str:
        return self.text if self.stopped_at is None else self.text[: self.stopped_at]

    def _safe_end(self) -> int:
        text = self.final_text
        end = len(text)
        if self.stopped_at is None:
            if text.endswith("\ufffd"):
                end = len(text.rstrip("\ufffd"))
            for s in self.stop:  # hold back a possible start of a stop string
                for k in range(min(len(s) - 1, end), 0, -1):
                    if text[:end].endswith(s[:k]):
                        end -= k
                        break
        return max(end, self.emitted)

    def delta(self, final: bool = False) -> str:
        end = len(self.final_text) if final else self._safe_end()
        piece = self.final_text[self.emitted : end]
        self.emitted = max(self.emitted, end)
        return piece

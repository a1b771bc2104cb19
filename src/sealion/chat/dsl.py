"""Gemma 4's value syntax ("the DSL"): how tool declarations, calls and responses write values.

Strings sit between `<|"|>` tokens, keys of tool-call arguments are bare, `None` is `null`, mappings are
written with their keys sorted case-insensitively (the way Jinja's `dictsort` orders them, which is what the
official chat template uses), sequences as `[a,b]`, and anything else as Python's `str()`.

`format_value` writes that syntax exactly as the official 2026-07-09 template does; `parse_value` and
`parse_arguments` read it back (leniently: bare words become strings, JSON-quoted strings are accepted).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

QUOTE = '<|"|>'


class DSLError(ValueError):
    """Text that is not a well-formed Gemma value; `pos` is the character offset of the problem."""

    def __init__(self, message: str, pos: int):
        super().__init__(f"{message} at char {pos}")
        self.pos = pos


# ----------------------------------------------------------------------------------------------- writing

def sort_items(mapping: Mapping) -> list[tuple[Any, Any]]:
    """Items ordered like Jinja's `dictsort`: by key, case-insensitively, ties in insertion order."""
    return sorted(mapping.items(), key=lambda kv: kv[0].lower() if isinstance(kv[0], str) else kv[0])


def is_sequence(value: Any) -> bool:
    """Jinja's `sequence` test (anything with len() and indexing) minus strings and mappings."""
    if isinstance(value, (str, Mapping)):
        return False
    try:
        len(value)
        value.__getitem__  # noqa: B018 - the test itself
    except (TypeError, AttributeError):
        return False
    return True


def format_value(value: Any, *, quote_keys: bool = True) -> str:
    """One value in Gemma syntax. `quote_keys=False` is the tool-call/tool-response flavour (bare keys)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return QUOTE + value + QUOTE
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, Mapping):
        parts = []
        for key, item in sort_items(value):
            shown = QUOTE + str(key) + QUOTE if quote_keys else str(key)
            parts.append(shown + ":" + format_value(item, quote_keys=quote_keys))
        return "{" + ",".join(parts) + "}"
    if is_sequence(value):
        return "[" + ",".join(format_value(item, quote_keys=quote_keys) for item in value) + "]"
    return str(value)


def format_arguments(arguments: Mapping | None) -> str:
    """A tool call's arguments as the model writes them: `{city:<|"|>Hanoi<|"|>,days:3}`."""
    if arguments is None:
        return "{}"
    if not isinstance(arguments, Mapping):
        raise TypeError(f"tool-call arguments must be a mapping, not {type(arguments).__name__}")
    return format_value(arguments, quote_keys=False)


# ----------------------------------------------------------------------------------------------- reading

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\Z")
_INT = re.compile(r"[-+]?\d+\Z")
_LITERALS = {"true": True, "false": False, "True": True, "False": False,
             "null": None, "none": None, "None": None, "nil": None}
_BARE_END = ",}]"


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def value(self, depth: int = 0) -> Any:
        if depth > 200:
            raise DSLError("nesting too deep", self.pos)
        self.skip_ws()
        if self.pos >= len(self.text):
            raise DSLError("expected a value, found the end", self.pos)
        if self.at(QUOTE):
            return self.quoted()
        ch = self.text[self.pos]
        if ch == "{":
            return self.mapping(depth)
        if ch == "[":
            return self.array(depth)
        if ch == '"':
            return self.json_string()
        return self.bare()

    def quoted(self) -> str:
        start = self.pos + len(QUOTE)
        end = self.text.find(QUOTE, start)
        if end < 0:
            raise DSLError('unterminated <|"|> string', self.pos)
        self.pos = end + len(QUOTE)
        return self.text[start:end]

    def json_string(self) -> str:
        try:
            value, end = json.JSONDecoder().raw_decode(self.text, self.pos)
        except json.JSONDecodeError as e:
            raise DSLError("bad quoted string", self.pos) from e
        self.pos = end
        return value

    def bare(self) -> Any:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _BARE_END and not self.at(QUOTE):
            if self.text[self.pos] in "{[":
                raise DSLError(f"unexpected {self.text[self.pos]!r}", self.pos)
            self.pos += 1
        word = self.text[start:self.pos].strip()
        if not word:
            raise DSLError("expected a value", start)
        if word in _LITERALS:
            return _LITERALS[word]
        if _INT.match(word):
            return int(word)
        if _NUMBER.match(word):
            return float(word)
        return word  # lenient: an unquoted word is a string

    def key(self) -> str:
        self.skip_ws()
        if self.at(QUOTE):
            return self.quoted()
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            return self.json_string()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] != ":":
            if self.text[self.pos] in "{}[],":
                raise DSLError(f"expected ':' after key, found {self.text[self.pos]!r}", self.pos)
            self.pos += 1
        if self.pos >= len(self.text):
            raise DSLError("expected ':' after key, found the end", start)
        key = self.text[start:self.pos].strip()
        if not key:
            raise DSLError("empty key", start)
        return key

    def mapping(self, depth: int) -> dict:
        self.pos += 1  # "{"
        out: dict[str, Any] = {}
        self.skip_ws()
        if self.at("}"):
            self.pos += 1
            return out
        while True:
            key = self.key()
            self.skip_ws()
            if not self.at(":"):
                raise DSLError("expected ':'", self.pos)
            self.pos += 1
            out[key] = self.value(depth + 1)
            self.skip_ws()
            if self.at(","):
                self.pos += 1
                continue
            if self.at("}"):
                self.pos += 1
                return out
            raise DSLError("expected ',' or '}'", self.pos)

    def array(self, depth: int) -> list:
        self.pos += 1  # "["
        out: list[Any] = []
        self.skip_ws()
        if self.at("]"):
            self.pos += 1
            return out
        while True:
            out.append(self.value(depth + 1))
            self.skip_ws()
            if self.at(","):
                self.pos += 1
                continue
            if self.at("]"):
                self.pos += 1
                return out
            raise DSLError("expected ',' or ']'", self.pos)


def parse_value(text: str) -> Any:
    """Read one whole Gemma value; raises DSLError on malformed text or trailing garbage."""
    reader = _Reader(text)
    value = reader.value()
    reader.skip_ws()
    if reader.pos != len(text):
        raise DSLError("unexpected text after the value", reader.pos)
    return value


def parse_arguments(text: str) -> dict:
    """Read a tool call's `{key:value,...}`; raises DSLError unless it is exactly one mapping."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        raise DSLError("arguments must start with '{'", 0)
    return parse_value(stripped)

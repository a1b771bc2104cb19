"""Reading Gemma 4 output: reasoning, content and tool calls, in one pass (batch) or as deltas arrive (stream).

Input is generated text decoded with special tokens kept. The model writes
    <|channel>thought\\n ... <channel|>                 reasoning (the `thought` label is dropped)
    <|tool_call>call:NAME{key:<|"|>str<|"|>,n:3}<tool_call|>   a tool call (arguments in Gemma syntax)
    ... <turn|> | <eos> | <|tool_response>            end of the message
Guarantees: no delimiter or thought text reaches `content`, also when a delimiter is split across deltas or the
text stops mid-thought (then content is empty and reasoning holds what came); malformed tool calls become
`errors` entries, never exceptions. `parse(text)` is exactly `StreamParser` fed the whole text at once.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .dsl import QUOTE, DSLError, parse_arguments

CHANNEL_OPEN, CHANNEL_CLOSE = "<|channel>", "<channel|>"
CALL_OPEN, CALL_CLOSE = "<|tool_call>", "<tool_call|>"
END_TOKENS = ("<turn|>", "<eos>", "<|tool_response>", "<|turn>", "<end_of_turn>", "<start_of_turn>")
# control tokens that carry no text of their own: dropped wherever they appear
DROPPED_TOKENS = (QUOTE, CHANNEL_CLOSE, CALL_CLOSE, "<tool_response|>", "<|think|>", "<bos>", "<pad>",
                  "<|tool>", "<tool|>", "<|image|>", "<|audio|>", "<|video|>", "<|image>", "<image|>",
                  "<|audio>", "<audio|>", "<mask>", "<unk>")
_ALL_TOKENS = (CHANNEL_OPEN, CALL_OPEN, *END_TOKENS, *DROPPED_TOKENS)
_LABEL = "thought\n"
_HEADER = "<|turn>model\n"
_CALL_HEAD = re.compile(r"\s*(?:call:)?\s*([\w\-\.]+)\s*", re.UNICODE)


@dataclass
class ParseError:
    """A tool call that could not be read; `raw` is the text between `<|tool_call>` and `<tool_call|>`."""

    message: str
    raw: str


@dataclass
class ChatEvent:
    """One streaming event: kind is "reasoning" or "content" (with `text`), "tool_call" (with `tool_call`,
    OpenAI shape) or "error" (with `error`)."""

    kind: str
    text: str = ""
    tool_call: dict[str, Any] | None = None
    error: ParseError | None = None


@dataclass
class Parsed:
    reasoning: str = ""
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)

    def message(self) -> dict[str, Any]:
        """The OpenAI assistant message (content None when there is only a tool call)."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content or (None if self.tool_calls else "")}
        if self.reasoning:
            out["reasoning_content"] = self.reasoning
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        return out


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def counting_ids(prefix: str = "call_") -> Callable[[], str]:
    """Deterministic ids (call_0, call_1, ...), for tests and reproducible transcripts."""
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter)}"


def parse_tool_call(raw: str, make_id: Callable[[], str] = new_call_id) -> dict[str, Any] | ParseError:
    """`call:NAME{...}` (the text inside the tool-call tokens) -> an OpenAI tool call, or a ParseError."""
    head = _CALL_HEAD.match(raw)
    if not head:
        return ParseError(f"tool call without a name: {raw[:60]!r}", raw)
    name = head.group(1)
    rest = raw[head.end():]
    if not rest.strip():
        arguments: dict[str, Any] = {}
    else:
        try:
            arguments = parse_arguments(rest)
        except DSLError as e:
            return ParseError(f"tool call {name}: bad arguments: {e}", raw)
    return {"id": make_id(), "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


def _token_prefix_at(text: str, start: int) -> bool:
    """Whether text[start:] is a proper prefix of some control token (so more text may complete it)."""
    tail = text[start:]
    return any(tok.startswith(tail) and tok != tail for tok in _ALL_TOKENS)


class StreamParser:
    """Incremental parser: `feed(delta)` returns the events the delta completes; `finish()` flushes.

    `prompt`: the rendered prompt; when it ends inside an open thought channel (thinking on, right after tool
    results) the output starts as reasoning. `in_reasoning=True` forces that.
    """

    def __init__(self, *, prompt: str | None = None, in_reasoning: bool | None = None,
                 make_id: Callable[[], str] = new_call_id):
        if in_reasoning is None:
            in_reasoning = bool(prompt) and prompt.endswith((CHANNEL_OPEN, CHANNEL_OPEN + "thought\n"))
        self._state = "reasoning" if in_reasoning else "content"
        self._label_check = True  # the start of the output (or of a channel) may carry a `thought\n` label
        self._at_start = True  # ... and the very start a `<|turn>model\n` header
        self._buf = ""
        self._make_id = make_id
        self._started = {"reasoning": False, "content": False}
        self._held_ws = {"reasoning": "", "content": ""}
        self._text = {"reasoning": [], "content": []}
        self._calls: list[dict[str, Any]] = []
        self._errors: list[ParseError] = []
        self._call_scan = (0, False)  # resume point and quote state while reading a tool call
        self.finished = False

    # ------------------------------------------------------------------------------------------ public
    def feed(self, delta: str) -> list[ChatEvent]:
        if self.finished:
            raise RuntimeError("StreamParser.feed() after finish()")
        self._buf += delta
        events: list[ChatEvent] = []
        self._run(events, final=False)
        return events

    def finish(self) -> list[ChatEvent]:
        if self.finished:
            return []
        events: list[ChatEvent] = []
        self._run(events, final=True)
        while self._state == "call":
            # the call never closed outside a string (an unbalanced <|"|>): fall back to the first raw delimiter
            ends = [(self._buf.find(t), t) for t in (CALL_CLOSE, *END_TOKENS) if t in self._buf]
            if not ends:
                self._close_call(self._buf, events, terminated=False)
                break
            at, token = min(ends)
            self._close_call(self._buf[:at], events, terminated=token == CALL_CLOSE)
            self._buf = self._buf[at + len(token):] if token == CALL_CLOSE else ""
            self._run(events, final=True)
        self._buf = ""
        self._state = "done"
        self.finished = True
        return events

    def result(self) -> Parsed:
        return Parsed(reasoning="".join(self._text["reasoning"]), content="".join(self._text["content"]),
                      tool_calls=list(self._calls), errors=list(self._errors))

    # ------------------------------------------------------------------------------------------ internals
    def _emit(self, kind: str, text: str, events: list[ChatEvent]) -> None:
        """Text for a field, trimmed at both ends of the field: leading whitespace dropped, trailing held."""
        if not text:
            return
        if not self._started[kind]:
            text = text.lstrip()
            if not text:
                return
            self._started[kind] = True
        core = text.rstrip()
        if not core:
            self._held_ws[kind] += text
            return
        out = self._held_ws[kind] + core
        self._held_ws[kind] = text[len(core):]
        self._text[kind].append(out)
        if events and events[-1].kind == kind:
            events[-1].text += out
        else:
            events.append(ChatEvent(kind, text=out))

    def _run(self, events: list[ChatEvent], final: bool) -> None:
        while self._buf and self._state != "done":
            if self._state == "call":
                if not self._scan_call(events):
                    return
                continue
            kind = self._state
            if self._label_check:
                labels = (_HEADER, _LABEL) if self._at_start else (_LABEL,)
                if any(label.startswith(self._buf) and self._buf != label for label in labels):
                    if not final:
                        return  # wait: this may be a label
                    if kind == "reasoning":  # cut off inside the label itself
                        self._buf = ""
                        return
                if self._at_start and self._buf.startswith(_HEADER):  # text that kept its turn header
                    self._buf = self._buf[len(_HEADER):]
                    self._at_start = False
                    continue
                self._at_start = False
                if self._buf.startswith(_LABEL):
                    self._buf = self._buf[len(_LABEL):]
                elif kind == "reasoning" and self._buf.startswith("thought" + CHANNEL_CLOSE):
                    self._buf = self._buf[len("thought"):]
                self._label_check = False
                continue
            lt = self._buf.find("<")
            if lt < 0:
                self._emit(kind, self._buf, events)
                self._buf = ""
                return
            if lt > 0:
                self._emit(kind, self._buf[:lt], events)
                self._buf = self._buf[lt:]
            token = next((t for t in _ALL_TOKENS if self._buf.startswith(t)), None)
            if token is None:
                if _token_prefix_at(self._buf, 0) and not final:
                    return  # maybe a delimiter split across deltas: wait for more
                self._emit(kind, "<", events)
                self._buf = self._buf[1:]
                continue
            self._buf = self._buf[len(token):]
            self._on_token(token, kind)

    def _on_token(self, token: str, kind: str) -> None:
        if token == CHANNEL_OPEN:
            self._state, self._label_check = "reasoning", True
        elif token == CHANNEL_CLOSE and kind == "reasoning":
            self._state = "content"
        elif token == CALL_OPEN:
            self._state, self._call_scan = "call", (0, False)
        elif token in END_TOKENS:
            self._state, self._buf = "done", ""
        # any other control token is dropped

    def _scan_call(self, events: list[ChatEvent]) -> bool:
        """Look for the end of the current tool call outside <|"|> strings; False when more text is needed."""
        pos, in_quote = self._call_scan
        buf = self._buf
        while pos < len(buf):
            if buf.startswith(QUOTE, pos):
                in_quote = not in_quote
                pos += len(QUOTE)
                continue
            if not in_quote and buf[pos] == "<":
                end = next((t for t in (CALL_CLOSE, *END_TOKENS) if buf.startswith(t, pos)), None)
                if end is not None:
                    self._close_call(buf[:pos], events, terminated=end == CALL_CLOSE)
                    self._buf = buf[pos + len(end):]
                    if end != CALL_CLOSE:
                        self._state, self._buf = "done", ""
                    return True
            if buf[pos] == "<" and any(t.startswith(buf[pos:]) for t in (QUOTE, CALL_CLOSE, *END_TOKENS)):
                break  # a token split across deltas: resume here
            pos += 1
        self._call_scan = (pos, in_quote)
        return False

    def _close_call(self, raw: str, events: list[ChatEvent], terminated: bool) -> None:
        parsed = parse_tool_call(raw, self._make_id)
        if isinstance(parsed, ParseError):
            if not terminated:
                parsed.message += " (the output ended before <tool_call|>)"
            self._errors.append(parsed)
            events.append(ChatEvent("error", error=parsed))
        else:
            self._calls.append(parsed)
            events.append(ChatEvent("tool_call", tool_call=parsed))
        self._state = "content"
        self._call_scan = (0, False)


def parse(text: str, *, prompt: str | None = None, in_reasoning: bool | None = None,
          make_id: Callable[[], str] = new_call_id) -> Parsed:
    """Parse a whole generated message (decoded with special tokens kept)."""
    parser = StreamParser(prompt=prompt, in_reasoning=in_reasoning, make_id=make_id)
    parser.feed(text)
    parser.finish()
    return parser.result()


def stream_events(deltas: Iterable[str], **kwargs: Any) -> Iterable[ChatEvent]:
    """Events for an iterable of text deltas (a convenience over StreamParser)."""
    parser = StreamParser(**kwargs)
    for delta in deltas:
        yield from parser.feed(delta)
    yield from parser.finish()

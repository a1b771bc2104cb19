"""The server's view of the chat layer (`sealion.chat`): render a request, parse an answer, parse a stream.

Output pieces are plain dicts, in order: {"reasoning": str}, {"content": str}, {"tool_call": {"name",
"arguments"}} (arguments a JSON string or a dict), which the app turns into OpenAI fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOOL_CALL_OPEN = "<|tool_call>call:"


class ChatInputError(ValueError):
    """A conversation the template cannot render (reported to the client as a 400)."""


@dataclass
class Parsed:
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _parse_module():
    import importlib

    # the module, not the `parse` function that sealion.chat re-exports under the same name
    return importlib.import_module("sealion.chat.parse")


class ChatCodec:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def render(self, messages: list[dict], *, tools: list[dict] | None, enable_thinking: bool) -> str:
        from jinja2 import TemplateError

        from sealion.chat.render import render_for
        from sealion.errors import SealionError

        try:
            return render_for(self.tokenizer, messages, tools=tools, enable_thinking=enable_thinking)
        except (SealionError, TemplateError, ValueError, TypeError, KeyError) as e:
            raise ChatInputError(str(e)) from None

    def forced_call_prefix(self, name: str | None) -> str:
        """Prompt text that makes the model write a tool call (and, with a name, that tool's arguments)."""
        return TOOL_CALL_OPEN + (f"{name}{{" if name else "")

    def parse(self, text: str, *, prompt: str | None = None) -> Parsed:
        """`text`: the generated text with control tokens kept; `prompt`: the rendered prompt (tells whether the
        answer starts inside an open thought channel)."""
        parsed = _parse_module().parse(text, prompt=prompt)
        return Parsed(content=parsed.content, reasoning=parsed.reasoning, tool_calls=list(parsed.tool_calls))

    def stream_parser(self, *, prompt: str | None = None) -> "StreamAdapter":
        return StreamAdapter(_parse_module().StreamParser(prompt=prompt))


class StreamAdapter:
    """Wraps `sealion.chat.parse.StreamParser` so the app sees the piece dicts described above."""

    def __init__(self, parser):
        self.parser = parser

    def feed(self, text: str) -> list[dict]:
        return _pieces(self.parser.feed(text)) if text else []

    def finish(self) -> list[dict]:
        return _pieces(self.parser.finish())


def _pieces(events) -> list[dict]:
    out: list[dict] = []
    for e in events:
        if e.kind in ("reasoning", "content") and e.text:
            out.append({e.kind: e.text})
        elif e.kind == "tool_call" and e.tool_call:
            out.append({"tool_call": e.tool_call})
        # "error" events (a malformed tool call) carry no text for the client; the raw call is dropped
    return out

"""The server's view of the chat layer (`sealion.chat`): render a request, parse an answer, parse a stream.

Output pieces are plain dicts, in order: {"reasoning": str}, {"content": str}, {"tool_call": {"name",
"arguments"}} (arguments a JSON string or a dict), which the app turns into OpenAI fields.
"""

from __future__ import annotations

import json
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


def _chat():
    import sealion.chat as chat  # imported late: the chat layer is optional at import time

    return chat


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

    def parse(self, text: str, *, tools: list[dict] | None = None) -> Parsed:
        parsed = _chat().parse(text)
        calls = [_call_dict(c) for c in (parsed.tool_calls or [])]
        return Parsed(content=parsed.content, reasoning=parsed.reasoning, tool_calls=calls)

    def stream_parser(self, *, tools: list[dict] | None = None) -> "StreamAdapter":
        return StreamAdapter(_chat().StreamParser())


class StreamAdapter:
    """Wraps `sealion.chat.StreamParser` so the app sees the piece dicts described above."""

    def __init__(self, parser):
        self.parser = parser

    def feed(self, text: str) -> list[dict]:
        if not text:
            return []
        return _pieces(self.parser.feed(text))

    def finish(self) -> list[dict]:
        close = getattr(self.parser, "finish", None) or getattr(self.parser, "close", None)
        return _pieces(close()) if close else []


def _call_dict(call: Any) -> dict:
    if isinstance(call, dict):
        fn = call.get("function", call)
        return {"id": call.get("id"), "name": fn.get("name"), "arguments": fn.get("arguments", {})}
    fn = getattr(call, "function", call)
    return {"id": getattr(call, "id", None), "name": getattr(fn, "name", None),
            "arguments": getattr(fn, "arguments", {})}


def _pieces(deltas: Any) -> list[dict]:
    out: list[dict] = []
    for d in deltas or []:
        get = d.get if isinstance(d, dict) else (lambda k, d=d: getattr(d, k, None))
        if get("reasoning"):
            out.append({"reasoning": get("reasoning")})
        if get("content"):
            out.append({"content": get("content")})
        for call in get("tool_calls") or ([get("tool_call")] if get("tool_call") else []):
            c = _call_dict(call)
            if not isinstance(c["arguments"], str):
                c["arguments"] = json.dumps(c["arguments"], ensure_ascii=False)
            out.append({"tool_call": c})
    return out

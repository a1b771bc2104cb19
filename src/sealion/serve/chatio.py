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
    """Rendering goes through `sealion.chat.render_prompt` (the one renderer every path uses)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def render_prompt(self, messages: list[dict], *, tools: list[dict] | None, enable_thinking: bool,
                      **kwargs: Any):
        """The request's prompt through the chat layer's one renderer: `.ids` to feed the model (control names
        typed in messages stay text), `.text` for the reply parser."""
        from jinja2 import TemplateError

        from sealion.chat.token_ids import render_prompt
        from sealion.errors import SealionError

        try:
            return render_prompt(self.tokenizer, messages, tools=tools, enable_thinking=enable_thinking, **kwargs)
        except (SealionError, TemplateError, ValueError, TypeError, KeyError) as e:
            raise ChatInputError(str(e)) from None

    def render(self, messages: list[dict], *, tools: list[dict] | None, enable_thinking: bool, **kwargs: Any) -> str:
        """The prompt as text in this tokenizer's names (do not re-tokenize it: use `render_prompt().ids`)."""
        return self.render_prompt(messages, tools=tools, enable_thinking=enable_thinking, **kwargs).text

    @property
    def stop_ids(self) -> list[int]:
        """Ids that end a chat reply besides EOS (the turn end 106; 50 after a tool call) on Gemma vocabularies."""
        from sealion.chat.token_ids import chat_stop_ids

        return chat_stop_ids(self.tokenizer)

    def forced_call_prefix(self, name: str | None) -> str:
        """Prompt text that makes the model write a tool call (and, with a name, that tool's arguments), in this
        tokenizer's control names so that encoding it gives the tool-call id."""
        from sealion.chat.token_ids import control_aliases, to_tokenizer_names

        opener = to_tokenizer_names(TOOL_CALL_OPEN, control_aliases(self.tokenizer))
        return opener + (f"{name}{{" if name else "")

    def _gemma4_names(self, text: str | None) -> str | None:
        # the parser reads Gemma 4 names; a Gemma 3 vocabulary (the demo's) writes its own at the same ids
        from sealion.chat.token_ids import control_aliases, to_gemma4_names

        return to_gemma4_names(text, control_aliases(self.tokenizer)) if text else text

    def parse(self, text: str, *, prompt: str | None = None) -> Parsed:
        """`text`: the generated text with control tokens kept; `prompt`: the rendered prompt (tells whether the
        answer starts inside an open thought channel)."""
        parsed = _parse_module().parse(self._gemma4_names(text), prompt=self._gemma4_names(prompt))
        return Parsed(content=parsed.content, reasoning=parsed.reasoning, tool_calls=list(parsed.tool_calls))

    def stream_parser(self, *, prompt: str | None = None) -> "StreamAdapter":
        return StreamAdapter(_parse_module().StreamParser(prompt=self._gemma4_names(prompt)), self._gemma4_names)


class StreamAdapter:
    """Wraps `sealion.chat.parse.StreamParser` so the app sees the piece dicts described above."""

    def __init__(self, parser, names=lambda text: text):
        self.parser = parser
        self.names = names  # this tokenizer's control names -> Gemma 4's (a special token arrives in one delta)

    def feed(self, text: str) -> list[dict]:
        return _pieces(self.parser.feed(self.names(text))) if text else []

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

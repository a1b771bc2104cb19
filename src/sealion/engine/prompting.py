"""Turning a ChatRequest into prompt ids for a local tokenizer, and generated text back into a message.

Rendering is `sealion.chat`'s one renderer (`chat.render_prompt`): the checkpoint's template when it has one, else
the package's Gemma 4 renderer, with Gemma 4 control names mapped to this tokenizer's ids (the demo model's Gemma 3
tokenizer names id 105 `<start_of_turn>`) and text typed in messages kept as text. This module keeps the engine's
names for it; generated text is mapped back to Gemma 4 names before parsing.
"""

from __future__ import annotations

from typing import Any

from ..chat.token_ids import (TOOL_RESPONSE_ID, TURN_END_ID, Prompt, chat_stop_ids, control_aliases,
                              has_gemma4_ids, render_prompt, to_gemma4_names, to_tokenizer_names)

__all__ = ["TOOL_RESPONSE_ID", "TURN_END_ID", "Prompt", "chat_prompt", "chat_stop_ids", "has_gemma4_ids",
           "parse_reply", "render_chat", "to_gemma4_names", "to_tokenizer_names", "token_aliases"]


def token_aliases(tokenizer) -> dict[str, str]:
    """Gemma 4 name -> this tokenizer's name, for control-token ids whose names differ."""
    return control_aliases(tokenizer)


def chat_prompt(tokenizer, messages: list[dict[str, Any]], *, tools=None, enable_thinking: bool = False,
                **kwargs: Any) -> Prompt:
    """The chat prompt as ids (what the model is fed) and text (what the reply parser is told)."""
    return render_prompt(tokenizer, messages, tools=tools, enable_thinking=enable_thinking, **kwargs)


def render_chat(tokenizer, messages: list[dict[str, Any]], *, tools=None, enable_thinking: bool = False) -> str:
    """The chat prompt as text in this tokenizer's names (display and logging; feed the model `chat_prompt().ids`,
    since re-tokenizing the text would turn control names typed in messages into control tokens)."""
    return chat_prompt(tokenizer, messages, tools=tools, enable_thinking=enable_thinking).text


def parse_reply(tokenizer, text: str, prompt: str | None = None) -> dict[str, Any]:
    """Generated text -> {content, reasoning, tool_calls} via the chat layer's parser. The prompt tells the parser
    whether generation started inside a thought (a prompt ending in an open `<|channel>thought`)."""
    from .. import chat

    aliases = token_aliases(tokenizer)
    parsed = chat.parse(to_gemma4_names(text, aliases),
                        prompt=to_gemma4_names(prompt, aliases) if prompt is not None else None)
    return {
        "content": parsed.content,
        "reasoning": parsed.reasoning,
        "tool_calls": parsed.tool_calls or None,
    }

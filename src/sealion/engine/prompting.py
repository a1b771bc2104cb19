"""Turning a ChatRequest into prompt text for a local tokenizer, and generated text back into a message.

Rendering goes through `sealion.chat` (the checkpoint's template when it has one, else the package's Gemma 4
renderer). A tokenizer that carries the Gemma 3 names for Gemma 4's control-token ids (`<start_of_turn>` at 105,
…) — the demo model's — gets the same ids: the Gemma 4 names in the rendered text are mapped to this tokenizer's
names, and back again before parsing, so the model sees exactly the token ids a Gemma 4 tokenizer would produce.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..models.tokenizers import GEMMA4_SPECIAL_TOKENS

TURN_END_ID = 106
TOOL_RESPONSE_ID = 50


def token_aliases(tokenizer) -> dict[str, str]:
    """Gemma 4 name -> this tokenizer's name, for control-token ids whose names differ."""
    return _aliases_cached(id(tokenizer), tokenizer)


@lru_cache(maxsize=16)
def _aliases_cached(_key: int, tokenizer) -> dict[str, str]:
    aliases = {}
    if len(tokenizer) < max(GEMMA4_SPECIAL_TOKENS):
        return aliases
    names = tokenizer.convert_ids_to_tokens(list(GEMMA4_SPECIAL_TOKENS))
    for (tid, g4name), own in zip(GEMMA4_SPECIAL_TOKENS.items(), names):
        if own and own != g4name:
            aliases[g4name] = own
    return aliases


def to_tokenizer_names(text: str, aliases: dict[str, str]) -> str:
    for g4, own in aliases.items():
        text = text.replace(g4, own)
    return text


def to_gemma4_names(text: str, aliases: dict[str, str]) -> str:
    for g4, own in aliases.items():
        text = text.replace(own, g4)
    return text


def has_gemma4_ids(tokenizer) -> bool:
    """Whether ids 105/106 are turn tokens (Gemma 3 or 4 vocabularies)."""
    try:
        return tokenizer.convert_ids_to_tokens(TURN_END_ID) in ("<turn|>", "<end_of_turn>")
    except Exception:
        return False


def render_chat(tokenizer, messages: list[dict[str, Any]], *, tools=None, enable_thinking: bool = False) -> str:
    """A checkpoint's Gemma 4 template wins; any Gemma vocabulary without one gets the package's Gemma 4 renderer
    (names mapped to this tokenizer's); a non-Gemma model uses its own template."""
    from .. import chat

    template = getattr(tokenizer, "chat_template", None)
    bos = tokenizer.bos_token or ""
    if template and not chat.is_gemma4_template(template) and not has_gemma4_ids(tokenizer):
        return chat.render(messages, tools=tools, enable_thinking=enable_thinking, template=template, bos_token=bos)
    text = chat.render_for(tokenizer, messages, tools=tools, enable_thinking=enable_thinking, bos_token=bos)
    return to_tokenizer_names(text, token_aliases(tokenizer))


def chat_stop_ids(tokenizer) -> list[int]:
    return [TURN_END_ID, TOOL_RESPONSE_ID] if has_gemma4_ids(tokenizer) else []


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

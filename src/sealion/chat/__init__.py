"""Gemma 4 conversations: messages, rendering, output parsing (batch and streaming), tools and the agent loop.

    import sealion.chat as chat
    prompt = chat.render([{"role": "user", "content": "Hi"}], enable_thinking=True)
    parsed = chat.parse(completion_text)          # -> Parsed(reasoning, content, tool_calls, errors)
"""

from .dsl import format_arguments, parse_arguments
from .messages import ChatFormatError, has_media, normalize
from .render import GEMMA4_TEMPLATE_PATH, gemma4_template, is_gemma4_template, render, render_for, render_template
from .schema import ToolSchemaError, tool_schema

__all__ = [
    "GEMMA4_TEMPLATE_PATH", "ChatFormatError", "ToolSchemaError",
    "format_arguments", "gemma4_template", "has_media", "is_gemma4_template", "normalize", "parse_arguments",
    "render", "render_for", "render_template", "tool_schema",
]

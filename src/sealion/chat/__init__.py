"""Gemma 4 conversations: messages, rendering, output parsing (batch and streaming), tools and the agent loop.

    import sealion.chat as chat
    prompt = chat.render([{"role": "user", "content": "Hi"}], enable_thinking=True)
    parsed = chat.parse(completion_text)          # -> Parsed(reasoning, content, tool_calls, errors)
    result = chat.run_with_tools(engine, messages, [get_weather])
"""

from .dsl import DSLError, format_arguments, parse_arguments
from .messages import ChatFormatError, has_media, normalize
from .parse import ChatEvent, ParseError, Parsed, StreamParser, counting_ids, parse, parse_tool_call
from .render import GEMMA4_TEMPLATE_PATH, gemma4_template, is_gemma4_template, render, render_for, render_template
from .schema import ToolSchemaError, function_schema, tool_schema
from .tools import Tool, ToolCallRecord, ToolRunResult, as_tools, call_tool, run_with_tools

__all__ = [
    "GEMMA4_TEMPLATE_PATH", "ChatEvent", "ChatFormatError", "DSLError", "ParseError", "Parsed", "StreamParser",
    "Tool", "ToolCallRecord", "ToolRunResult", "ToolSchemaError",
    "as_tools", "call_tool", "counting_ids", "format_arguments", "function_schema", "gemma4_template", "has_media",
    "is_gemma4_template", "normalize", "parse", "parse_arguments", "parse_tool_call", "render", "render_for",
    "render_template", "run_with_tools", "tool_schema",
]

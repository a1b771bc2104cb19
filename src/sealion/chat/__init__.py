"""Gemma 4 conversations: messages, rendering, output parsing (batch and streaming), tools and the agent loop.

    import sealion.chat as chat
    prompt = chat.render([{"role": "user", "content": "Hi"}], enable_thinking=True)
    parsed = chat.parse(completion_text)          # -> Parsed(reasoning, content, tool_calls, errors)
    result = chat.run_with_tools(engine, messages, [get_weather])
    ids = chat.render_ids(tokenizer, messages)    # what every path feeds the model (engine, server, training data)
"""

from .dsl import DSLError, format_arguments, parse_arguments
from .messages import ChatFormatError, has_media, normalize
from .parse import ChatEvent, ParseError, Parsed, StreamParser, counting_ids, parse, parse_tool_call
from .render import GEMMA4_TEMPLATE_PATH, gemma4_template, is_gemma4_template, render, render_for, render_template
from .schema import ToolSchemaError, function_schema, tool_schema
from .tools import Tool, ToolCallRecord, ToolRunResult, as_tools, call_tool, run_with_tools
from .token_ids import (Prompt, TrainingIds, chat_stop_ids, control_aliases, has_gemma4_ids, render_ids,
                        render_prompt, render_text, render_training, to_gemma4_names, to_tokenizer_names,
                        turn_end_id)

__all__ = [
    "GEMMA4_TEMPLATE_PATH", "ChatEvent", "ChatFormatError", "DSLError", "ParseError", "Parsed", "Prompt",
    "StreamParser", "Tool", "ToolCallRecord", "ToolRunResult", "ToolSchemaError", "TrainingIds",
    "as_tools", "call_tool", "chat_stop_ids", "control_aliases", "counting_ids", "format_arguments",
    "function_schema", "gemma4_template", "has_gemma4_ids", "has_media",
    "is_gemma4_template", "normalize", "parse", "parse_arguments", "parse_tool_call", "render", "render_for",
    "render_ids", "render_prompt", "render_template", "render_text", "render_training", "run_with_tools",
    "to_gemma4_names", "to_tokenizer_names", "tool_schema", "turn_end_id",
]

"""Tools: Python functions the model may call, and the loop that runs a conversation with them.

    def get_weather(city: str) -> dict:
        '''Current weather. Args: city: City name.'''
        return {"temp_c": 31}

    result = run_with_tools(engine, [{"role": "user", "content": "Weather in Hanoi?"}], [get_weather])
    print(result.content)

Each step sends the conversation to `engine.chat`, runs the tool calls the model makes, and gives it the results:
text results as OpenAI tool messages, structured ones (dicts, lists, numbers, dataclasses) also as Gemma-native
`tool_responses` so the model sees `response:get_weather{temp_c:31}`. A tool that raises (or an unknown tool or
bad arguments) returns `{"error": "..."}` to the model instead of stopping the loop.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .messages import normalize
from .parse import Parsed, parse
from .render import render
from .schema import ToolSchemaError, tool_schema


@dataclass
class Tool:
    """A callable with its OpenAI schema."""

    function: Callable[..., Any]
    schema: dict[str, Any]

    @property
    def name(self) -> str:
        return self.schema["function"]["name"]

    @classmethod
    def of(cls, fn: Callable[..., Any], schema: Mapping[str, Any] | None = None) -> "Tool":
        return cls(fn, tool_schema(schema) if schema is not None else tool_schema(fn))


def as_tools(tools: Sequence[Any] | Mapping[str, Callable] | None) -> dict[str, Tool]:
    """Tools by name, from functions, `Tool`s, (schema, function) pairs or a {name: function} mapping."""
    out: dict[str, Tool] = {}
    if not tools:
        return out
    items = [Tool(fn, _renamed(tool_schema(fn), name)) for name, fn in tools.items()] \
        if isinstance(tools, Mapping) else [_as_tool(t) for t in tools]
    for tool in items:
        if tool.name in out:
            raise ToolSchemaError(f"two tools are named {tool.name!r}")
        out[tool.name] = tool
    return out


def _renamed(schema: dict, name: str) -> dict:
    schema["function"]["name"] = name
    return schema


def _as_tool(item: Any) -> Tool:
    if isinstance(item, Tool):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        schema, fn = item if isinstance(item[0], Mapping) else item[::-1]
        return Tool.of(fn, schema)
    if callable(item):
        return Tool.of(item)
    raise ToolSchemaError(f"a tool must be a function, a Tool or a (schema, function) pair, not {type(item).__name__}")


# ------------------------------------------------------------------------------------------ running calls

@dataclass
class ToolCallRecord:
    id: str
    name: str
    arguments: dict[str, Any]
    result: Any = None
    error: str | None = None


def _plain(value: Any) -> Any:
    """A tool result as JSON-able data (dataclasses and pydantic models become dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return value.model_dump()
    if isinstance(value, tuple):
        return list(value)
    return value


def call_tool(tools: Mapping[str, Tool], call: Mapping[str, Any]) -> ToolCallRecord:
    """Run one OpenAI-shaped tool call; failures become an `error` the model can read."""
    function = call.get("function") or {}
    name = function.get("name", "")
    record = ToolCallRecord(id=call.get("id") or "", name=name, arguments={})
    raw = function.get("arguments")
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
        if not isinstance(arguments, dict):
            raise ValueError("arguments are not an object")
    except (ValueError, TypeError) as e:
        record.error = f"bad arguments for {name}: {e}"
        return record
    record.arguments = arguments
    tool = tools.get(name)
    if tool is None:
        record.error = f"unknown tool {name!r}; available: {', '.join(sorted(tools)) or 'none'}"
        return record
    try:
        inspect.signature(tool.function).bind(**arguments)
    except TypeError as e:
        record.error = f"bad arguments for {name}: {e}"
        return record
    try:
        record.result = _plain(tool.function(**arguments))
    except Exception as e:  # noqa: BLE001 - the model gets to see and handle any tool failure
        record.error = f"{type(e).__name__}: {e}"
    return record


def _tool_message_text(record: ToolCallRecord) -> str:
    if record.error is not None:
        return json.dumps({"error": record.error}, ensure_ascii=False)
    if isinstance(record.result, str):
        return record.result
    return json.dumps(record.result, ensure_ascii=False, default=str)


def result_messages(assistant: dict[str, Any], records: list[ToolCallRecord]) -> list[dict[str, Any]]:
    """The assistant message (with native `tool_responses` when any result is structured) and tool messages."""
    structured = any(r.error is not None or not isinstance(r.result, str) for r in records)
    if structured:
        assistant["tool_responses"] = [
            {"name": r.name, "response": {"error": r.error} if r.error is not None else r.result} for r in records
        ]
    tool_messages = [{"role": "tool", "tool_call_id": r.id, "name": r.name, "content": _tool_message_text(r)}
                     for r in records]
    return [assistant, *tool_messages]


# ------------------------------------------------------------------------------------------ the loop

@dataclass
class ToolRunResult:
    messages: list[dict[str, Any]]  # the whole conversation, including the final answer
    content: str  # the final answer ("" when the loop stopped early)
    reasoning: str
    stopped: str  # "answer", "max_steps" or "error"
    steps: int
    calls: list[ToolCallRecord] = field(default_factory=list)
    completions: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _reply(engine: Any, completion: Any, in_reasoning: bool) -> Parsed:
    """The parsed message of a completion, reading the raw text when the engine kept special tokens."""
    if completion.token_ids is not None:  # in-process backend: `text` keeps the control tokens
        text = completion.text
        tokenizer = getattr(engine, "tokenizer", None)
        if tokenizer is not None:
            try:
                from sealion.engine.prompting import to_gemma4_names, token_aliases

                text = to_gemma4_names(text, token_aliases(tokenizer))
            except ImportError:
                pass
        return parse(text, in_reasoning=in_reasoning)
    if completion.content is not None or completion.tool_calls:
        return Parsed(reasoning=completion.reasoning or "", content=completion.content or "",
                      tool_calls=list(completion.tool_calls or []))
    return parse(completion.text, in_reasoning=in_reasoning)


def run_with_tools(
    engine: Any,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Any] | Mapping[str, Callable],
    *,
    max_steps: int = 8,
    enable_thinking: bool = False,
    params: Any = None,
    on_event: Callable[[str, Any], None] | None = None,
) -> ToolRunResult:
    """Chat with tools until the model answers without calling one, or `max_steps` model calls were made.

    `on_event(kind, payload)` is told about each "assistant" message, "tool_call" record and "answer".
    """
    from sealion.engine.types import ChatRequest, SamplingParams

    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    registry = as_tools(tools)
    schemas = [t.schema for t in registry.values()]
    history = normalize(list(messages))
    result = ToolRunResult(messages=history, content="", reasoning="", stopped="max_steps", steps=0)
    for _step in range(max_steps):
        prompt = render(history, tools=schemas, enable_thinking=enable_thinking)
        request = ChatRequest(messages=[dict(m) for m in history], params=params or SamplingParams(),
                              tools=schemas, enable_thinking=enable_thinking)
        completion = engine.chat([request])[0]
        result.completions.append(completion)
        result.steps += 1
        if completion.finish_reason == "error":
            result.stopped = "error"
            result.errors.append(completion.error or "engine error")
            break
        reply = _reply(engine, completion, in_reasoning=prompt.endswith("<|channel>thought\n"))
        result.errors.extend(e.message for e in reply.errors)
        assistant = reply.message()
        if not reply.tool_calls:
            history.append(assistant)
            result.content, result.reasoning, result.stopped = reply.content, reply.reasoning, "answer"
            if on_event:
                on_event("answer", assistant)
            break
        if on_event:
            on_event("assistant", assistant)
        records = [call_tool(registry, call) for call in reply.tool_calls]
        for record in records:
            if on_event:
                on_event("tool_call", record)
        result.calls.extend(records)
        history.extend(result_messages(assistant, records))
        history[:] = normalize(history)  # content + calls in one message are split, the way the model wrote them
    result.messages = history
    return result

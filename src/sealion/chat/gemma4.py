"""The package's own Gemma 4 prompt renderer, in Python.

It produces byte-for-byte what Google's "Gemma 4 Canonical Chat Template" (published 2026-07-09, the one the
E2B-it checkpoint ships) produces under transformers' Jinja settings, including its quirks (kept on purpose,
because the model was trained on them):
- declarations write a parameters block whose closing brace only appears when it has a `type`;
- only STRING enums are declared; anyOf/oneOf/$ref are dropped;
- an OBJECT property without `properties` lists its other keys as if they were properties;
- thoughts of assistant messages before the last user message are dropped, and `<|channel>...<channel|>`
  spans inside earlier assistant content are stripped;
- after tool results the model continues its own turn (no new `<|turn>model`), and with thinking on the prompt
  ends in an open thought channel.
Messages are expected in the shape `sealion.chat.messages.normalize` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .dsl import QUOTE, format_value, is_sequence, sort_items
from .messages import ChatFormatError

_MISSING = object()  # a key Jinja would see as undefined


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping) and key in obj:
        return obj[key]
    return _MISSING


def _text(value: Any) -> str:
    """What `{{ value }}` prints: undefined prints nothing, anything else its str()."""
    return "" if value is _MISSING else str(value)


def _upper(value: Any) -> str:
    return _text(value).upper()


def _truthy(value: Any) -> bool:
    return value is not _MISSING and bool(value)


def _quoted(text: Any) -> str:
    return QUOTE + _text(text) + QUOTE


def _required_list(names: Any) -> str:
    return "required:[" + ",".join(_quoted(n) for n in names) + "]"


class _Fields:
    """Comma-joined `key:value` fields of one declaration object."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def joined(self) -> str:
        return ",".join(self.parts)


def _array_items(items: Mapping) -> str:
    fields = []
    for key, value in sort_items(items):
        if value is None:
            continue
        if key == "properties":
            inner = _properties(value) if isinstance(value, Mapping) else ""
            fields.append("properties:{" + inner + "}")
        elif key == "required":
            fields.append(_required_list(value))
        elif key == "type":
            if isinstance(value, str):
                fields.append("type:" + format_value(value.upper()))
            else:
                fields.append("type:" + format_value([_upper(v) for v in value]))
        else:
            fields.append(f"{key}:" + format_value(value))
    return "items:{" + ",".join(fields) + "}"


_SCHEMA_KEYS = ("description", "type", "properties", "required", "nullable")


def _property(schema: Any) -> str:
    fields = _Fields()
    description = _get(schema, "description")
    if _truthy(description):
        fields.add("description:" + _quoted(description))
    kind = _upper(_get(schema, "type"))
    if kind == "STRING":
        enum = _get(schema, "enum")
        if _truthy(enum):
            fields.add("enum:" + format_value(enum))
    elif kind == "ARRAY":
        items = _get(schema, "items")
        if isinstance(items, Mapping) and items:
            fields.add(_array_items(items))
    if _truthy(_get(schema, "nullable")):
        fields.add("nullable:true")
    if kind == "OBJECT":
        nested = _get(schema, "properties")
        if isinstance(nested, Mapping):
            fields.add("properties:{" + _properties(nested) + "}")
        elif isinstance(schema, Mapping):
            # no usable `properties`: the template lists the object's other keys in their place
            fields.add("properties:{" + _properties(schema, skip_schema_keys=True) + "}")
        required = _get(schema, "required")
        if _truthy(required):
            fields.add(_required_list(required))
    fields.add("type:" + _quoted(kind))
    return "{" + fields.joined() + "}"


def _properties(properties: Mapping, *, skip_schema_keys: bool = False) -> str:
    out = []
    for name, schema in sort_items(properties):
        if skip_schema_keys and name in _SCHEMA_KEYS:
            continue
        out.append(f"{name}:" + _property(schema))
    return ",".join(out)


def declaration(tool: Mapping) -> str:
    """One tool's `declaration:NAME{...}` (an OpenAI tool: {"type": "function", "function": {...}})."""
    function = tool["function"]
    text = "declaration:" + _text(_get(function, "name")) + "{description:" + _quoted(_get(function, "description"))
    params = _get(function, "parameters")
    if _truthy(params):
        text += ",parameters:{"
        properties = _get(params, "properties")
        if _truthy(properties):
            text += "properties:{" + _properties(properties) + "},"
        required = _get(params, "required")
        if _truthy(required):
            text += _required_list(required) + ","
        kind = _get(params, "type")
        if _truthy(kind):
            text += "type:" + _quoted(_upper(kind)) + "}"
    if isinstance(function, Mapping) and "response" in function:
        response = function["response"]
        text += ",response:{"
        if _truthy(_get(response, "description")):
            text += "description:" + _quoted(_get(response, "description")) + ","
        if _upper(_get(response, "type")) == "OBJECT":
            text += "type:" + _quoted("OBJECT") + "}"
    return (text + "}").strip()


def strip_thoughts(text: str) -> str:
    """Drop every `<|channel>...<channel|>` span (and an unclosed trailing one), then trim."""
    kept = []
    for piece in text.split("<channel|>"):
        kept.append(piece.split("<|channel>")[0])
    return "".join(kept).strip()


def tool_response_block(name: Any, response: Any) -> str:
    if isinstance(response, Mapping):
        fields = ",".join(f"{k}:" + format_value(v, quote_keys=False) for k, v in sort_items(response))
        body = f"response:{name}{{{fields}}}"
    else:
        # an absent response is Jinja-undefined, which the template's sequence test writes as []
        value = "[]" if response is _MISSING else format_value(response, quote_keys=False)
        body = f"response:{name}{{value:" + value + "}"
    return "<|tool_response>" + body + "<tool_response|>"


_MEDIA_TOKEN = {"image": "<|image|>", "image_url": "<|image|>", "audio": "<|audio|>", "input_audio": "<|audio|>",
                "video": "<|video|>"}


def _media(parts: list) -> str:
    return "".join(_MEDIA_TOKEN.get(p.get("type"), "") for p in parts)


def _tool_results(message: Mapping, followers: list[Mapping]) -> str:
    """The results of `message`'s calls: OpenAI tool messages that follow it, matched by tool_call_id."""
    out = []
    for follow in followers:
        name = follow.get("name") or "unknown"
        for call in message["tool_calls"]:
            if call.get("id") == follow.get("tool_call_id"):  # last match wins, as in the template
                name = call["function"]["name"]
        body = follow.get("content")
        if isinstance(body, str):
            out.append(tool_response_block(name, body))
        elif isinstance(body, Mapping):
            raise ChatFormatError("a tool message's content must be a string or a list of parts, not an object")
        elif is_sequence(body):
            text = "".join(p.get("text", "") for p in body if p.get("type") == "text")
            out.append(tool_response_block(name, text) + _media(body))
        else:
            out.append(tool_response_block(name, body))
    return "".join(out)


def _content(content: Any, is_model: bool) -> str:
    clean = strip_thoughts if is_model else str.strip
    if isinstance(content, str):
        return clean(content)
    if isinstance(content, Mapping) or not is_sequence(content):
        return ""
    out = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            out.append(clean(_text(_get(part, "text"))))
        else:
            out.append(_MEDIA_TOKEN.get(kind, ""))
    return "".join(out)


def _system_text(content: Any) -> str:
    if isinstance(content, str):
        return content.strip()
    if is_sequence(content):
        return "".join(_text(_get(part, "text")).strip() + " " for part in content)
    return ""


def render_gemma4(
    messages: list[Mapping[str, Any]],
    *,
    tools: list[Mapping[str, Any]] | None = None,
    enable_thinking: bool = False,
    add_generation_prompt: bool = True,
    bos_token: str = "<bos>",
    preserve_thinking: bool = False,
) -> str:
    """Render normalised messages and OpenAI tool schemas into the Gemma 4 prompt string."""
    out = [bos_token]
    last_event: str | None = None  # what the prompt ended with: think, tool, tool_call, tool_response
    body = list(messages)
    has_system = bool(messages) and messages[0].get("role") in ("system", "developer")

    if enable_thinking or tools or has_system:
        out.append("<|turn>system\n")
        if enable_thinking:
            out.append("<|think|>\n")
            last_event = "think"
        if has_system:
            out.append(_system_text(messages[0].get("content")))
            body = body[1:]
        if tools:
            out.extend("<|tool>" + declaration(tool) + "<tool|>" for tool in tools)
            last_event = "tool"
        out.append("<turn|>\n")

    last_user = max((i for i, m in enumerate(body) if m.get("role") == "user"), default=-1)
    previous_role: str | None = None  # role of the previous non-tool message

    for i, message in enumerate(body):
        role = message.get("role")
        if role == "tool":
            continue  # rendered with the assistant message whose calls it answers
        last_event = None
        turn_role = "model" if role == "assistant" else role
        is_model = turn_role == "model"
        if not (is_model and previous_role == "assistant"):
            out.append(f"<|turn>{turn_role}\n")

        thought = message.get("reasoning") or message.get("reasoning_content")
        calls = message.get("tool_calls")
        if thought and (i > last_user or (preserve_thinking and calls)):
            out.append("<|channel>thought\n" + thought + "\n<channel|>")

        if calls:
            for call in calls:
                function = call["function"]
                arguments = function.get("arguments", _MISSING)
                if arguments is None:
                    rendered = ""
                elif isinstance(arguments, Mapping):
                    rendered = format_value(arguments, quote_keys=False)[1:-1]
                else:
                    raise ChatFormatError("tool_calls[].function.arguments must be an object; "
                                          "normalize() the messages first")
                out.append("<|tool_call>call:" + function["name"] + "{" + rendered + "}<tool_call|>")
            last_event = "tool_call"

        answered = False
        responses = message.get("tool_responses")
        if responses:
            for response in responses:
                name = response.get("name") or "unknown"
                out.append(tool_response_block(name, response.get("response", _MISSING)))
            answered, last_event = True, "tool_response"
        elif calls:
            followers = []
            for later in body[i + 1:]:
                if later.get("role") != "tool":
                    break
                followers.append(later)
            if followers:
                out.append(_tool_results(message, followers))
                answered, last_event = True, "tool_response"

        content = _content(message.get("content"), is_model)
        out.append(content)

        next_role = next((m.get("role") for m in body[i + 1:] if m.get("role") != "tool"), None)
        if last_event == "tool_call" and not answered:
            out.append("<|tool_response>")  # the model's own stop token after a call it made
        elif is_model and next_role == "assistant" and (not calls or answered):
            pass  # the next assistant message continues this model turn
        elif not (answered and not content.strip() and next_role is None):
            out.append("<turn|>\n")
        previous_role = role

    if add_generation_prompt:
        if last_event not in ("tool_response", "tool_call"):
            out.append("<|turn>model\n")
        elif last_event == "tool_response" and enable_thinking:
            out.append("<|channel>thought\n")
    return "".join(out)

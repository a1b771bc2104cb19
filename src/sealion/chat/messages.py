"""OpenAI-shaped chat messages: validation and the normalisation Gemma 4's template needs.

A message is a dict with `role` in system/developer/user/assistant/tool. `content` is a string, None, or a list
of parts: `{"type": "text", "text"}`, `{"type": "image" | "image_url" | "audio" | "input_audio" | "video", ...}`.
Assistant messages may carry `tool_calls` (OpenAI shape; `arguments` a JSON string or a dict), `reasoning_content`
(or `reasoning` / `thinking`) and Gemma-native `tool_responses`. Tool messages carry `tool_call_id`.

`normalize()` returns new dicts (the input is never modified):
- JSON-string `arguments` become dicts (the 07-09 template raises on strings, older ones render them wrongly);
- an assistant message with both content and tool calls is split into content first, then the calls, which is
  how the model writes them (kept together, the template closes the turn in the wrong place);
- `thinking` is copied to `reasoning_content` so every client's history shape replays;
- roles are checked in order: a tool message must follow an assistant message with tool calls.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from sealion.errors import SealionError

ROLES = ("system", "developer", "user", "assistant", "tool")
TEXT_PART = "text"
MEDIA_PARTS = {"image": "image", "image_url": "image", "audio": "audio", "input_audio": "audio", "video": "video"}


class ChatFormatError(SealionError):
    """A conversation that cannot be rendered; the message names the message index and the field."""


def _where(index: int, field: str) -> str:
    return f"messages[{index}].{field}"


def _check_parts(index: int, parts: list, field: str = "content") -> None:
    for j, part in enumerate(parts):
        where = _where(index, f"{field}[{j}]")
        if not isinstance(part, Mapping):
            raise ChatFormatError(f"{where}: a content part must be an object with a 'type', got {type(part).__name__}")
        kind = part.get("type")
        if kind == TEXT_PART:
            if not isinstance(part.get("text"), str):
                raise ChatFormatError(f"{where}.text: a text part needs a string 'text'")
        elif kind not in MEDIA_PARTS:
            allowed = ", ".join([TEXT_PART, *MEDIA_PARTS])
            raise ChatFormatError(f"{where}.type: unknown part type {kind!r} (allowed: {allowed})")


def _check_content(index: int, message: Mapping) -> None:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return
    if isinstance(content, list):
        _check_parts(index, content)
        return
    if message.get("role") == "tool" and isinstance(content, Mapping):
        raise ChatFormatError(
            f"{_where(index, 'content')}: a tool result must be a string or a list of parts, not an object; "
            "json.dumps() it, or pass structured results as assistant 'tool_responses' "
            "([{'name': ..., 'response': {...}}])"
        )
    raise ChatFormatError(f"{_where(index, 'content')}: must be a string, a list of parts or null, "
                          f"not {type(content).__name__}")


def _normalize_call(index: int, k: int, call: Any) -> dict:
    where = _where(index, f"tool_calls[{k}]")
    if not isinstance(call, Mapping):
        raise ChatFormatError(f"{where}: a tool call must be an object")
    call = dict(call)
    function = call.get("function")
    if function is None and "name" in call:  # flat shape {"name", "arguments"}
        function = {"name": call.pop("name"), "arguments": call.pop("arguments", None)}
    if not isinstance(function, Mapping):
        raise ChatFormatError(f"{where}.function: missing (expected {{'name': ..., 'arguments': ...}})")
    function = dict(function)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ChatFormatError(f"{where}.function.name: must be a non-empty string")
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        text = arguments.strip()
        try:
            arguments = json.loads(text) if text else {}
        except json.JSONDecodeError as e:
            raise ChatFormatError(f"{where}.function.arguments: not valid JSON ({e.msg} at char {e.pos})") from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise ChatFormatError(f"{where}.function.arguments: must be a JSON object, got {type(arguments).__name__}")
    function["arguments"] = dict(arguments)
    call["function"] = function
    call.setdefault("type", "function")
    return call


def _content_is_empty(content: Any) -> bool:
    if content is None:
        return True
    if isinstance(content, str):
        return not content.strip()
    return len(content) == 0


def normalize(messages: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validate and normalise a conversation (see the module docstring). Raises ChatFormatError."""
    if not isinstance(messages, (list, tuple)):
        raise ChatFormatError(f"messages: must be a list of message objects, not {type(messages).__name__}")
    out: list[dict[str, Any]] = []
    previous_role: str | None = None
    open_calls = False  # the last non-tool message was an assistant message with tool calls
    for i, raw in enumerate(messages):
        if not isinstance(raw, Mapping):
            raise ChatFormatError(f"messages[{i}]: must be an object with 'role' and 'content'")
        message = copy.deepcopy(dict(raw))
        if message.get("role") == "model":  # Gemma's own name for the assistant
            message["role"] = "assistant"
        role = message.get("role")
        if role not in ROLES:
            raise ChatFormatError(f"{_where(i, 'role')}: {role!r} is not one of {', '.join(ROLES)}")
        if role in ("system", "developer") and i != 0:
            raise ChatFormatError(f"{_where(i, 'role')}: a {role} message must come first (the template has one "
                                  "system turn)")
        if role == "tool":
            if previous_role not in ("assistant", "tool") or not open_calls:
                raise ChatFormatError(f"{_where(i, 'role')}: a tool message must follow an assistant message "
                                      "with tool_calls (or another tool message)")
            call_id = message.get("tool_call_id")
            if call_id is not None and not isinstance(call_id, str):
                raise ChatFormatError(f"{_where(i, 'tool_call_id')}: must be a string")
        _check_content(i, message)

        if role == "assistant":
            if message.get("reasoning_content") is None and message.get("reasoning") is None \
                    and isinstance(message.get("thinking"), str):
                message["reasoning_content"] = message["thinking"]
            for field in ("reasoning", "reasoning_content"):
                if message.get(field) is not None and not isinstance(message[field], str):
                    raise ChatFormatError(f"{_where(i, field)}: must be a string")
            calls = message.get("tool_calls")
            if calls is not None and not isinstance(calls, list):
                raise ChatFormatError(f"{_where(i, 'tool_calls')}: must be a list")
            if calls:
                message["tool_calls"] = [_normalize_call(i, k, c) for k, c in enumerate(calls)]
            elif "tool_calls" in message:
                del message["tool_calls"]
            responses = message.get("tool_responses")
            if responses is not None:
                if not isinstance(responses, list) or not all(isinstance(r, Mapping) for r in responses):
                    raise ChatFormatError(f"{_where(i, 'tool_responses')}: must be a list of "
                                          "{'name': ..., 'response': ...} objects")
            if message.get("tool_calls") and not _content_is_empty(message.get("content")):
                # content first (with any reasoning), then the calls (and native results) in the same model turn
                text_part = {k: v for k, v in message.items() if k not in ("tool_calls", "tool_responses")}
                call_part = {"role": "assistant", "content": None, "tool_calls": message["tool_calls"]}
                if message.get("tool_responses"):
                    call_part["tool_responses"] = message["tool_responses"]
                for key in ("id", "name"):
                    if key in message:
                        call_part[key] = message[key]
                out.append(text_part)
                out.append(call_part)
                previous_role, open_calls = role, True
                continue
            open_calls = bool(message.get("tool_calls"))
        elif role != "tool":
            open_calls = False
        out.append(message)
        previous_role = role
    return out


def has_media(messages: list[Mapping[str, Any]]) -> bool:
    """Whether any message holds an image, audio or video part."""
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            if any(isinstance(p, Mapping) and p.get("type") in MEDIA_PARTS for p in content):
                return True
    return False

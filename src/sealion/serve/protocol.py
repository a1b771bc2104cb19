"""OpenAI wire shapes: strict request models (bad input becomes a 400 naming the field) and response builders.

Unknown top-level fields are ignored (clients send vendor extras); known fields are type-checked and ranged.
Features we do not implement (n > 1, logprobs, penalties, JSON mode) are refused with a 400 rather than ignored.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- messages


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImageURL(_Lenient):
    url: str
    detail: str | None = None


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Lenient):
    data: str
    format: str


class AudioPart(_Lenient):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[Union[TextPart, ImagePart, AudioPart], Field(discriminator="type")]


class FunctionCall(_Lenient):
    name: str = Field(min_length=1, max_length=128)
    arguments: str  # a JSON object, as a string (OpenAI)

    @field_validator("arguments")
    @classmethod
    def _json_object(cls, v: str) -> str:
        try:
            obj = json.loads(v) if v.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"arguments is not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError("arguments must be a JSON object")
        return v


class ToolCall(_Lenient):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None

    @model_validator(mode="after")
    def _role_fields(self) -> "Message":
        if self.role in ("system", "developer", "user", "tool") and self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        if self.role != "assistant" and self.tool_calls:
            raise ValueError("only assistant messages carry tool_calls")
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        return self

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content or [] if isinstance(p, TextPart))

    def has_media(self) -> bool:
        return isinstance(self.content, list) and any(not isinstance(p, TextPart) for p in self.content)


# ---------------------------------------------------------------- tools


class FunctionDef(_Lenient):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_\-\.]*$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Lenient):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Lenient):
    name: str = Field(min_length=1)


class NamedToolChoice(_Lenient):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Lenient):
    include_usage: bool = False


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]


Stop = Union[str, Annotated[list[str], Field(max_length=16)], None]


class _SamplingFields(_Lenient):
    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=-1)
    max_tokens: int | None = Field(None, ge=1)
    stop: Stop = None
    stop_token_ids: list[Annotated[int, Field(ge=0)]] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, v):
        items = [v] if isinstance(v, str) else (v or [])
        if any(s == "" for s in items):
            raise ValueError("stop strings must be non-empty")
        return v

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def unsupported(self) -> str | None:
        """A message naming the first requested feature we do not implement, else None."""
        if self.n != 1:
            return "n: only n=1 is supported"
        if self.frequency_penalty or self.presence_penalty:
            return "frequency_penalty/presence_penalty: penalties are not supported"
        return None


class ChatCompletionRequest(_SamplingFields):
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_completion_tokens: int | None = Field(None, ge=1)
    chat_template_kwargs: dict[str, Any] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None

    def unsupported(self) -> str | None:
        msg = super().unsupported()
        if msg:
            return msg
        if self.logprobs:
            return "logprobs: not supported"
        if self.response_format is not None and self.response_format.type != "text":
            return "response_format: only {'type': 'text'} is supported"
        return None

    def enable_thinking(self) -> bool:
        kw = self.chat_template_kwargs or {}
        if "enable_thinking" in kw:
            value = kw["enable_thinking"]
            if not isinstance(value, bool):
                raise ValueError("chat_template_kwargs.enable_thinking must be a boolean")
            return value
        if self.reasoning_effort is not None:
            return self.reasoning_effort not in ("none", "minimal")
        return False

    def token_budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_SamplingFields):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for /v1/completions
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def unsupported(self) -> str | None:
        msg = super().unsupported()
        if msg:
            return msg
        if self.echo:
            return "echo: not supported"
        if self.logprobs is not None:
            return "logprobs: not supported"
        if self.suffix:
            return "suffix: not supported"
        if self.best_of not in (None, 1):
            return "best_of: only 1 is supported"
        return None


# ---------------------------------------------------------------- role order


def check_role_order(messages: list[Message]) -> str | None:
    """Return why the conversation's role order is invalid, or None. Messages are 0-indexed in errors."""
    open_calls: set[str] = set()
    seen_user = False
    for i, m in enumerate(messages):
        if m.role in ("system", "developer") and i != 0:
            return f"messages[{i}]: a {m.role} message may only come first"
        if m.role == "tool":
            prev = messages[i - 1] if i else None
            if prev is None or not (prev.role == "tool" or (prev.role == "assistant" and prev.tool_calls)):
                return f"messages[{i}]: a tool message must follow an assistant message with tool_calls"
            if m.tool_call_id is not None and open_calls and m.tool_call_id not in open_calls:
                return f"messages[{i}]: tool_call_id {m.tool_call_id!r} matches no earlier tool call"
        if m.role == "assistant":
            if not seen_user:
                return f"messages[{i}]: an assistant message must follow a user message"
            open_calls = {c.id for c in m.tool_calls or []}
        if m.role == "user":
            seen_user = True
    if not seen_user:
        return "messages: the conversation needs a user message"
    return None


def to_chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages as plain dicts for the chat layer (tool-call arguments stay JSON strings, as OpenAI sends them)."""
    out = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.text() if m.content is not None else None}
        if m.name:
            d["name"] = m.name
        if m.tool_calls:
            d["tool_calls"] = [c.model_dump() for c in m.tool_calls]
        if m.tool_call_id:
            d["tool_call_id"] = m.tool_call_id
        reasoning = m.reasoning_content or m.reasoning
        if reasoning:
            d["reasoning_content"] = reasoning
        out.append(d)
    return out


# ---------------------------------------------------------------- responses


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def error_body(message: str, type_: str, *, param: str | None = None, code: str | int | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}

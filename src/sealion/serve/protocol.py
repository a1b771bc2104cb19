"""OpenAI wire shapes: strict request models (bad input becomes a 400 naming the field) and response builders.

Unknown top-level fields are ignored (clients send vendor extras); known fields are type-checked here and ranged by
the engine's one rule. Features we do not implement (penalties, logit_bias, JSON mode, suffix) are refused with a
400 naming the field rather than ignored.
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


Stop = Union[str, list[str], None]
TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class _SamplingFields(_Lenient):
    """Fields shared by both generation routes. Ranges are the engine's one rule (`engine.params.check_sampling`),
    applied when the request becomes engine SamplingParams; here only the wire types are checked."""

    model: str = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: Stop = None
    stop_token_ids: list[int] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=16)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    # vLLM's extensions
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool | None = None
    prompt_logprobs: int | None = None
    thinking_budget: int | None = None
    return_token_ids: bool = False  # each choice's generated ids (`token_ids`) and the prompt's (`prompt_token_ids`)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def unsupported(self) -> str | None:
        """A message naming the first requested feature we do not implement, else None."""
        if self.frequency_penalty or self.presence_penalty:
            return "frequency_penalty: penalties are not supported"
        if self.repetition_penalty not in (None, 1.0):
            return "repetition_penalty: penalties are not supported"
        if self.logit_bias:
            return "logit_bias: not supported"
        return None


class ChatCompletionRequest(_SamplingFields):
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_completion_tokens: int | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    echo: bool = False

    def unsupported(self) -> str | None:
        msg = super().unsupported()
        if msg:
            return msg
        if self.response_format is not None and self.response_format.type != "text":
            return "response_format: only {'type': 'text'} is supported"
        if self.top_logprobs is not None and not self.logprobs:
            return "top_logprobs: needs logprobs: true"
        if self.echo:
            return "echo: not supported on chat completions"
        if self.continue_final_message and self.add_generation_prompt:
            return "continue_final_message: needs add_generation_prompt: false"
        if self.continue_final_message and self.messages[-1].role != "assistant":
            return "continue_final_message: the final message must be an assistant message"
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

    def template_kwargs(self) -> dict[str, Any]:
        """chat_template_kwargs other than enable_thinking (which the renderer takes by name)."""
        return {k: v for k, v in (self.chat_template_kwargs or {}).items() if k != "enable_thinking"}

    def token_budget(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def logprobs_k(self) -> int | None:
        """The engine's logprobs setting: None (off) or how many alternatives per token."""
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_SamplingFields):
    # a string, a list of strings, a list of token ids, or a list of token-id lists (OpenAI's four forms)
    prompt: Union[str, TokenIds, Annotated[list[str], Field(min_length=1)],
                  Annotated[list[TokenIds], Field(min_length=1)]]
    max_tokens: int | None = 16  # OpenAI's default for /v1/completions
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None
    best_of: int | None = None

    def prompts(self) -> list[str | list[int]]:
        """Each prompt: text, or token ids fed as they are."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and isinstance(p[0], int):
            return [list(p)]
        return list(p)

    def unsupported(self) -> str | None:
        msg = super().unsupported()
        if msg:
            return msg
        if self.suffix:
            return "suffix: not supported"
        if self.best_of not in (None, 1) and self.best_of != self.n:
            return "best_of: only best_of equal to n is supported"
        return None


class TokenizeRequest(_Lenient):
    """vLLM's POST /tokenize: a prompt, or messages rendered as for chat completions."""

    model: str | None = None
    prompt: str | None = None
    messages: list[Message] | None = Field(None, min_length=1)
    tools: list[Tool] | None = None
    add_special_tokens: bool | None = None  # default: True for a prompt, False for messages (vLLM)
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] | None = None
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _one_form(self) -> "TokenizeRequest":
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give either prompt or messages")
        return self


class DetokenizeRequest(_Lenient):
    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0)]]


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

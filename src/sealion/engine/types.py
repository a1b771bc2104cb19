"""The engine's data types: what goes in (requests with sampling params) and what comes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class SamplingParams:
    """How to sample. `None` means: take the model's generation_config default.

    temperature == 0 (or do_sample False) means greedy decoding.
    """

    max_new_tokens: int = 256
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    do_sample: bool | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)  # stop strings, cut from the output
    stop_token_ids: list[int] = field(default_factory=list)  # added to the model's EOS ids
    logprobs: int | None = None  # None: off; k: each generated token's log-prob and the k best (0..20)
    prompt_logprobs: int | None = None  # None: off; k: each prompt token's log-prob and the k best (vLLM's extension)
    skip_special_tokens: bool = False  # the returned text without control tokens (chat parsing needs them kept)
    include_stop_str_in_output: bool = False  # a matched stop string stays in the text
    thinking_budget: int | None = None  # tokens of thought before the core closes the channel itself

    def check(self, *, context_length: int | None = None, prompt_tokens: int | None = None) -> "SamplingParams":
        """Validate against the one rule (`sealion.engine.params.check_sampling`); returns self."""
        from .params import check_sampling

        check_sampling(self, context_length=context_length, prompt_tokens=prompt_tokens)
        return self

    def is_greedy(self, default_do_sample: bool = False) -> bool:
        if self.temperature is not None and self.temperature <= 0:
            return True
        if self.do_sample is not None:
            return not self.do_sample
        if self.temperature is not None:
            return False  # an explicit temperature > 0 asks for sampling, as in the OpenAI API
        return not default_do_sample


@dataclass
class CompletionRequest:
    """Raw text in. `prompt` may hold special tokens as text (e.g. a rendered chat)."""

    prompt: str
    params: SamplingParams = field(default_factory=SamplingParams)
    id: str | None = None
    prompt_ids: list[int] | None = None  # pre-tokenised prompt; overrides `prompt` (sent as ids over HTTP)


@dataclass
class ChatRequest:
    """OpenAI-shaped messages in; the engine renders them (in-process) or sends them (HTTP)."""

    messages: list[dict[str, Any]]
    params: SamplingParams = field(default_factory=SamplingParams)
    tools: list[dict[str, Any]] | None = None
    enable_thinking: bool = False
    id: str | None = None
    reasoning_effort: str | None = None  # "none" | "minimal" | "low" | "medium" | "high": a thinking budget


FinishReason = Literal["stop", "length", "tool_calls", "error"]


@dataclass
class Completion:
    """One request's result, the same shape for every backend.

    `text` is the generated text decoded with special tokens kept (so chat parsing works), without the
    terminating EOS/stop token and with a matched stop string cut off. For chat requests, `content`,
    `reasoning` and `tool_calls` hold the parsed message (tool_calls in OpenAI shape, arguments a JSON string).
    `completion_tokens` counts every generated token, a terminating stop token included (vLLM's and OpenAI's usage);
    `token_ids` and `text` leave that stop token out.
    """

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    token_ids: list[int] | None = None  # generated ids (in-process backend only)
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    error: str | None = None  # set with finish_reason "error" (e.g. HTTP failure after retries)
    id: str | None = None
    reasoning_tokens: int | None = None  # of completion_tokens, those inside the thought channel
    cached_tokens: int = 0  # prompt tokens that came from the prefix cache
    logprobs: list[dict] | None = None  # per generated token (SamplingParams.logprobs): token_id, logprob, rank, top
    prompt_logprobs: list[dict | None] | None = None  # per prompt token, the first None
    stop_token_id: int | None = None  # the stop id that ended it (in-process backend; not in token_ids)


@dataclass
class StreamDelta:
    """A streamed piece of text; the last event of a stream has `final` set to the full Completion."""

    text: str
    final: Completion | None = None

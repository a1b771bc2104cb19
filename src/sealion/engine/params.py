"""The one rule for sampling parameters: OpenAI semantics and ranges, checked once for every caller.

The CLI verbs, the offline API and the server all call `check_sampling`, so a value is accepted or refused the
same way everywhere: the CLI prints the error as one line, the server answers 400 naming the field.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError

TEMPERATURE_RANGE = (0.0, 2.0)  # OpenAI's range; 0 means greedy
MAX_STOP_STRINGS = 16
MAX_LOGPROBS = 20  # top log-probs per token (OpenAI's top_logprobs limit)


class SamplingParamError(ConfigError):
    """A sampling parameter outside its range; `field` names it (OpenAI's name for it)."""

    def __init__(self, field: str, message: str, code: str = "invalid_value"):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code  # the server's error code: "invalid_value" or "context_length_exceeded"


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SamplingParamError(field, f"must be a finite number, got {value!r}")
    return float(value)


def _integer(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SamplingParamError(field, f"must be an integer, got {value!r}")
    return value


def check_sampling(params, *, context_length: int | None = None, prompt_tokens: int | None = None) -> None:
    """Raise SamplingParamError for the first field out of range. `params` is an engine SamplingParams.

    temperature: 0..2 (0 = greedy). top_p: (0, 1] (0 would keep no token; vLLM refuses it too). top_k: None, -1 or 0
    (off) or >= 1. max_new_tokens (OpenAI `max_tokens`): >= 1, and with `context_length` and `prompt_tokens` the
    prompt plus max_new_tokens must fit the context. seed: an integer. stop: at most 16 non-empty strings.
    stop_token_ids: non-negative integers. logprobs, prompt_logprobs: 0..20. thinking_budget: >= 0.
    max_tokens may be 0 only when prompt_logprobs is asked (scoring a prompt, lm-eval's loglikelihood).
    """
    if params.temperature is not None:
        t = _number("temperature", params.temperature)
        lo, hi = TEMPERATURE_RANGE
        if not lo <= t <= hi:
            raise SamplingParamError("temperature", f"must be between {lo:g} and {hi:g}, got {t:g}")
    if params.top_p is not None:
        p = _number("top_p", params.top_p)
        if not 0.0 < p <= 1.0:
            raise SamplingParamError("top_p", f"must be in (0, 1], got {p:g}")
    if params.top_k is not None:
        k = _integer("top_k", params.top_k)
        if k < -1:
            raise SamplingParamError("top_k", f"must be -1 or 0 (off) or a positive integer, got {k}")
    n = _integer("max_tokens", params.max_new_tokens)
    scoring = getattr(params, "prompt_logprobs", None) is not None
    if n < (0 if scoring else 1):
        raise SamplingParamError("max_tokens", f"must be at least 1 (0 only with prompt_logprobs), got {n}")
    if context_length is not None and prompt_tokens is not None and prompt_tokens + n > context_length:
        raise SamplingParamError(
            "max_tokens", f"the prompt has {prompt_tokens} tokens; with max_tokens={n} it would exceed the "
            f"model's context of {context_length} tokens", code="context_length_exceeded")
    if params.seed is not None:
        _integer("seed", params.seed)
    stops = params.stop or []
    if isinstance(stops, str) or len(stops) > MAX_STOP_STRINGS:
        raise SamplingParamError("stop", f"must be a list of at most {MAX_STOP_STRINGS} strings")
    for s in stops:
        if not isinstance(s, str) or not s:
            raise SamplingParamError("stop", f"each stop string must be a non-empty string, got {s!r}")
    for name in ("logprobs", "prompt_logprobs"):
        value = getattr(params, name, None)
        if value is not None and not 0 <= _integer(name, value) <= MAX_LOGPROBS:
            raise SamplingParamError(name, f"must be between 0 and {MAX_LOGPROBS}, got {value}")
    budget = getattr(params, "thinking_budget", None)
    if budget is not None and _integer("thinking_budget", budget) < 0:
        raise SamplingParamError("thinking_budget", f"must be 0 or more tokens, got {budget}")
    for i in params.stop_token_ids or []:
        if _integer("stop_token_ids", i) < 0:
            raise SamplingParamError("stop_token_ids", f"ids must be non-negative, got {i}")


def top_k_or_none(top_k: int | None) -> int | None:
    """-1 and 0 mean no top-k filter (vLLM's and transformers' conventions); both become None."""
    return None if top_k is None or top_k <= 0 else top_k

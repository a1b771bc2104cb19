"""The server's state over one engine: requests become engine-core sequences under the engine's own rules.

The engine (`sealion.engine.local.LocalEngine`) owns the model, its `EngineCore` step loop, the sampling rule,
stop ids, the context limit and the thinking budget; this module only translates the wire request into engine
`SamplingParams`, refuses what cannot run (400 naming the field, 429 at capacity, 503 when shut down) and submits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from ..engine.core import Sequence
from ..engine.params import SamplingParamError
from ..engine.thinking import budget_for_effort
from ..engine.types import SamplingParams
from ..errors import SealionError
from .bridge import Flight
from .chatio import ChatCodec
from .logprobs import TokenText
from .metrics import Metrics

DEFAULT_CONTEXT = 8192  # a model config without max_position_embeddings


@dataclass
class ServeConfig:
    """Server limits and identity. Every limit is enforced before a request reaches the model."""

    model_name: str = "sealion"
    api_key: str | None = None
    max_batch: int = 32  # rows decoded together
    max_queue: int = 256  # admitted requests waiting for a row; beyond max_batch + max_queue -> 429
    max_body_bytes: int = 4 * 1024 * 1024
    max_model_len: int | None = None  # context window (prompt + generated); default: the model's
    max_prompt_tokens: int | None = None  # default: max_model_len - 1
    default_max_tokens: int = 1024  # chat requests that give no max_tokens (never the whole context)
    request_timeout: float = 600.0  # seconds per request, queueing included
    max_prefill_tokens: int = 8192  # padded prompt tokens prefilled in one forward
    prefix_cache_mb: float = 256.0  # the engine's automatic prefix cache (0: off)
    # image and audio parts (a checkpoint with a processor): see media.py
    allow_media_paths: bool = False  # file paths and http(s) URLs in image_url parts (data URLs always)
    max_media_bytes: int = 16 * 1024 * 1024  # one decoded image or audio clip
    max_media_parts: int = 8  # image and audio parts in one request
    media_fetch_timeout: float = 10.0  # seconds for an http(s) image URL


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", *, param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers


class ServerState:
    def __init__(self, model, tokenizer, config: ServeConfig, processor=None):
        from ..engine.local import LocalEngine

        self.config = config
        self.tokenizer = tokenizer
        self.backend = getattr(tokenizer, "backend_tokenizer", None)
        self.engine = LocalEngine.from_model(
            model, tokenizer, processor=processor, name=config.model_name, max_batch_size=config.max_batch,
            max_batch_tokens=config.max_prefill_tokens, max_model_len=config.max_model_len,
            prefix_cache_mb=config.prefix_cache_mb)
        self.core = self.engine.core
        self.processor = processor  # None: a text-only checkpoint, which refuses image and audio parts
        self.max_model_len = self.engine.context_length or min(config.max_model_len or DEFAULT_CONTEXT,
                                                               DEFAULT_CONTEXT)
        self.max_prompt_tokens = min(config.max_prompt_tokens or self.max_model_len - 1, self.max_model_len - 1)
        self.vocab_size = len(tokenizer)
        self.codec = ChatCodec(tokenizer)
        self.names = TokenText(tokenizer)
        self.metrics = Metrics()
        self.created = int(time.time())

    # ------------------------------------------------------------ request preparation

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        if self.backend is not None:  # the Rust tokenizer is safe to call beside the model thread's decoding
            ids = self.backend.encode(text, add_special_tokens=False).ids
        else:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        bos = self.tokenizer.bos_token_id
        if add_special_tokens and bos is not None and (not ids or ids[0] != bos):
            ids = [bos] + ids
        return ids

    def decode(self, ids: list[int], *, skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def check_ids(self, ids: list[int], field: str) -> None:
        bad = next((t for t in ids if t >= self.vocab_size), None)
        if bad is not None:
            raise ApiError(400, f"{field}: token id {bad} is outside the vocabulary (0..{self.vocab_size - 1})",
                           param=field, code="invalid_value")

    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.config.model_name:
            raise ApiError(404, f"model {name!r} does not exist; this server serves {self.config.model_name!r}",
                           param="model", code="model_not_found")

    def params(self, body, prompt_len: int, *, chat: bool, logprobs: int | None, prompt_logprobs: int | None,
               default_max: int) -> SamplingParams:
        """The request's engine SamplingParams, checked by the engine's one rule (400 naming the field)."""
        if prompt_len > self.max_prompt_tokens:
            raise ApiError(400, f"the prompt has {prompt_len} tokens; this server accepts at most "
                           f"{self.max_prompt_tokens}", param="messages" if chat else "prompt",
                           code="context_length_exceeded")
        budget = body.token_budget() if chat else body.max_tokens
        if budget is None:  # bounded, never "the rest of the context"
            budget = max(1, min(default_max, self.max_model_len - prompt_len))
        thinking = body.thinking_budget
        if thinking is None and chat and body.enable_thinking():
            thinking = budget_for_effort(body.reasoning_effort)
        skip = body.skip_special_tokens if body.skip_special_tokens is not None else not chat  # chat is parsed
        params = SamplingParams(
            max_new_tokens=budget, temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
            seed=body.seed, stop=body.stop_list(), stop_token_ids=list(body.stop_token_ids or []),
            logprobs=logprobs, prompt_logprobs=prompt_logprobs, skip_special_tokens=skip,
            include_stop_str_in_output=body.include_stop_str_in_output, thinking_budget=thinking)
        field = {"max_tokens": "max_completion_tokens"} if chat and body.max_completion_tokens is not None else {}
        try:
            params.check(context_length=self.max_model_len, prompt_tokens=prompt_len)
        except SamplingParamError as e:
            name = field.get(e.field, e.field)
            raise ApiError(400, str(e).replace(e.field, name, 1), param=name, code=e.code) from None
        return params

    def sequences(self, prompt_ids: list[int], params: SamplingParams, n: int, *, chat: bool,
                  stream: bool, extra_inputs: dict | None = None) -> list[Sequence]:
        """n sequences of one prompt (vLLM's parallel sampling): with a seed, choice i draws with seed + i; the
        prompt's log-probs are computed once, for the first."""
        out = []
        for i in range(n):
            p = params
            if i:
                p = replace(p, prompt_logprobs=None,
                            seed=None if p.seed is None else (p.seed + i) % 2**64)
            try:
                out.append(self.engine.sequence(prompt_ids, p, chat=chat, stream=stream, check=False,
                                                extra_inputs=extra_inputs, timeout=self.config.request_timeout))
            except SealionError as e:
                raise ApiError(400, str(e), param="messages" if chat else "prompt",
                               code="context_length_exceeded") from None
        return out

    def submit(self, seqs: list[Sequence]) -> Flight:
        """Hand sequences to the core, or refuse with 429 when every row and queue place is taken."""
        limit = self.config.max_batch + self.config.max_queue
        if self.core.waiting_count + self.core.running_count + len(seqs) > limit:
            raise ApiError(429, f"the server is at capacity ({limit} requests in flight); retry later",
                           "rate_limit_error", code="too_many_requests", headers={"Retry-After": "1"})
        flight = Flight(seqs)
        try:
            self.core.submit(seqs)
        except RuntimeError:
            raise ApiError(503, "the server is shutting down", "server_error", code="shutdown") from None
        return flight

    def warm_up(self) -> None:
        """One tiny generation so the first client does not pay for lazy initialisation."""
        seq = self.engine.sequence(self.encode("Hello", add_special_tokens=True),
                                   SamplingParams(max_new_tokens=2, temperature=0.0))
        self.core.submit([seq])
        seq.done.wait(120)

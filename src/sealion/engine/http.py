"""The OpenAI-compatible HTTP backend: vLLM, llama.cpp's server, `sealion serve`, hosted APIs.

Requests run concurrently (a thread pool); the `openai` client retries 429/5xx and connection errors with
exponential backoff and enforces a per-request timeout. A request that still fails comes back as a Completion with
finish_reason "error" and the error text, so one bad item never sinks a batch of thousands.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

from ..errors import SealionError
from .base import Engine, ProgressFn
from .types import ChatRequest, Completion, CompletionRequest, SamplingParams, StreamDelta


def openai_client(base_url: str, *, api_key: str | None = None, timeout: float = 600.0, max_retries: int = 4):
    """The one place sealion builds an `openai.OpenAI` client (the engine backend, the served distillation teacher).

    base_url gets /v1 appended when missing; the key falls back to $OPENAI_API_KEY, $SEALION_API_KEY, then "none"
    (local servers ignore it). The client itself retries 408/409/429/5xx and connection errors `max_retries` times
    with exponential backoff and enforces `timeout` per request.
    """
    import openai

    base_url = base_url.rstrip("/")
    if not base_url.endswith("/v1"):
        base_url += "/v1"
    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key or os.environ.get("OPENAI_API_KEY") or os.environ.get("SEALION_API_KEY") or "none",
        timeout=timeout,
        max_retries=max_retries,
    )


def _sampling_body(p: SamplingParams) -> tuple[dict[str, Any], dict[str, Any]]:
    """(standard OpenAI fields, extra_body fields) for a request."""
    body: dict[str, Any] = {"max_tokens": p.max_new_tokens}
    extra: dict[str, Any] = {}
    if p.temperature is not None:
        body["temperature"] = p.temperature
    elif p.do_sample is False:
        body["temperature"] = 0.0  # greedy
    if p.top_p is not None:
        body["top_p"] = p.top_p
    if p.top_k is not None:
        extra["top_k"] = p.top_k
    if p.seed is not None:
        body["seed"] = p.seed
    if p.stop:
        body["stop"] = list(p.stop)
    if p.stop_token_ids:
        extra["stop_token_ids"] = list(p.stop_token_ids)
    if p.include_stop_str_in_output:
        extra["include_stop_str_in_output"] = True  # vLLM's extension (sealion serve has it too)
    return body, extra


def _tool_calls(message) -> list[dict] | None:
    calls = getattr(message, "tool_calls", None)
    if not calls:
        return None
    return [
        {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c in calls
    ]


def _reasoning(obj) -> str | None:
    # llama.cpp and transformers serve say reasoning_content; newer vLLM and Ollama say reasoning
    extra = getattr(obj, "model_extra", None) or {}
    return extra.get("reasoning_content") or extra.get("reasoning")


class HTTPEngine(Engine):
    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 600.0,
        max_retries: int = 4,
    ):
        self.client = openai_client(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        base_url = str(self.client.base_url).rstrip("/")
        self.base_url = base_url
        self.concurrency = concurrency
        self._model = model
        self.name = model or base_url

    @property
    def model(self) -> str:
        if self._model is None:
            try:
                models = self.client.models.list().data
            except Exception as e:
                raise SealionError(f"{self.base_url}: cannot list models ({type(e).__name__}: {e})") from None
            if not models:
                raise SealionError(f"{self.base_url}: the server lists no models; pass model=...")
            self._model = models[0].id
        return self._model

    # ---- tokenization (vLLM's POST /tokenize, which `sealion serve` also answers) ----------------------------

    def _tokenize(self, body: dict[str, Any]) -> list[int]:
        url = self.base_url.removesuffix("/v1") + "/tokenize"  # vLLM serves it beside /v1, not under it
        try:
            r = self.client.post(url, body={"model": self.model, **body}, cast_to=object)
            return [int(t) for t in r["tokens"]]
        except Exception as e:
            raise SealionError(f"{url}: cannot tokenize ({type(e).__name__}: {e}); log-prob scoring over HTTP "
                               "needs a server with vLLM's /tokenize (vLLM, sealion serve)") from None

    def encode(self, prompt: str) -> list[int]:
        """A base-model prompt with the server tokenizer's usual special tokens (<bos>)."""
        return self._tokenize({"prompt": prompt, "add_special_tokens": True})

    def encode_text(self, text: str) -> list[int]:
        return self._tokenize({"prompt": text, "add_special_tokens": False})

    def chat_prompt_ids(self, messages: list[dict]) -> list[int]:
        return self._tokenize({"messages": _jsonable_messages(messages), "add_generation_prompt": True})

    # ---- single requests --------------------------------------------------------------------------------------

    def _complete_one(self, req: CompletionRequest) -> Completion:
        body, extra = _sampling_body(req.params)
        k = req.params.prompt_logprobs
        if k is not None:
            extra["prompt_logprobs"] = k
            body["max_tokens"] = max(1, body["max_tokens"] or 0)  # vLLM wants >= 1 even when only scoring
        try:
            prompt = list(req.prompt_ids) if req.prompt_ids is not None else req.prompt  # ids go as ids (vLLM too)
            r = self.client.completions.create(model=self.model, prompt=prompt, extra_body=extra or None, **body)
        except Exception as e:
            return _error(req.id, e)
        choice = r.choices[0]
        usage = r.usage
        rows = None
        if k is not None:
            raw = (choice.model_extra or {}).get("prompt_logprobs") or getattr(r, "model_extra", {}).get("prompt_logprobs")
            if raw is None or req.prompt_ids is None or len(raw) != len(req.prompt_ids):
                return _error(req.id, SealionError(f"{self.base_url}: no prompt_logprobs for the prompt's "
                                                   f"{len(req.prompt_ids or [])} tokens in the reply"))
            rows = _prompt_rows(raw, req.prompt_ids)
        return Completion(
            text=choice.text or "",
            finish_reason=_finish(choice.finish_reason),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            id=req.id,
            prompt_logprobs=rows,
        )

    def _chat_body(self, req: ChatRequest) -> tuple[dict[str, Any], dict[str, Any]]:
        body, extra = _sampling_body(req.params)
        body["messages"] = _jsonable_messages(req.messages)
        if req.tools:
            body["tools"] = req.tools
        extra["chat_template_kwargs"] = {"enable_thinking": bool(req.enable_thinking)}
        return body, extra

    def _chat_one(self, req: ChatRequest) -> Completion:
        body, extra = self._chat_body(req)
        try:
            r = self.client.chat.completions.create(model=self.model, extra_body=extra, **body)
        except Exception as e:
            return _error(req.id, e)
        choice = r.choices[0]
        msg = choice.message
        usage = r.usage
        content = msg.content or ""
        return Completion(
            text=content,
            finish_reason=_finish(choice.finish_reason),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            content=content,
            reasoning=_reasoning(msg),
            tool_calls=_tool_calls(msg),
            id=req.id,
        )

    # ---- the Engine interface ---------------------------------------------------------------------------------

    def _map(self, fn, requests, progress):
        if not requests:
            return []
        _ = self.model  # resolve once, before the threads start
        results: list[Completion | None] = [None] * len(requests)
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            futures = {pool.submit(fn, r): i for i, r in enumerate(requests)}
            from concurrent.futures import as_completed

            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if progress:
                    progress(1)
        return results  # type: ignore[return-value]

    def complete(self, requests: Sequence[CompletionRequest], *, progress: ProgressFn | None = None) -> list[Completion]:
        return self._map(self._complete_one, list(requests), progress)

    def chat(self, requests: Sequence[ChatRequest], *, progress: ProgressFn | None = None) -> list[Completion]:
        return self._map(self._chat_one, list(requests), progress)

    def stream(self, request: CompletionRequest | ChatRequest) -> Iterator[StreamDelta]:
        is_chat = isinstance(request, ChatRequest)
        if is_chat:
            body, extra = self._chat_body(request)
            make = self.client.chat.completions.create
        else:
            body, extra = _sampling_body(request.params)
            body["prompt"] = list(request.prompt_ids) if request.prompt_ids is not None else request.prompt
            make = self.client.completions.create
        try:
            stream = make(model=self.model, stream=True, stream_options={"include_usage": True},
                          extra_body=extra or None, **body)
        except Exception as e:
            yield StreamDelta(text="", final=_error(request.id, e))
            return
        text, reasoning, finish, usage = [], [], None, None
        calls: dict[int, dict] = {}
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            if is_chat:
                delta = choice.delta
                if r := _reasoning(delta):
                    reasoning.append(r)
                for tc in delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": tc.id, "type": "function",
                                                       "function": {"name": "", "arguments": ""}})
                    if tc.id:
                        slot["id"] = tc.id
                    if tc.function and tc.function.name:
                        slot["function"]["name"] += tc.function.name
                    if tc.function and tc.function.arguments:
                        slot["function"]["arguments"] += tc.function.arguments
                piece = delta.content or ""
            else:
                piece = choice.text or ""
            if piece:
                text.append(piece)
                yield StreamDelta(text=piece)
        content = "".join(text)
        yield StreamDelta(text="", final=Completion(
            text=content,
            finish_reason=_finish(finish),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            content=content if is_chat else None,
            reasoning="".join(reasoning) or None if is_chat else None,
            tool_calls=[calls[i] for i in sorted(calls)] or None if is_chat else None,
            id=request.id,
        ))

    def close(self) -> None:
        self.client.close()


def _prompt_rows(raw: list, ids: Sequence[int]) -> list[dict | None]:
    """vLLM's `prompt_logprobs` (per prompt token None or {str(id): {"logprob", "rank", ...}}, the prompt token among
    the k best) -> the engine's per-token records, as the in-process core gives them."""
    rows: list[dict | None] = []
    for entry, tid in zip(raw, ids):
        if entry is None:
            rows.append(None)
            continue
        mine = entry.get(str(tid)) or {}
        top = sorted(((int(t), float(v["logprob"])) for t, v in entry.items()), key=lambda x: -x[1])
        rows.append({"token_id": int(tid), "logprob": float(mine.get("logprob", float("-inf"))),
                     "rank": mine.get("rank"), "top": top})
    return rows


def _finish(reason: str | None) -> str:
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


def _error(request_id, e: Exception) -> Completion:
    return Completion(text="", finish_reason="error", prompt_tokens=0, completion_tokens=0,
                      error=f"{type(e).__name__}: {e}", id=request_id)


def _jsonable_messages(messages: list[dict]) -> list[dict]:
    """OpenAI wants tool-call arguments as JSON strings; accept dicts from callers."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            m = dict(m)
            m["tool_calls"] = [
                {**c, "function": {**c["function"], "arguments": c["function"]["arguments"]
                                   if isinstance(c["function"].get("arguments"), str)
                                   else json.dumps(c["function"].get("arguments") or {}, ensure_ascii=False)}}
                for c in m["tool_calls"]
            ]
        out.append(m)
    return out

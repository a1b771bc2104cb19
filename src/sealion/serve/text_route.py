"""POST /v1/completions: text or token-id prompts, `n`, `echo`, `logprobs` (OpenAI's legacy shape) and vLLM's
`prompt_logprobs`. A scoring request (lm-evaluation-harness loglikelihood: `echo` + `logprobs` + `max_tokens` 0 or
1; a served teacher: `prompt_logprobs` + `max_tokens` 0) is one prefill with the prompt's log-probs."""

from __future__ import annotations

import time
from typing import AsyncIterator

from fastapi import Request

from . import protocol as P
from .bridge import Flight
from .logprobs import legacy, prompt_entries
from .state import ServerState
from .streaming import collect, error_event, generated_ids, generated_records, observe, sse, streaming, usage

COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's, when a client sends max_tokens: null


def _top(records, k: int | None):
    """Records with at most k alternatives each (one pass computed the largest k asked for)."""
    if k is None:
        return records
    return [None if r is None else {**r, "top": r["top"][:k]} for r in records]


class _Prompts:
    """The request's prompts as ids (fed as they are when the client sent ids) and, lazily, as text for echo."""

    def __init__(self, state: ServerState, body: P.CompletionRequest):
        self.state, self.ids, self.texts = state, [], []
        for j, p in enumerate(body.prompts()):
            if isinstance(p, str):
                self.ids.append(state.encode(p, add_special_tokens=True))
                self.texts.append(p)
            else:
                state.check_ids(p, "prompt")
                self.ids.append(list(p))
                self.texts.append(None)
        self.skip = body.skip_special_tokens if body.skip_special_tokens is not None else True

    def text(self, j: int) -> str:
        if self.texts[j] is None:
            self.texts[j] = self.state.decode(self.ids[j], skip_special_tokens=self.skip)
        return self.texts[j]


async def completions(state: ServerState, body: P.CompletionRequest, request: Request):
    started = time.monotonic()
    prompts = _Prompts(state, body)
    n = body.n
    prompt_k = [k for k in (body.prompt_logprobs, body.logprobs if body.echo else None) if k is not None]
    seqs = []
    for ids in prompts.ids:
        params = state.params(body, len(ids), chat=False, logprobs=body.logprobs,
                              prompt_logprobs=max(prompt_k) if prompt_k else None,
                              default_max=COMPLETIONS_DEFAULT_MAX_TOKENS)
        seqs += state.sequences(ids, params, n, chat=False, stream=body.stream)
    flight = state.submit(seqs)
    rid = P.new_id("cmpl")
    prompt_tokens = sum(len(ids) for ids in prompts.ids)
    if body.stream:
        return streaming(state, _stream(state, body, prompts, rid, flight, prompt_tokens), "completions", started,
                         flight)
    await collect(request, flight)
    observe(state, "completions", started, flight)
    choices = []
    for c, seq in enumerate(flight.seqs):
        j = c // n
        text = seq.tracker.final_text
        logprobs = None
        if body.logprobs is not None:
            ids, records = generated_records(seq)
            if body.echo:
                ids = prompts.ids[j] + ids
                records = list(flight.seqs[j * n].prompt_token_logprobs) + records
            logprobs = legacy(ids, _top(records, body.logprobs), state.names)
        choice = {"index": c, "text": (prompts.text(j) + text) if body.echo else text, "logprobs": logprobs,
                  "finish_reason": seq.finish_reason}
        if body.prompt_logprobs is not None:
            choice["prompt_logprobs"] = prompt_entries(
                _top(flight.seqs[j * n].prompt_token_logprobs, body.prompt_logprobs), state.names)
        if body.return_token_ids:
            choice["prompt_token_ids"], choice["token_ids"] = prompts.ids[j], generated_ids(seq)
        choices.append(choice)
    return {"id": rid, "object": "text_completion", "created": P.now(), "model": state.config.model_name,
            "choices": choices, "usage": usage(prompt_tokens, flight)}


async def _stream(state: ServerState, body: P.CompletionRequest, prompts: _Prompts, rid: str, flight: Flight,
                  prompt_tokens: int) -> AsyncIterator[str]:
    name, created, n = state.config.model_name, P.now(), body.n
    begun: set[int] = set()
    sent: dict[int, int] = {}  # generated tokens each choice has sent

    def chunk(c: int, text: str, logprobs, finish: str | None, extra: dict | None = None) -> str:
        choice = {"index": c, "text": text, "logprobs": logprobs, "finish_reason": finish, **(extra or {})}
        return sse({"id": rid, "object": "text_completion", "created": created, "model": name, "choices": [choice]})

    async for c, event in flight.events():
        if event.kind == "error":
            yield error_event(event)
            break
        j, seq = c // n, flight.seqs[c]
        text, extra = event.text, {}
        if event.kind == "delta":
            ids, records = list(event.token_ids), list(event.logprobs)
        else:  # the tokens no delta carried (the last one, the stop token)
            done = sent.get(c, 0)
            ids, records = generated_ids(seq)[done:], generated_records(seq)[1][done:]
        sent[c] = sent.get(c, 0) + len(ids)
        token_ids = list(ids)
        if c not in begun:  # the first chunk of a choice carries what belongs to the prompt
            begun.add(c)
            first = flight.seqs[j * n]
            if body.echo:
                text = prompts.text(j) + text
                if body.logprobs is not None:
                    ids, records = prompts.ids[j] + ids, list(first.prompt_token_logprobs) + records
            if body.return_token_ids:
                extra["prompt_token_ids"] = prompts.ids[j]
            if body.prompt_logprobs is not None:
                extra["prompt_logprobs"] = prompt_entries(_top(first.prompt_token_logprobs, body.prompt_logprobs),
                                                          state.names)
        logprobs = legacy(ids, _top(records, body.logprobs), state.names) if body.logprobs is not None else None
        if body.return_token_ids:
            extra["token_ids"] = token_ids
        if event.kind == "delta":
            if text or logprobs or extra:
                yield chunk(c, text, logprobs, None, extra)
        else:
            yield chunk(c, text, logprobs, seq.finish_reason, extra)
    else:
        if body.stream_options and body.stream_options.include_usage:
            yield sse({"id": rid, "object": "text_completion", "created": created, "model": name, "choices": [],
                       "usage": usage(prompt_tokens, flight)})
    yield sse("[DONE]")

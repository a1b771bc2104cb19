"""Waiting for a flight's results, server-sent events, and how core errors become HTTP errors."""

from __future__ import annotations

import json
import time
from typing import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from ..engine.core import Event
from . import protocol as P
from .bridge import Flight
from .state import ApiError, ServerState

# a core error code -> (HTTP status, OpenAI error type)
ERROR_STATUS = {"timeout": (408, "timeout_error"), "shutdown": (503, "server_error"),
                "cancelled": (499, "cancelled"), "internal": (500, "server_error")}


def sse(obj: dict | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)}\n\n"


def error_event(event: Event) -> str:
    _, type_ = ERROR_STATUS.get(event.code or "internal", (500, "server_error"))
    return sse(P.error_body(event.error or "generation failed", type_, code=event.code))


async def collect(request: Request, flight: Flight) -> None:
    """Wait until every sequence is finished; a client that disconnects frees its rows at once."""
    try:
        async for _, event in flight.events(poll=0.25):
            if event is None:
                if await request.is_disconnected():
                    raise ApiError(499, "client disconnected", "cancelled")
                continue
            if event.kind == "error":
                status, type_ = ERROR_STATUS.get(event.code or "internal", (500, "server_error"))
                raise ApiError(status, event.error or "generation failed", type_, code=event.code)
    finally:
        flight.cancel()  # a no-op once finished


def observe(state: ServerState, endpoint: str, started: float, flight: Flight) -> None:
    state.metrics.observe_latency(endpoint, time.monotonic() - started)
    if flight.first_token_at is not None:
        state.metrics.observe_ttft(flight.first_token_at - flight.enqueued_at)


def streaming(state: ServerState, gen: AsyncIterator[str], endpoint: str, started: float,
              flight: Flight) -> StreamingResponse:
    async def body():
        try:
            async for piece in gen:
                yield piece
        finally:
            flight.cancel()  # a no-op when finished; frees the rows when the client went away
            observe(state, endpoint, started, flight)

    # the background task runs even when the client leaves before the body starts
    return StreamingResponse(body(), media_type="text/event-stream", background=BackgroundTask(flight.cancel),
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def usage(prompt_tokens: int, flight: Flight) -> dict:
    out = P.usage(prompt_tokens, sum(s.completion_tokens for s in flight.seqs))
    reasoning = [s.thinking.reasoning for s in flight.seqs if s.thinking is not None]
    if reasoning and any(reasoning):
        out["completion_tokens_details"] = {"reasoning_tokens": sum(reasoning)}
    cached = sum(s.cached_prefix for s in flight.seqs)
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def generated_records(seq) -> tuple[list[int], list[dict]]:
    """A finished sequence's generated ids and log-prob records, its stop token included (vLLM reports it)."""
    ids, records = list(seq.generated), list(seq.token_logprobs)
    if seq.stop_token is not None and seq.stop_logprob is not None:
        ids.append(seq.stop_token)
        records.append(seq.stop_logprob)
    return ids, records


def generated_ids(seq) -> list[int]:
    """Every id the model produced for a sequence, the stop token included (what `completion_tokens` counts)."""
    return list(seq.generated) + ([seq.stop_token] if seq.stop_token is not None else [])

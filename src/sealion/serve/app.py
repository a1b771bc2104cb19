"""The OpenAI-compatible app: `create_app(model, ...)` -> FastAPI.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /v1/models/{id}, GET /health,
GET /metrics. Every error leaves in OpenAI's body `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import protocol as P
from .chatio import ChatCodec, ChatInputError
from .guard import Guard
from .metrics import Metrics
from .sampling import SamplingConfig
from .scheduler import AsyncRequest, Event, Scheduler, context_length

log = logging.getLogger("sealion.serve")


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
    default_max_tokens: int = 1024  # chat requests that give no max_tokens
    request_timeout: float = 600.0  # seconds per request, queueing included
    max_prefill_tokens: int = 8192  # prompt tokens prefilled in one forward


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", *, param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers


def _error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(P.error_body(e.message, e.type, param=e.param, code=e.code), status_code=e.status,
                        headers=e.headers)


class ServerState:
    def __init__(self, model, tokenizer, config: ServeConfig):
        self.config = config
        self.tokenizer = tokenizer
        self.backend = getattr(tokenizer, "backend_tokenizer", None)
        self.max_model_len = min(config.max_model_len or context_length(model), context_length(model))
        self.max_prompt_tokens = min(config.max_prompt_tokens or self.max_model_len - 1, self.max_model_len - 1)
        self.scheduler = Scheduler(model, tokenizer, max_batch=config.max_batch,
                                   max_prefill_tokens=config.max_prefill_tokens, max_model_len=self.max_model_len)
        self.codec = ChatCodec(tokenizer)
        self.metrics = Metrics()
        self.created = int(time.time())
        self.defaults = _generation_defaults(model)

    # ------------------------------------------------------------ request preparation

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        if self.backend is not None:  # the Rust tokenizer is safe to call from any thread
            ids = self.backend.encode(text, add_special_tokens=False).ids
        else:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        bos = self.tokenizer.bos_token_id
        if add_special_tokens and bos is not None and (not ids or ids[0] != bos):
            ids = [bos] + ids
        return ids

    def check_model(self, name: str) -> None:
        if name != self.config.model_name:
            raise ApiError(404, f"model {name!r} does not exist; this server serves {self.config.model_name!r}",
                           param="model", code="model_not_found")

    def sampling(self, req: P._SamplingFields, prompt_len: int, budget: int | None, *, chat: bool) -> SamplingConfig:
        room = self.max_model_len - prompt_len
        if prompt_len > self.max_prompt_tokens:
            raise ApiError(400, f"the prompt has {prompt_len} tokens; this server accepts at most "
                           f"{self.max_prompt_tokens}", param="messages" if chat else "prompt",
                           code="context_length_exceeded")
        if budget is None:
            budget = min(self.config.default_max_tokens, room)
        elif prompt_len + budget > self.max_model_len:
            raise ApiError(400, f"this model's maximum context length is {self.max_model_len} tokens; the request "
                           f"asks for {prompt_len + budget} ({prompt_len} in the prompt, {budget} to generate)",
                           param="max_tokens", code="context_length_exceeded")
        d = self.defaults
        temperature = req.temperature if req.temperature is not None else d["temperature"]
        return SamplingConfig(
            max_new_tokens=max(1, budget),
            temperature=float(temperature),
            top_p=float(req.top_p if req.top_p is not None else d["top_p"]),
            top_k=int(req.top_k if req.top_k is not None else d["top_k"]),
            seed=req.seed,
            stop=req.stop_list(),
            stop_token_ids=list(req.stop_token_ids or []) + (self.codec.stop_ids if chat else []),
            skip_special_tokens=not chat,  # chat output is parsed with its control tokens
        )

    def start(self, prompt_ids: list[int], cfg: SamplingConfig) -> AsyncRequest:
        """Admit a request into the scheduler, or refuse it with 429 when every row and queue place is taken."""
        limit = self.config.max_batch + self.config.max_queue
        if self.scheduler.waiting_count + self.scheduler.running_count >= limit:
            raise ApiError(429, f"the server is at capacity ({limit} requests in flight); retry later",
                           "rate_limit_error", code="too_many_requests", headers={"Retry-After": "1"})
        if not self.scheduler.alive:
            raise ApiError(503, "the model thread is not running", "server_error")
        return AsyncRequest(self.scheduler, prompt_ids, cfg, timeout=self.config.request_timeout).start()


def _generation_defaults(model) -> dict[str, Any]:
    """OpenAI semantics: a parameter the request leaves out takes the checkpoint's generation_config value."""
    gen = getattr(model, "generation_config", None)
    do_sample = bool(getattr(gen, "do_sample", False))
    return {
        "temperature": float(getattr(gen, "temperature", None) or 1.0) if do_sample else 0.0,
        "top_p": float(getattr(gen, "top_p", None) or 1.0),
        "top_k": int(getattr(gen, "top_k", None) or 0),
    }


# ---------------------------------------------------------------- running a request


ERROR_STATUS = {"timeout": (408, "timeout_error"), "shutdown": (503, "server_error"),
                "cancelled": (499, "cancelled"), "internal": (500, "server_error")}


async def _collect(request: Request, handle: AsyncRequest) -> tuple[str, Event]:
    """Wait for the whole answer; a client that disconnects frees its row at once."""
    parts: list[str] = []
    try:
        while True:
            try:  # a cancelled Queue.get loses nothing (unlike a cancelled async generator)
                event = await asyncio.wait_for(handle.queue.get(), timeout=0.25)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    raise ApiError(499, "client disconnected", "cancelled") from None
                continue
            if event.kind == "delta":
                parts.append(event.text)
                continue
            if event.kind == "error":
                status, type_ = ERROR_STATUS.get(event.code or "internal", (500, "server_error"))
                raise ApiError(status, event.error or "generation failed", type_, code=event.code)
            parts.append(event.text)
            return "".join(parts), event
    finally:
        handle.cancel()  # a no-op once finished


def _sse(obj: dict | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)}\n\n"


# ---------------------------------------------------------------- app


def create_app(model, tokenizer=None, *, config: ServeConfig | None = None) -> FastAPI:
    """Build the app over an in-process model. `model` is a transformers model (with `tokenizer`), a
    `sealion.models.LoadedModel`, or a model reference string to load."""
    config = config or ServeConfig()
    if isinstance(model, str):
        from .loading import load_for_serving

        model, tokenizer = load_for_serving(model)
    elif tokenizer is None and hasattr(model, "tokenizer"):
        model, tokenizer = model.model, model.tokenizer
    if tokenizer is None:
        raise ValueError("create_app needs a tokenizer with the model")
    model.eval()
    state = ServerState(model, tokenizer, config)
    state.scheduler.start()
    _warm_up(state)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        yield
        state.scheduler.close()

    app = FastAPI(title="sealion serve", version="1", lifespan=lifespan,
                  description="OpenAI-compatible chat and text completions over an in-process model.")
    app.state.sealion = state
    app.state.close = state.scheduler.close  # serve/runner.py calls it on Ctrl-C: fails running requests, joins the model thread
    app.add_middleware(Guard, api_key=config.api_key, max_body_bytes=config.max_body_bytes, metrics=state.metrics)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return _error_response(e)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError):
        return _error_response(_validation_to_api(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        type_ = {404: "not_found_error", 405: "invalid_request_error"}.get(e.status_code, "invalid_request_error")
        return _error_response(ApiError(e.status_code, str(e.detail), type_))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        log.exception("unhandled error")
        return _error_response(ApiError(500, f"internal error: {type(e).__name__}", "server_error"))

    @app.get("/health")
    async def health():
        if not state.scheduler.alive:
            return JSONResponse({"status": "error", "detail": "model thread stopped"}, status_code=503)
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics():
        return PlainTextResponse(state.metrics.render(state.scheduler),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    def _model_card() -> dict:
        return {"id": config.model_name, "object": "model", "created": state.created, "owned_by": "sealion",
                "max_model_len": state.max_model_len}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [_model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str):
        state.check_model(model_id)
        return _model_card()

    @app.post("/v1/completions")
    async def completions(body: P.CompletionRequest, request: Request):
        started = time.monotonic()
        state.check_model(body.model)
        _refuse_unsupported(body)
        prompt_ids = state.encode(body.prompt_text(), add_special_tokens=True)
        cfg = state.sampling(body, len(prompt_ids), body.max_tokens, chat=False)
        handle = state.start(prompt_ids, cfg)
        rid = P.new_id("cmpl")
        if body.stream:
            return _streaming(state, _completion_stream(state, body, rid, handle), "completions", started, handle)
        text, final = await _collect(request, handle)
        _observe(state, "completions", started, handle)
        return {
            "id": rid, "object": "text_completion", "created": P.now(), "model": config.model_name,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": final.finish_reason}],
            "usage": P.usage(final.prompt_tokens, final.completion_tokens),
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: P.ChatCompletionRequest, request: Request):
        started = time.monotonic()
        state.check_model(body.model)
        _refuse_unsupported(body)
        plan = _plan_chat(state, body)
        prompt_ids = plan.prompt_ids + (state.encode(plan.forced_prefix, add_special_tokens=False)
                                        if plan.forced_prefix else [])
        cfg = state.sampling(body, len(prompt_ids), body.token_budget(), chat=True)
        handle = state.start(prompt_ids, cfg)
        rid = P.new_id("chatcmpl")
        if body.stream:
            return _streaming(state, _chat_stream(state, body, plan, rid, handle), "chat", started, handle)
        text, final = await _collect(request, handle)
        _observe(state, "chat", started, handle)
        parsed = state.codec.parse(plan.forced_prefix + text, prompt=plan.prompt)
        message: dict[str, Any] = {"role": "assistant", "content": parsed.content}
        reasoning = parsed.reasoning if plan.thinking else None
        message["reasoning_content"] = reasoning
        message["reasoning"] = reasoning
        finish = final.finish_reason
        if parsed.tool_calls and plan.parse_tools:
            message["tool_calls"] = [_wire_call(c) for c in parsed.tool_calls]
            if not message["content"]:
                message["content"] = None
            finish = "tool_calls"
        elif not message["content"]:
            message["content"] = ""
        return {
            "id": rid, "object": "chat.completion", "created": P.now(), "model": config.model_name,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": P.usage(final.prompt_tokens, final.completion_tokens),
        }

    return app


def _warm_up(state: ServerState) -> None:
    """One tiny generation so the first client does not pay for lazy initialisation."""
    import threading

    done = threading.Event()
    from .scheduler import Sequence

    ids = state.encode("Hello", add_special_tokens=True)
    state.scheduler.submit(Sequence(ids, SamplingConfig(max_new_tokens=2), lambda e: e.kind != "delta" and done.set()))
    done.wait(120)


# ---------------------------------------------------------------- helpers


def _validation_to_api(e: RequestValidationError) -> ApiError:
    errors = e.errors()
    first = errors[0] if errors else {}
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    field = ".".join(loc)
    if first.get("type") == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON: {first.get('msg', '')}", code="invalid_json")
    msg = first.get("msg", "invalid request")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return ApiError(400, f"{field or 'body'}: {msg}{more}", param=field or None, code="invalid_value")


def _refuse_unsupported(body) -> None:
    msg = body.unsupported()
    if msg:
        raise ApiError(400, msg, param=msg.split(":", 1)[0], code="unsupported_parameter")


def _observe(state: ServerState, endpoint: str, started: float, handle: AsyncRequest) -> None:
    state.metrics.observe_latency(endpoint, time.monotonic() - started)
    if handle.seq.first_token_at is not None:
        state.metrics.observe_ttft(handle.seq.first_token_at - handle.seq.enqueued_at)


def _streaming(state: ServerState, gen: AsyncIterator[str], endpoint: str, started: float,
               handle: AsyncRequest) -> StreamingResponse:
    async def body():
        try:
            async for piece in gen:
                yield piece
        finally:
            handle.cancel()  # a no-op when finished; frees the row when the client went away
            _observe(state, endpoint, started, handle)

    # the background task runs even when the client leaves before the body starts
    return StreamingResponse(body(), media_type="text/event-stream", background=BackgroundTask(handle.cancel),
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _stream_error(event: Event) -> str:
    _, type_ = ERROR_STATUS.get(event.code or "internal", (500, "server_error"))
    return _sse(P.error_body(event.error or "generation failed", type_, code=event.code))


async def _completion_stream(state, body, rid, handle: AsyncRequest) -> AsyncIterator[str]:
    name, created = state.config.model_name, P.now()

    def chunk(text: str, finish: str | None) -> dict:
        return {"id": rid, "object": "text_completion", "created": created, "model": name,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}

    async for event in handle.events():
        if event.kind == "delta":
            yield _sse(chunk(event.text, None))
        elif event.kind == "error":
            yield _stream_error(event)
            break
        else:
            yield _sse(chunk(event.text, event.finish_reason))
            if body.stream_options and body.stream_options.include_usage:
                yield _sse({"id": rid, "object": "text_completion", "created": created, "model": name,
                            "choices": [], "usage": P.usage(event.prompt_tokens, event.completion_tokens)})
    yield _sse("[DONE]")


@dataclass
class ChatPlan:
    prompt: str  # the rendered prompt as text (tells the reply parser how it ends)
    prompt_ids: list[int]  # what the model is fed (`chat.render_prompt`: message text never becomes a control id)
    forced_prefix: str  # text appended to the prompt to force a tool call (tool_choice required / named)
    tools: list[dict] | None
    parse_tools: bool
    thinking: bool


def _plan_chat(state: ServerState, body: P.ChatCompletionRequest) -> ChatPlan:
    problem = P.check_role_order(body.messages)
    if problem:
        raise ApiError(400, problem, param="messages", code="invalid_role_order")
    for i, m in enumerate(body.messages):
        if m.has_media():
            raise ApiError(400, f"messages[{i}].content: image and audio parts are not supported by this server",
                           param=f"messages[{i}].content", code="unsupported_content")
    try:
        thinking = body.enable_thinking()
    except ValueError as e:
        raise ApiError(400, str(e), param="chat_template_kwargs") from None
    tools = [t.model_dump(exclude_none=True) for t in body.tools] if body.tools else None
    choice = body.tool_choice
    names = [t["function"]["name"] for t in tools or []]
    forced = ""
    if isinstance(choice, P.NamedToolChoice):
        if choice.function.name not in names:
            raise ApiError(400, f"tool_choice names {choice.function.name!r}, which is not among the tools",
                           param="tool_choice")
        forced = state.codec.forced_call_prefix(choice.function.name)
    elif choice == "required":
        if not tools:
            raise ApiError(400, "tool_choice 'required' needs tools", param="tool_choice")
        forced = state.codec.forced_call_prefix(None)
    render_tools = tools if choice != "none" else None
    try:
        rendered = state.codec.render_prompt(P.to_chat_messages(body.messages), tools=render_tools,
                                             enable_thinking=thinking)
    except ChatInputError as e:
        raise ApiError(400, str(e), param="messages", code="invalid_messages") from None
    return ChatPlan(prompt=rendered.text, prompt_ids=rendered.ids, forced_prefix=forced, tools=render_tools, parse_tools=bool(render_tools),
                    thinking=thinking)


def _wire_call(call: dict) -> dict:
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False)
    return {"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": fn.get("name"), "arguments": args}}


async def _chat_stream(state, body, plan: ChatPlan, rid, handle: AsyncRequest) -> AsyncIterator[str]:
    name, created = state.config.model_name, P.now()

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    parser = state.codec.stream_parser(prompt=plan.prompt)
    calls = 0

    def render_deltas(pieces: list[dict]) -> list[str]:
        nonlocal calls
        out = []
        for piece in pieces:
            if "reasoning" in piece:
                if plan.thinking and piece["reasoning"]:
                    out.append(_sse(chunk({"reasoning_content": piece["reasoning"], "reasoning": piece["reasoning"]})))
            elif "content" in piece:
                if piece["content"]:
                    out.append(_sse(chunk({"content": piece["content"]})))
            elif "tool_call" in piece:
                wire = _wire_call(piece["tool_call"])
                if plan.parse_tools:
                    out.append(_sse(chunk({"tool_calls": [{"index": calls, **wire}]})))
                    calls += 1
        return out

    yield _sse(chunk({"role": "assistant", "content": ""}))
    for piece in render_deltas(parser.feed(plan.forced_prefix)):
        yield piece
    async for event in handle.events():
        if event.kind == "error":
            yield _stream_error(event)
            break
        for piece in render_deltas(parser.feed(event.text)):
            yield piece
        if event.kind == "done":
            for piece in render_deltas(parser.finish()):
                yield piece
            finish = "tool_calls" if calls else event.finish_reason
            yield _sse(chunk({}, finish))
            if body.stream_options and body.stream_options.include_usage:
                yield _sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                            "choices": [], "usage": P.usage(event.prompt_tokens, event.completion_tokens)})
    yield _sse("[DONE]")

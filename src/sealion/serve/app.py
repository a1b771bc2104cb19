"""The OpenAI-compatible app: `create_app(model, ...)` -> FastAPI, an HTTP layer over the engine core.

Routes: POST /v1/chat/completions, POST /v1/completions, POST /tokenize, POST /detokenize, GET /tokenizer_info
(vLLM's), GET /v1/models,
GET /v1/models/{id}, GET /health, GET /metrics. Every error leaves in OpenAI's body
`{"error": {"message", "type", "param", "code"}}`; requests become sequences of the engine's one `EngineCore`
(`state.py`), which decodes for the server exactly as for `sealion generate`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import protocol as P
from .chat_route import chat_completions, plan_chat_async
from .guard import Guard
from .state import ApiError, ServeConfig, ServerState
from .text_route import completions

__all__ = ["ApiError", "ServeConfig", "ServerState", "create_app"]

log = logging.getLogger("sealion.serve")


def _error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(P.error_body(e.message, e.type, param=e.param, code=e.code), status_code=e.status,
                        headers=e.headers)


def create_app(model, tokenizer=None, *, config: ServeConfig | None = None, processor=None) -> FastAPI:
    """Build the app over an in-process model. `model` is a transformers model (with `tokenizer`), a
    `sealion.models.LoadedModel`, or a model reference string to load. `processor` (or the LoadedModel's) lets
    chat requests carry image and audio parts; without one they are refused with a 400 naming the part."""
    config = config or ServeConfig()
    if isinstance(model, str):
        from .loading import load_served

        model = load_served(model)
    if tokenizer is None and hasattr(model, "tokenizer"):  # a LoadedModel: its processor takes media
        processor = getattr(model, "processor", None) if processor is None else processor
        model, tokenizer = model.model, model.tokenizer
    if tokenizer is None:
        raise ValueError("create_app needs a tokenizer with the model")
    model.eval()
    state = ServerState(model, tokenizer, config, processor=processor)
    state.core.start()
    state.warm_up()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        yield
        state.core.close()

    app = FastAPI(title="sealion serve", version="1", lifespan=lifespan,
                  description="OpenAI-compatible chat and text completions over an in-process model.")
    app.state.sealion = state
    app.state.close = state.core.close  # serve/runner.py calls it on Ctrl-C: fails running requests, joins the model thread
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
        if not state.core.alive:
            return JSONResponse({"status": "error", "detail": "model thread stopped"}, status_code=503)
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics():
        return PlainTextResponse(state.metrics.render(state.core),
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
    async def completions_route(body: P.CompletionRequest, request: Request):
        state.check_model(body.model)
        _refuse_unsupported(body)
        return await completions(state, body, request)

    @app.post("/v1/chat/completions")
    async def chat_route(body: P.ChatCompletionRequest, request: Request):
        state.check_model(body.model)
        _refuse_unsupported(body)
        return await chat_completions(state, body, request)

    @app.post("/tokenize")
    async def tokenize(body: P.TokenizeRequest):
        state.check_model(body.model)
        if body.prompt is not None:
            ids = state.encode(body.prompt, add_special_tokens=body.add_special_tokens is not False)
        else:
            try:
                chat = P.ChatCompletionRequest(model=config.model_name, messages=body.messages, tools=body.tools,
                                               add_generation_prompt=body.add_generation_prompt,
                                               continue_final_message=body.continue_final_message,
                                               chat_template_kwargs=body.chat_template_kwargs)
            except ValidationError as e:
                raise RequestValidationError(e.errors()) from None
            _refuse_unsupported(chat)
            ids = (await plan_chat_async(state, chat)).prompt_ids
        out = {"count": len(ids), "max_model_len": state.max_model_len, "tokens": ids, "token_strs": None}
        if body.return_token_strs:
            out["token_strs"] = state.tokenizer.convert_ids_to_tokens(ids)
        return out

    @app.get("/tokenizer_info")
    async def tokenizer_info():
        """vLLM's: what a client needs to tokenize like the server (lm-evaluation-harness's remote tokenizer)."""
        tok = state.tokenizer
        return {"tokenizer_class": type(tok).__name__, "bos_token": tok.bos_token, "eos_token": tok.eos_token,
                "pad_token": tok.pad_token, "unk_token": tok.unk_token, "model_max_length": state.max_model_len,
                "add_bos_token": bool(getattr(tok, "add_bos_token", True)),
                "chat_template": getattr(tok, "chat_template", None)}

    @app.post("/detokenize")
    async def detokenize(body: P.DetokenizeRequest):
        state.check_model(body.model)
        state.check_ids(body.tokens, "tokens")
        return {"prompt": state.decode(body.tokens)}

    return app


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

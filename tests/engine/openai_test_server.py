"""A small real OpenAI-compatible server for the HTTP backend's tests: FastAPI + uvicorn on 127.0.0.1, answering
from a real LocalEngine, with failures injected on demand (HTTP 429/500 for the first N calls)."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from sealion.engine import ChatRequest, CompletionRequest, SamplingParams


def _params(body: dict) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=body.get("max_tokens") or 16, temperature=body.get("temperature"), top_p=body.get("top_p"),
        top_k=body.get("top_k"), seed=body.get("seed"), stop=body.get("stop") or [],
    )


def _sse_completion(engine, body: dict):
    import json

    cid = "cmpl-" + uuid.uuid4().hex
    for d in engine.stream(CompletionRequest(body["prompt"], _params(body))):
        chunk = {"id": cid, "object": "text_completion", "created": int(time.time()), "model": body["model"],
                 "choices": [{"index": 0, "text": d.text,
                              "finish_reason": d.final.finish_reason if d.final else None}]}
        yield f"data: {json.dumps(chunk)}\n\n"
        if d.final:
            usage = {"prompt_tokens": d.final.prompt_tokens, "completion_tokens": d.final.completion_tokens,
                     "total_tokens": d.final.prompt_tokens + d.final.completion_tokens}
            yield f"data: {json.dumps({**chunk, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


def make_app(engine, failures: dict) -> FastAPI:
    app = FastAPI()
    app.state.calls = 0

    def maybe_fail():
        app.state.calls += 1
        if failures.get("remaining", 0) > 0:
            failures["remaining"] -= 1
            return JSONResponse({"error": {"message": "injected", "type": "server_error"}},
                                status_code=failures.get("status", 500))
        return None

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "tiny", "object": "model", "owned_by": "test"}]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        if (fail := maybe_fail()) is not None:
            return fail
        body = await request.json()
        if body.get("stream"):
            return StreamingResponse(_sse_completion(engine, body), media_type="text/event-stream")
        c = engine.complete([CompletionRequest(body["prompt"], _params(body))])[0]
        return {"id": "cmpl-" + uuid.uuid4().hex, "object": "text_completion", "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None}],
                "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                          "total_tokens": c.prompt_tokens + c.completion_tokens}}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        if (fail := maybe_fail()) is not None:
            return fail
        body = await request.json()
        thinking = (body.get("chat_template_kwargs") or {}).get("enable_thinking", False)
        c = engine.chat([ChatRequest(body["messages"], _params(body), tools=body.get("tools"),
                                     enable_thinking=thinking)])[0]
        message = {"role": "assistant", "content": c.content, "reasoning_content": c.reasoning}
        return {"id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": c.finish_reason}],
                "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                          "total_tokens": c.prompt_tokens + c.completion_tokens}}

    return app


class ServerThread:
    def __init__(self, app: FastAPI):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)

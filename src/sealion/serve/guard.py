"""The ASGI layer in front of the routes: API key check, request-body size cap, and status counting.

It runs before FastAPI parses anything, so an unauthenticated or oversized request costs no JSON parsing and
never reaches the model.
"""

from __future__ import annotations

import hmac
import json

from .metrics import Metrics
from .protocol import error_body

OPEN_PATHS = {"/health", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"}


async def send_error(send, status: int, message: str, type_: str, code: str | None = None, headers=()) -> None:
    body = json.dumps(error_body(message, type_, code=code)).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *headers],
    })
    await send({"type": "http.response.body", "body": body})


def endpoint_of(path: str) -> str:
    return {"/v1/chat/completions": "chat", "/v1/completions": "completions"}.get(path, "other")


class Guard:
    def __init__(self, app, *, api_key: str | None, max_body_bytes: int, metrics: Metrics):
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = endpoint_of(scope["path"])

        async def counted_send(message):
            if message["type"] == "http.response.start":
                self.metrics.count(endpoint, message["status"])
            await send(message)

        if self.api_key and scope["path"] not in OPEN_PATHS and not self._authorized(scope):
            return await send_error(counted_send, 401, "invalid or missing API key (send 'Authorization: Bearer KEY')",
                                    "authentication_error", "invalid_api_key",
                                    headers=[(b"www-authenticate", b"Bearer")])
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            return await send_error(counted_send, 413, f"request body is {declared} bytes; the limit is "
                                    f"{self.max_body_bytes}", "invalid_request_error", "request_too_large")
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body, too_big = await self._read_body(receive)
            if too_big:
                return await send_error(counted_send, 413, f"request body exceeds the limit of "
                                        f"{self.max_body_bytes} bytes", "invalid_request_error", "request_too_large")
            receive = _replay(body, receive)
        return await self.app(scope, receive, counted_send)

    def _authorized(self, scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())
            if name == b"x-api-key":
                return hmac.compare_digest(value, self.api_key.encode())
        return False

    async def _read_body(self, receive) -> tuple[bytes, bool]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), False


def _content_length(scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the client's disconnect, as Starlette expects

    return replay

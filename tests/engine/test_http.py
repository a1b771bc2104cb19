"""The HTTP backend against a real local OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import pytest

from sealion.engine import ChatRequest, CompletionRequest, SamplingParams, open_engine
from sealion.engine.http import HTTPEngine
from sealion.engine.local import LocalEngine

from .openai_test_server import ServerThread, make_app

GREEDY = SamplingParams(max_new_tokens=8, temperature=0)


@pytest.fixture(scope="module")
def local(tiny_text_dir):
    return LocalEngine(tiny_text_dir)


@pytest.fixture(scope="module")
def server(local):
    failures: dict = {}
    app = make_app(local, failures)
    with ServerThread(app) as s:
        s.failures = failures
        s.app = app
        yield s


def test_completions_match_local_engine(server, local):
    engine = open_engine(server.url, concurrency=4)
    assert isinstance(engine, HTTPEngine) and engine.model == "tiny"
    prompts = ["Hello", "Ibu kota", "Xin chào", "สวัสดี", "Vanakkam"]
    remote = engine.complete([CompletionRequest(p, GREEDY, id=p) for p in prompts])
    near = local.complete([CompletionRequest(p, GREEDY) for p in prompts])
    assert [r.id for r in remote] == prompts  # request order kept under concurrency
    for r, n in zip(remote, near):
        assert r.text == n.text and r.finish_reason == n.finish_reason == "length"
        assert r.completion_tokens == 8 and r.prompt_tokens == n.prompt_tokens


def test_chat_roundtrip(server, local):
    engine = HTTPEngine(server.url)
    msgs = [{"role": "user", "content": "Hi"}]
    r = engine.chat([ChatRequest(msgs, GREEDY)])[0]
    n = local.chat([ChatRequest(msgs, GREEDY)])[0]
    assert r.content == n.content and r.finish_reason == n.finish_reason


def test_retries_on_500_and_429(server):
    engine = HTTPEngine(server.url, max_retries=3)
    for status in (500, 429):
        server.failures.update(remaining=2, status=status)
        before = server.app.state.calls
        r = engine.complete([CompletionRequest("Hello", GREEDY)])[0]
        assert r.finish_reason == "length" and r.error is None
        assert server.app.state.calls - before == 3  # two failures, then success


def test_failure_after_retries_is_an_error_result_not_an_exception(server):
    engine = HTTPEngine(server.url, max_retries=1)
    server.failures.update(remaining=5, status=500)
    try:
        out = engine.complete([CompletionRequest("Hello", GREEDY)])
    finally:
        server.failures["remaining"] = 0
    assert out[0].finish_reason == "error" and "500" in out[0].error


def test_streaming_completion(server, local):
    engine = HTTPEngine(server.url)
    req = CompletionRequest("Hello", GREEDY)
    deltas = list(engine.stream(req))
    final = deltas[-1].final
    assert final is not None and final.error is None
    assert "".join(d.text for d in deltas) == final.text == local.complete([req])[0].text
    assert final.completion_tokens == 8 and final.finish_reason == "length"
    assert sum(1 for d in deltas if d.text) > 1


def test_timeout_is_reported(tiny_text_dir):
    engine = HTTPEngine("http://127.0.0.1:9", max_retries=0, timeout=2)  # nothing listens on port 9
    engine._model = "x"
    r = engine.complete([CompletionRequest("Hello", GREEDY)])[0]
    assert r.finish_reason == "error" and "Connection" in r.error

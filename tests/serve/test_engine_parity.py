"""The server and the in-process engine give identical token ids and usage for identical requests, greedy and
seeded sampling alike: `sealion serve` is a client of the same engine core, not a second decoder."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from conftest import start_server
from scripted import ASK, GREET, TOOLS

# (prompt, sampling): greedy, and seeded draws with the knobs that change what a draw may pick
REQUESTS = [
    ("Hello", {"temperature": 0}),
    ("Ibu kota Indonesia adalah kota yang " * 4, {"temperature": 0}),
    ("Satu dua tiga", {"temperature": 1.0, "seed": 7}),
    ("Halo", {"temperature": 0.8, "top_p": 0.9, "top_k": 50, "seed": 3}),
    ("Xin chào", {"temperature": 1.3, "top_k": 5, "seed": 12345}),
]
MAX_TOKENS = 10


@pytest.mark.parametrize("which", ["gemma4", "gemma3"])
def test_completions_equal_the_engine(which, tiny_gemma4_model, tiny_gemma3_model):
    from sealion.engine import CompletionRequest, LocalEngine, SamplingParams

    model, tok = tiny_gemma4_model if which == "gemma4" else tiny_gemma3_model
    engine = LocalEngine.from_model(model, tok)
    try:  # the engine runs them as one batch; the server gets them concurrently
        expected = engine.complete([CompletionRequest(prompt=p, params=SamplingParams(max_new_tokens=MAX_TOKENS, **s))
                                    for p, s in REQUESTS])
    finally:
        engine.close()
    srv = start_server((model, tok))
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=120)

        def ask(request):
            prompt, sampling = request
            extra = {"return_token_ids": True}
            if "top_k" in sampling:
                extra["top_k"] = sampling["top_k"]
            knobs = {k: v for k, v in sampling.items() if k != "top_k"}
            return client.completions.create(model="tiny", prompt=prompt, max_tokens=MAX_TOKENS, extra_body=extra,
                                             **knobs)

        with ThreadPoolExecutor(len(REQUESTS)) as pool:
            answers = list(pool.map(ask, REQUESTS))
    finally:
        srv.stop()
    for (prompt, _), want, got in zip(REQUESTS, expected, answers):
        choice = got.choices[0]
        stop = choice.model_extra["token_ids"][len(want.token_ids):]  # the stop token, which usage counts
        assert choice.model_extra["token_ids"][: len(want.token_ids)] == want.token_ids, prompt
        assert len(stop) <= 1 and choice.finish_reason == want.finish_reason
        assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (want.prompt_tokens,
                                                                           want.completion_tokens), prompt


def test_chat_equals_the_engine(scripted_model, client):
    """Chats, tools included: the same reply, finish reason and usage from the engine's chat() and the server."""
    from sealion.engine import ChatRequest, LocalEngine, SamplingParams

    model, tok = scripted_model
    cases = [(GREET, None, {"temperature": 0}), (ASK, TOOLS, {"temperature": 0}),
             ([{"role": "user", "content": "Tell me a story"}], None, {"temperature": 1.0, "seed": 5})]
    engine = LocalEngine.from_model(model, tok)
    try:
        expected = engine.chat([ChatRequest(messages=m, tools=t, params=SamplingParams(max_new_tokens=24, **s))
                                for m, t, s in cases])
    finally:
        engine.close()
    for (messages, tools, sampling), want in zip(cases, expected):
        r = client.chat.completions.create(model="tiny", messages=messages, tools=tools, max_tokens=24,
                                           extra_body={"return_token_ids": True}, **sampling)
        choice = r.choices[0]
        assert choice.model_extra["token_ids"][: len(want.token_ids)] == want.token_ids
        assert choice.message.content == (want.content or None if want.tool_calls else want.content or "")
        assert choice.finish_reason == want.finish_reason
        assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (want.prompt_tokens, want.completion_tokens)

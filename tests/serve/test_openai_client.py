"""The official `openai` client against a real server on 127.0.0.1 over a scripted tiny Gemma 4."""

from __future__ import annotations

import json

import httpx
import pytest
from scripted import AFTER_TOOL, ASK, GREET, TOOLS


def test_plain_chat(client):
    r = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=20)
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there!"
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    # thinking off: no reasoning field content
    assert getattr(choice.message, "reasoning_content", None) is None
    assert r.usage.completion_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")


def test_streamed_chat_matches_plain(client):
    stream = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=20, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there!"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_thinking_on_returns_reasoning(client):
    r = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=40,
                                       extra_body={"chat_template_kwargs": {"enable_thinking": True}})
    msg = r.choices[0].message
    assert msg.content == "Hello there!"
    assert msg.reasoning_content == "The user greets me."
    assert msg.model_extra["reasoning"] == "The user greets me."


def test_reasoning_effort_maps_to_thinking(client):
    r = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=40,
                                       reasoning_effort="high")
    assert r.choices[0].message.reasoning_content == "The user greets me."


def test_thinking_streamed(client):
    stream = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=40, stream=True,
                                            extra_body={"chat_template_kwargs": {"enable_thinking": True}})
    reasoning, content = "", ""
    for c in stream:
        delta = c.choices[0].delta
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        content += delta.content or ""
    assert reasoning == "The user greets me."
    assert content == "Hello there!"


def test_tool_call_round_trip(client):
    r = client.chat.completions.create(model="tiny", messages=ASK, tools=TOOLS, temperature=0, max_tokens=40)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Hanoi"}
    assert call.id
    # send the call and its result back, as an agent loop does
    history = ASK + [choice.message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "31C"}]
    r2 = client.chat.completions.create(model="tiny", messages=history, tools=TOOLS, temperature=0, max_tokens=40)
    assert r2.choices[0].message.content == "It is 31C in Hanoi."
    assert r2.choices[0].finish_reason == "stop"


def test_tool_call_streamed(client):
    stream = client.chat.completions.create(model="tiny", messages=ASK, tools=TOOLS, temperature=0, max_tokens=40,
                                            stream=True)
    calls, finish, content = {}, None, ""
    for c in stream:
        delta = c.choices[0].delta
        content += delta.content or ""
        for tc in delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = tc.id or slot["id"]
            slot["name"] += tc.function.name or ""
            slot["arguments"] += tc.function.arguments or ""
        finish = c.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert content == ""
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Hanoi"}


def test_tool_choice_none_hides_tools(client):
    r = client.chat.completions.create(model="tiny", messages=AFTER_TOOL, tools=TOOLS, tool_choice="none",
                                       temperature=0, max_tokens=10)
    assert r.choices[0].message.tool_calls is None


def test_tool_choice_named_forces_the_call(client):
    r = client.chat.completions.create(model="tiny", messages=ASK, tools=TOOLS, temperature=0, max_tokens=40,
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}})
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Hanoi"}


def test_seed_reproducible(client):
    def sample(seed):
        r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Tell me a story"}],
                                           temperature=1.0, top_p=1.0, max_tokens=12, seed=seed)
        return r.choices[0].message.content

    a, b, c = sample(7), sample(7), sample(8)
    assert a == b
    assert a != c  # a different seed draws different tokens from this near-uniform model


def test_stop_string_cuts_output(client):
    r = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=20, stop=["there"])
    assert r.choices[0].message.content == "Hello"
    assert r.choices[0].finish_reason == "stop"


def test_max_tokens_gives_length(client):
    r = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_completion_tokens=1)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 1


def test_completions_plain_and_streamed(client):
    r = client.completions.create(model="tiny", prompt="Hello", max_tokens=5, temperature=0)
    assert r.choices[0].finish_reason in ("length", "stop") and r.usage.prompt_tokens >= 1
    chunks = list(client.completions.create(model="tiny", prompt="Hello", max_tokens=5, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == r.choices[0].text


def test_models_and_health(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}


def test_metrics_exposition(client, server):
    client.completions.create(model="tiny", prompt="Hi", max_tokens=2, temperature=0)
    text = httpx.get(server.url + "/metrics").text
    assert 'sealion_requests_total{endpoint="completions",status="200"}' in text
    for name in ("sealion_queue_depth", "sealion_generation_tokens_total", "sealion_request_latency_seconds_bucket"):
        assert name in text
    generated = [line for line in text.splitlines() if line.startswith("sealion_generation_tokens_total ")]
    assert int(generated[0].split()[1]) > 0


def test_unknown_model_is_404(client):
    import openai

    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=GREET)
    assert e.value.body["code"] == "model_not_found"

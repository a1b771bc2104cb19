"""vLLM's extensions to the OpenAI surface, through the real `openai` client and plain HTTP: /tokenize and
/detokenize, add_generation_prompt, continue_final_message, include_stop_str_in_output, chat_template_kwargs,
stream_options.include_usage, a bounded default max_tokens, and a 400 naming the field for what cannot be honoured."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import start_server
from scripted import GREET


def _post(server, path, body):
    return httpx.post(server.url + path, json=body, timeout=120)


def test_tokenize_prompt_and_detokenize(server, scripted_model):
    _, tok = scripted_model
    text = "Selamat pagi, dunia"
    r = _post(server, "/tokenize", {"model": "tiny", "prompt": text}).json()
    assert r["tokens"] == tok(text).input_ids and r["count"] == len(r["tokens"])
    assert r["max_model_len"] == 1024
    bare = _post(server, "/tokenize", {"prompt": text, "add_special_tokens": False, "return_token_strs": True}).json()
    assert bare["tokens"] == tok(text, add_special_tokens=False).input_ids
    assert bare["token_strs"] == tok.convert_ids_to_tokens(bare["tokens"])
    back = _post(server, "/detokenize", {"model": "tiny", "tokens": bare["tokens"]}).json()
    assert back == {"prompt": tok.decode(bare["tokens"])}


def test_tokenize_messages_follows_the_template(server, scripted_model):
    """The messages form equals transformers' apply_chat_template, with and without the generation prompt."""
    _, tok = scripted_model
    for add in (True, False):
        r = _post(server, "/tokenize", {"model": "tiny", "messages": GREET, "add_generation_prompt": add}).json()
        want = tok.apply_chat_template(GREET, add_generation_prompt=add, tokenize=True)
        assert r["tokens"] == list(getattr(want, "input_ids", want)), add
    with_prompt = _post(server, "/tokenize", {"messages": GREET}).json()["tokens"]
    without = _post(server, "/tokenize", {"messages": GREET, "add_generation_prompt": False}).json()["tokens"]
    assert len(with_prompt) > len(without)


@pytest.mark.parametrize("body, param", [
    ({"model": "tiny"}, None),  # neither prompt nor messages
    ({"prompt": "a", "messages": GREET}, None),
    ({"model": "other", "prompt": "a"}, "model"),
    ({"messages": GREET, "continue_final_message": True}, "continue_final_message"),
])
def test_tokenize_refusals(server, body, param):
    r = _post(server, "/tokenize", body)
    assert 400 <= r.status_code < 500, r.text
    if param:
        assert r.json()["error"]["param"] == param


def test_detokenize_out_of_vocabulary_is_400(server):
    r = _post(server, "/detokenize", {"tokens": [1, 10**9]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tokens"


def test_continue_final_message(client, server, scripted_model):
    """The model continues the final assistant message instead of opening a new turn."""
    messages = GREET + [{"role": "assistant", "content": "Hello"}]
    ids = _post(server, "/tokenize", {"messages": messages, "add_generation_prompt": False,
                                      "continue_final_message": True}).json()["tokens"]
    closed = _post(server, "/tokenize", {"messages": messages, "add_generation_prompt": False}).json()["tokens"]
    assert closed[: len(ids)] == ids and len(closed) > len(ids)  # the open form stops before the turn end
    r = client.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=10,
                                       extra_body={"add_generation_prompt": False, "continue_final_message": True,
                                                   "return_token_ids": True})
    # what the scripted model writes after "Hello" (the reply parser trims the content's leading space)
    tok = scripted_model[1]
    assert tok.decode(r.choices[0].model_extra["token_ids"], skip_special_tokens=True) == " there!"
    assert r.choices[0].message.content == "there!"


def test_include_stop_str_in_output(client):
    kept = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=20, stop=["there"],
                                          extra_body={"include_stop_str_in_output": True})
    assert kept.choices[0].message.content == "Hello there"
    assert kept.choices[0].finish_reason == "stop"


def test_chat_template_kwargs_reach_the_template(server):
    on = _post(server, "/tokenize", {"messages": GREET, "chat_template_kwargs": {"enable_thinking": True}}).json()
    off = _post(server, "/tokenize", {"messages": GREET}).json()
    assert on["tokens"] != off["tokens"]


def test_completions_include_usage(client):
    chunks = list(client.completions.create(model="tiny", prompt="Hello", max_tokens=3, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    assert all(c.usage is None for c in chunks[:-1])


def test_default_max_tokens_is_bounded(tiny_gemma4_model):
    """A chat without max_tokens on a model that never stops ends at the server's default, not at the context."""
    import openai

    srv = start_server(tiny_gemma4_model, default_max_tokens=40)
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=60)
        started = time.monotonic()
        r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}],
                                           temperature=0)
        assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 40
        assert time.monotonic() - started < 30
    finally:
        srv.stop()
    from sealion.serve import ServeConfig

    assert ServeConfig().default_max_tokens == 1024  # never the whole context (131k tokens on Gemma 4)


@pytest.mark.parametrize("path, extra, param", [
    ("/v1/chat/completions", {"logit_bias": {"1": 5}}, "logit_bias"),
    ("/v1/chat/completions", {"top_logprobs": 2}, "top_logprobs"),
    ("/v1/chat/completions", {"top_logprobs": 21, "logprobs": True}, "logprobs"),
    ("/v1/chat/completions", {"echo": True}, "echo"),
    ("/v1/chat/completions", {"continue_final_message": True}, "continue_final_message"),
    ("/v1/chat/completions", {"chat_template_kwargs": {"enable_thinking": "yes"}}, "chat_template_kwargs"),
    ("/v1/chat/completions", {"max_completion_tokens": 0}, "max_completion_tokens"),
    ("/v1/chat/completions", {"frequency_penalty": 0.5}, "frequency_penalty"),
    ("/v1/completions", {"suffix": "x"}, "suffix"),
    ("/v1/completions", {"best_of": 3}, "best_of"),
    ("/v1/completions", {"logprobs": 50}, "logprobs"),
    ("/v1/completions", {"prompt_logprobs": -1}, "prompt_logprobs"),
    ("/v1/completions", {"max_tokens": 0}, "max_tokens"),
    ("/v1/completions", {"prompt": [1, 10**9]}, "prompt"),
    ("/v1/completions", {"top_p": 0}, "top_p"),
    ("/v1/completions", {"stop": [""]}, "stop"),
])
def test_what_cannot_be_honoured_is_400_naming_the_field(server, path, extra, param):
    base = {"model": "tiny", "messages": GREET} if "chat" in path else {"model": "tiny", "prompt": "Hi"}
    r = _post(server, path, {**base, "max_tokens": 2, **extra} if "max_tokens" not in extra else {**base, **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.json()

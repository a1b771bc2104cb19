"""Log-probs through the real `openai` client, against log_softmax of the transformers model's own logits.

Covers vLLM's `prompt_logprobs` on token-id prompts (a served teacher: `max_tokens` 0), `echo` + `logprobs` as
lm-evaluation-harness's local-completions loglikelihood sends it, generated-token `logprobs` on completions and
`logprobs`/`top_logprobs` on chat.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import start_server
from scripted import GREET

ATOL = 1e-3  # the server decodes with a KV cache; the reference is one full forward


def _reference(model, ids: list[int]) -> torch.Tensor:
    """[T, V] log-probs: row t is the distribution of the token after ids[: t + 1]."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits
    return torch.log_softmax(logits[0].float(), dim=-1)


def _greedy_continuation(model, ids: list[int], n: int) -> list[int]:
    out = list(ids)
    for _ in range(n):
        out.append(int(_reference(model, out)[-1].argmax()))
    return out[len(ids):]


@pytest.fixture(scope="module")
def random_server(tiny_gemma4_model):
    srv = start_server(tiny_gemma4_model)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def rclient(random_server):
    import openai

    return openai.OpenAI(base_url=random_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_prompt_logprobs_on_token_ids_with_max_tokens_0(rclient, tiny_gemma4_model):
    model, tok = tiny_gemma4_model
    ids = tok("Selamat pagi, apa kabar hari ini?").input_ids
    r = rclient.completions.create(model="tiny", prompt=ids, max_tokens=0, extra_body={"prompt_logprobs": 3})
    choice = r.choices[0]
    entries = choice.model_extra["prompt_logprobs"]
    assert entries[0] is None and len(entries) == len(ids)
    ref = _reference(model, ids)
    for t in range(1, len(ids)):
        row, entry = ref[t - 1], entries[t]
        mine = entry[str(ids[t])]
        assert math.isclose(mine["logprob"], float(row[ids[t]]), abs_tol=ATOL)
        assert mine["rank"] == int((row > row[ids[t]]).sum()) + 1
        best = torch.topk(row, 3)
        assert {str(i) for i in best.indices.tolist()} <= set(entry) and len(entry) <= 4
        for i, v in zip(best.indices.tolist(), best.values.tolist()):
            assert math.isclose(entry[str(i)]["logprob"], v, abs_tol=ATOL)
    assert choice.text == "" and choice.finish_reason == "length"
    assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == 0


def test_prompt_logprobs_for_several_token_id_prompts(rclient, tiny_gemma4_model):
    """A batch of token-id prompts (a teacher capture's request): one choice per prompt, in order."""
    model, tok = tiny_gemma4_model
    prompts = [tok("Halo dunia").input_ids, tok("Xin chào thế giới, bạn khỏe không").input_ids]
    r = rclient.completions.create(model="tiny", prompt=prompts, max_tokens=1, temperature=0,
                                   extra_body={"prompt_logprobs": 0})
    assert [c.index for c in r.choices] == [0, 1]
    for ids, choice in zip(prompts, r.choices):
        ref = _reference(model, ids)
        entries = choice.model_extra["prompt_logprobs"]
        got = [entries[t][str(ids[t])]["logprob"] for t in range(1, len(ids))]
        want = [float(ref[t - 1, ids[t]]) for t in range(1, len(ids))]
        assert got == pytest.approx(want, abs=ATOL)
    assert r.usage.prompt_tokens == sum(map(len, prompts)) and r.usage.completion_tokens == 2


@pytest.mark.parametrize("greedy_continuation", [False, True])
def test_echo_logprobs_as_lm_eval_loglikelihood_reads_them(rclient, tiny_gemma4_model, greedy_continuation):
    model, tok = tiny_gemma4_model
    ctx = tok("Ibu kota Indonesia").input_ids
    cont = _greedy_continuation(model, ctx, 3) if greedy_continuation else tok(
        " adalah Jakarta", add_special_tokens=False).input_ids
    ids = ctx + cont
    r = rclient.completions.create(model="tiny", prompt=[ids], max_tokens=1, echo=True, logprobs=1, temperature=0,
                                   seed=1234)
    lp = r.choices[0].logprobs
    assert len(lp.token_logprobs) == len(ids) + 1 and lp.token_logprobs[0] is None
    ref = _reference(model, ids)
    # lm-evaluation-harness's parse_logprobs: the continuation's tokens, without the one generated token
    got = sum(lp.token_logprobs[len(ctx):-1])
    want = sum(float(ref[t - 1, ids[t]]) for t in range(len(ctx), len(ids)))
    assert math.isclose(got, want, abs_tol=ATOL)
    is_greedy = all(t == max(top.values()) for t, top in
                    zip(lp.token_logprobs[len(ctx):-1], lp.top_logprobs[len(ctx):-1]))
    assert is_greedy == greedy_continuation
    # the one generated token is the greedy pick after the whole prompt; echo puts the prompt's text first
    generated = int(ref[-1].argmax())
    assert math.isclose(lp.token_logprobs[-1], float(ref[-1, generated]), abs_tol=ATOL)
    assert r.choices[0].text == tok.decode(ids, skip_special_tokens=True) + tok.decode([generated],
                                                                                       skip_special_tokens=True)


def test_generated_logprobs_on_completions(rclient, tiny_gemma4_model):
    model, tok = tiny_gemma4_model
    ids = tok("Satu dua tiga").input_ids
    r = rclient.completions.create(model="tiny", prompt=ids, max_tokens=6, temperature=0, logprobs=2,
                                   extra_body={"return_token_ids": True})
    choice = r.choices[0]
    generated = choice.model_extra["token_ids"]
    assert choice.model_extra["prompt_token_ids"] == ids
    assert generated == _greedy_continuation(model, ids, 6)
    ref = _reference(model, ids + generated)
    for i, g in enumerate(generated):
        row = ref[len(ids) - 1 + i]
        assert math.isclose(choice.logprobs.token_logprobs[i], float(row[g]), abs_tol=ATOL)
        top = sorted(choice.logprobs.top_logprobs[i].values(), reverse=True)
        assert top[:2] == pytest.approx(torch.topk(row, 2).values.tolist(), abs=ATOL)
    assert choice.logprobs.tokens == [tok.decode([g]) for g in generated]


def test_streamed_logprobs_equal_plain(rclient):
    body = dict(model="tiny", prompt="Halo", max_tokens=5, temperature=0, logprobs=1)
    plain = rclient.completions.create(**body).choices[0].logprobs
    chunks = list(rclient.completions.create(**body, stream=True, stream_options={"include_usage": True}))
    streamed = [x for c in chunks if c.choices and c.choices[0].logprobs for x in c.choices[0].logprobs.token_logprobs]
    assert streamed == pytest.approx(plain.token_logprobs, abs=1e-6)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5


def test_n_choices_seeded_and_greedy(rclient):
    body = dict(model="tiny", prompt="Halo", max_tokens=8, temperature=1.0, n=2, seed=11,
                extra_body={"return_token_ids": True})
    a = rclient.completions.create(**body)
    b = rclient.completions.create(**body)
    ids = [c.model_extra["token_ids"] for c in a.choices]
    assert [c.index for c in a.choices] == [0, 1]
    assert ids == [c.model_extra["token_ids"] for c in b.choices]  # seeded: reproducible
    assert ids[0] != ids[1]  # and the two choices draw differently
    assert a.usage.completion_tokens == 16
    greedy = rclient.completions.create(model="tiny", prompt="Halo", max_tokens=8, temperature=0, n=3)
    assert len({c.text for c in greedy.choices}) == 1


# ---------------------------------------------------------------- chat, on the scripted model


def test_chat_logprobs_and_top_logprobs(client, scripted_model):
    model, tok = scripted_model
    r = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=20, logprobs=True,
                                       top_logprobs=2, extra_body={"return_token_ids": True})
    choice = r.choices[0]
    assert choice.message.content == "Hello there!"
    prompt_ids = r.model_extra["prompt_token_ids"]
    reference_prompt = tok.apply_chat_template(GREET, add_generation_prompt=True, tokenize=True)
    reference_prompt = getattr(reference_prompt, "input_ids", reference_prompt)
    assert prompt_ids == list(reference_prompt)
    generated = choice.model_extra["token_ids"]
    assert generated == _greedy_continuation(model, prompt_ids, len(generated))
    ref = _reference(model, prompt_ids + generated)
    content = choice.logprobs.content
    assert len(content) == len(generated)  # the turn-end token included, as vLLM reports it
    for i, (entry, g) in enumerate(zip(content, generated)):
        row = ref[len(prompt_ids) - 1 + i]
        assert entry.token == tok.decode([g]) and bytes(entry.bytes) == entry.token.encode()
        assert math.isclose(entry.logprob, float(row[g]), abs_tol=ATOL)
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx(torch.topk(row, 2).values.tolist(),
                                                                         abs=ATOL)
    assert "".join(e.token for e in content[:-1]) == "Hello there!"


def test_chat_prompt_logprobs(client, scripted_model):
    model, _ = scripted_model
    r = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=2,
                                       extra_body={"prompt_logprobs": 1, "return_token_ids": True})
    ids = r.model_extra["prompt_token_ids"]
    entries = r.model_extra["prompt_logprobs"]
    ref = _reference(model, ids)
    assert entries[0] is None and len(entries) == len(ids)
    assert [entries[t][str(ids[t])]["logprob"] for t in range(1, len(ids))] == pytest.approx(
        [float(ref[t - 1, ids[t]]) for t in range(1, len(ids))], abs=ATOL)


def test_chat_streamed_logprobs_equal_plain(client):
    body = dict(model="tiny", messages=GREET, temperature=0, max_tokens=20, logprobs=True, top_logprobs=1)
    plain = client.chat.completions.create(**body).choices[0].logprobs.content
    chunks = list(client.chat.completions.create(**body, stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [(e.token, round(e.logprob, 5)) for e in streamed] == [(e.token, round(e.logprob, 5)) for e in plain]


def test_prompt_logprobs_of_a_one_token_prompt(rclient):
    r = rclient.completions.create(model="tiny", prompt=[2], max_tokens=1, temperature=0,
                                   extra_body={"prompt_logprobs": 2})
    assert r.choices[0].model_extra["prompt_logprobs"] == [None]
    assert r.usage.completion_tokens == 1

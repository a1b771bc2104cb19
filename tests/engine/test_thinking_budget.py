"""The thinking budget: the core closes Gemma 4's thought channel itself after N tokens, then the answer gets its
own max_tokens; usage counts reasoning tokens apart. The model is scripted by a logits processor that opens the
channel and would think forever."""

from __future__ import annotations

import torch

from sealion.engine import ChatRequest, SamplingParams
from sealion.engine.local import LocalEngine
from sealion.engine.prompting import render_chat

OPEN, CLOSE, TURN_END = 100, 101, 106
THOUGHT = 10979  # "Hi"
ANSWER = [236764, 1902]  # ",", " there"
MESSAGES = [{"role": "user", "content": "Halo?"}]


class Script:
    """Open the channel, think `THOUGHT` until someone closes it, then answer ANSWER (or forever) and end the turn."""

    def __init__(self, prompt_len: int, endless_answer: bool = False):
        self.prompt_len, self.endless = prompt_len, endless_answer

    def __call__(self, input_ids, scores):
        made = input_ids[0, self.prompt_len:].tolist()
        if not made:
            tok = OPEN
        elif CLOSE not in made:
            tok = THOUGHT
        else:
            said = len(made) - made.index(CLOSE) - 1
            tok = ANSWER[said % 2] if self.endless else (ANSWER[said] if said < len(ANSWER) else TURN_END)
        forced = torch.full_like(scores, -1e9)
        forced[:, tok] = 0
        return forced


def _engine(path, endless=False):
    probe = LocalEngine(path, prefix_cache_mb=0)
    prompt = render_chat(probe.tokenizer, MESSAGES, enable_thinking=True)
    n = len(probe.encode(prompt))
    return LocalEngine(path, prefix_cache_mb=0, logits_processors=[Script(n, endless)])


def test_budget_closes_the_channel_at_n_and_the_answer_follows(tiny_text_dir):
    engine = _engine(tiny_text_dir)
    for budget in (1, 5, 12):
        req = ChatRequest(MESSAGES, SamplingParams(max_new_tokens=4, temperature=0, thinking_budget=budget),
                          enable_thinking=True)
        out = engine.chat([req])[0]
        ids = out.token_ids
        assert ids[0] == OPEN and ids[budget] == CLOSE and set(ids[1:budget]) <= {THOUGHT}  # closed at exactly N
        assert ids[budget + 1:] == ANSWER and out.finish_reason == "stop"
        assert out.reasoning_tokens == budget + 1  # the channel's tokens, both markers included
        assert out.content.strip() == engine.tokenizer.decode(ANSWER).strip()
        assert out.completion_tokens == len(ids) + 1  # + the turn end it stopped on


def test_the_answer_has_its_own_max_tokens(tiny_text_dir):
    engine = _engine(tiny_text_dir, endless=True)
    req = ChatRequest(MESSAGES, SamplingParams(max_new_tokens=3, temperature=0, thinking_budget=6),
                      enable_thinking=True)
    out = engine.chat([req])[0]
    assert out.token_ids[6] == CLOSE and len(out.token_ids) == 6 + 1 + 3 and out.finish_reason == "length"


def test_without_a_budget_max_tokens_covers_thought_and_answer(tiny_text_dir):
    engine = _engine(tiny_text_dir)
    req = ChatRequest(MESSAGES, SamplingParams(max_new_tokens=10, temperature=0), enable_thinking=True)
    out = engine.chat([req])[0]
    assert out.token_ids == [OPEN] + [THOUGHT] * 9 and out.finish_reason == "length"
    assert out.reasoning_tokens == 10 and not (out.content or "").strip()


def test_reasoning_effort_maps_to_a_budget(tiny_text_dir):
    from sealion.engine.thinking import EFFORT_BUDGETS

    engine = _engine(tiny_text_dir)
    req = ChatRequest(MESSAGES, SamplingParams(max_new_tokens=4, temperature=0), enable_thinking=True,
                      reasoning_effort="low")
    seq = engine._chat_seq(req)
    assert seq.thinking.budget == EFFORT_BUDGETS["low"]

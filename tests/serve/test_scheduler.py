"""Continuous batching: rows joining and leaving a running batch decode exactly as they would alone."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from sealion.serve.sampling import SamplingConfig
from sealion.serve.scheduler import Scheduler, Sequence, _safe_prefix

PROMPTS = ["Hello", "The capital of Indonesia is a city that " * 3, "Satu dua tiga empat lima enam tujuh delapan",
           "x", "Ibu kota " * 12, "Selamat pagi"]
N = 12


def _solo(model, tok, prompt: str) -> list[int]:
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=N, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def _run_staggered(model, tok, prompts, max_batch=3, gap=0.02):
    sched = Scheduler(model, tok, max_batch=max_batch, eos_token_ids=[10**9]).start()
    results, done = {}, {}
    try:
        for i, p in enumerate(prompts):
            done[i] = threading.Event()

            def emit(e, i=i):
                if e.kind != "delta":
                    results[i] = e
                    done[i].set()

            sched.submit(Sequence(tok(p).input_ids, SamplingConfig(max_new_tokens=N), emit))
            time.sleep(gap * i)  # later prompts join a batch that is already decoding
        for ev in done.values():
            assert ev.wait(300)
    finally:
        sched.close()
    return results, sched


@pytest.mark.parametrize("which", ["gemma4", "gemma3"])
def test_batched_greedy_equals_solo(which, scripted_model, tiny_gemma3_model):
    model, tok = scripted_model if which == "gemma4" else tiny_gemma3_model
    reference = [_solo(model, tok, p) for p in PROMPTS]
    results, sched = _run_staggered(model, tok, PROMPTS)
    for i in range(len(PROMPTS)):
        assert results[i].kind == "done", results[i].error
        assert results[i].token_ids == reference[i], f"prompt {i} diverged from its solo run"
        assert results[i].finish_reason == "length"
    # rows shared forward passes: fewer decode steps than tokens generated
    assert sched.batch_rows_total > sched.forward_steps_total


def test_cancel_frees_the_row(scripted_model):
    model, tok = scripted_model
    sched = Scheduler(model, tok, max_batch=1, eos_token_ids=[10**9]).start()
    events = {"a": [], "b": []}
    done_b = threading.Event()
    try:
        a = Sequence(tok("Hello").input_ids, SamplingConfig(max_new_tokens=10_000), events["a"].append)
        b = Sequence(tok("Hi").input_ids, SamplingConfig(max_new_tokens=3),
                     lambda e: (events["b"].append(e), e.kind != "delta" and done_b.set()))
        sched.submit(a)
        sched.submit(b)  # waits: the only row is taken
        time.sleep(0.3)
        assert not done_b.is_set()
        a.cancel()
        assert done_b.wait(120), "the cancelled row was not given to the waiting request"
        assert events["a"][-1].kind == "error" and events["a"][-1].code == "cancelled"
        assert events["b"][-1].completion_tokens == 3
    finally:
        sched.close()


def test_deadline_ends_a_request(scripted_model):
    model, tok = scripted_model
    sched = Scheduler(model, tok, max_batch=2, eos_token_ids=[10**9]).start()
    got, done = [], threading.Event()
    try:
        sched.submit(Sequence(tok("Hello").input_ids, SamplingConfig(max_new_tokens=10_000),
                              lambda e: (got.append(e), e.kind != "delta" and done.set()), timeout=0.5))
        assert done.wait(120)
        assert got[-1].code == "timeout"
    finally:
        sched.close()


def test_safe_prefix_holds_back_partial_stop_and_broken_chars():
    assert _safe_prefix("Hello wor", ["world"]) == len("Hello ")
    assert _safe_prefix("Hello", ["xyz"]) == 5
    assert _safe_prefix("ab\ufffd", []) == 2


def test_sampling_respects_top_k():
    from sealion.serve.sampling import make_generator, sample_row

    logits = torch.tensor([0.0, 5.0, 4.9, -1.0, 4.8])
    g = make_generator(0)
    draws = {sample_row(logits, SamplingConfig(temperature=5.0, top_k=2), g) for _ in range(200)}
    assert draws == {1, 2}
    draws = {sample_row(logits, SamplingConfig(temperature=1.0, top_p=0.01), g) for _ in range(50)}
    assert draws == {1}

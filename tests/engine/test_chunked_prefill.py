"""Long prompts are prefilled in chunks: the result must be the one-pass result, across sliding-window layers too."""

from __future__ import annotations

import pytest
import torch

from sealion.engine import CompletionRequest, SamplingParams
from sealion.engine.local import LocalEngine
from sealion.engine.prefill import chunk_bounds

# ~250 tokens on the demo tokenizer: many times the tiny models' sliding window (16)
LONG = ("Pada suatu hari yang cerah, seorang petani tua berjalan ke pasar membawa sekeranjang mangga. "
        "Ông già đi chợ vào buổi sáng. ชาวนาเดินไปตลาด. ") * 6
GREEDY = SamplingParams(max_new_tokens=10, temperature=0)


def test_chunk_bounds_split_only_past_the_budget():
    assert chunk_bounds(100, 1, 100, 4) == [(0, 100)]
    assert chunk_bounds(10, 1, 10, 4, chunk=4) == [(0, 4), (4, 8), (8, 10)]
    spans = chunk_bounds(32768, 1, 32768, 4)  # a 32k prompt: each call's scores within the budget
    assert spans[0][0] == 0 and spans[-1][1] == 32768 and len(spans) > 1
    assert all(b == c for (_, b), (c, _) in zip(spans, spans[1:]))
    assert max(b - a for a, b in spans) * 32768 * 4 <= 1 << 26


def _generate_ids(engine, prompt: str) -> list[int]:
    ids = engine.encode(prompt)
    out = engine.model.generate(torch.tensor([ids]), attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
                                max_new_tokens=GREEDY.max_new_tokens, do_sample=False)
    gen = out[0, len(ids):].tolist()
    for i, t in enumerate(gen):
        if t in engine.eos_ids:
            return gen[:i]
    return gen


@pytest.mark.parametrize("kind", ["gemma4", "gemma3"])
@pytest.mark.parametrize("chunk", [7, 64])
def test_chunked_prefill_equals_generate(kind, chunk, tiny_text_dir, tiny_gemma3_dir):
    engine = LocalEngine(tiny_text_dir if kind == "gemma4" else tiny_gemma3_dir, prefix_cache_mb=0)
    prompts = [LONG, LONG[:200] + " Lalu?"]
    want = [_generate_ids(engine, p) for p in prompts]  # transformers, one pass
    assert len(engine.encode(LONG)) > 10 * chunk or chunk == 64
    engine.prefill_chunk = chunk
    steps = engine.core.forward_steps_total
    solo = [engine.complete([CompletionRequest(p, GREEDY)])[0].token_ids for p in prompts]
    assert engine.core.forward_steps_total - steps > 2 * GREEDY.max_new_tokens  # the prefill did run in chunks
    batch = [c.token_ids for c in engine.complete([CompletionRequest(p, GREEDY) for p in prompts])]
    assert solo == want and batch == want


def test_chunked_prompt_logprobs_equal_one_pass(tiny_gemma3_dir):
    engine = LocalEngine(tiny_gemma3_dir, prefix_cache_mb=0)
    params = SamplingParams(max_new_tokens=1, temperature=0, prompt_logprobs=2)
    one = engine.complete([CompletionRequest(LONG, params)])[0].prompt_logprobs
    engine.prefill_chunk = 9
    chunked = engine.complete([CompletionRequest(LONG, params)])[0].prompt_logprobs
    assert one[0] is None and chunked[0] is None and len(one) == len(chunked) == len(engine.encode(LONG))
    ids = engine.encode(LONG)
    with torch.no_grad():  # the reference: transformers' logits over the whole prompt
        ref = torch.log_softmax(engine.model(torch.tensor([ids])).logits[0, :-1].float(), -1)
    for i in range(1, len(ids)):
        for entry in (one[i], chunked[i]):
            assert entry["token_id"] == ids[i]
            assert abs(entry["logprob"] - float(ref[i - 1, ids[i]])) < 1e-3
        assert [t for t, _ in one[i]["top"]] == [t for t, _ in chunked[i]["top"]]

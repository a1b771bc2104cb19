"""Automatic prefix caching: exact (greedy tokens identical with and without it, sliding-window and KV-shared layers
included), reused across requests that share a system prompt or a conversation's history, bounded by bytes."""

from __future__ import annotations

import pytest

from sealion.engine import ChatRequest, SamplingParams
from sealion.engine.local import LocalEngine
from sealion.engine.prefix_cache import PrefixCache

SYSTEM = ("Anda adalah asisten yang membantu pengguna di Asia Tenggara. Jawablah dengan singkat, sopan, dan dalam "
          "bahasa yang sama dengan pertanyaan. ") * 4  # ~130 tokens: many times the tiny sliding window (16)
GREEDY = SamplingParams(max_new_tokens=8, temperature=0)


def conversations():
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Apa ibu kota Indonesia?"}]
    other = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Xin chào, bạn khỏe không?"}]
    follow = first + [{"role": "assistant", "content": "Jakarta."},
                      {"role": "user", "content": "Dan ibu kota Thailand?"}]
    return [first, other, follow]


def _run(engine, convs):
    return [engine.chat([ChatRequest(m, GREEDY)])[0] for m in convs]


@pytest.mark.parametrize("kind", ["gemma4", "gemma3"])
@pytest.mark.parametrize("chunk", [None, 16])
def test_prefix_cache_is_exact_and_reused(kind, chunk, tiny_text_dir, tiny_gemma3_dir):
    path = tiny_text_dir if kind == "gemma4" else tiny_gemma3_dir
    plain = LocalEngine(path, prefix_cache_mb=0)
    cached = LocalEngine(path, prefix_cache_mb=64)
    cached.prefill_chunk = chunk  # chunked prefill continuing cached prefixes stays exact too
    convs = conversations()
    want = _run(plain, convs)
    got = _run(cached, convs)
    assert [c.token_ids for c in got] == [c.token_ids for c in want]
    assert [c.prompt_tokens for c in got] == [c.prompt_tokens for c in want]
    system_tokens = len(cached.tokenizer(SYSTEM, add_special_tokens=False).input_ids)
    assert got[0].cached_tokens == 0
    assert got[1].cached_tokens >= system_tokens  # the shared system prompt came from the cache
    assert got[2].cached_tokens > got[1].cached_tokens  # the follow-up reused the first turn, not only the system
    assert 0 < cached.prefix_cache.bytes <= cached.prefix_cache.budget


def test_prefix_cache_stays_within_its_byte_budget(tiny_gemma3_dir):
    probe = LocalEngine(tiny_gemma3_dir, prefix_cache_mb=64)
    _run(probe, conversations()[:1])
    one_entry = max(size for _, size in probe.prefix_cache._entries.values())
    engine = LocalEngine(tiny_gemma3_dir, prefix_cache_mb=0)
    engine.core.prefix_cache = PrefixCache(int(one_entry * 2.5))  # room for two entries of that size
    convs = [[{"role": "system", "content": f"({i}) " + SYSTEM}, {"role": "user", "content": "Halo?"}]
             for i in range(5)]
    for c in convs:
        engine.chat([ChatRequest(c, GREEDY)])
        assert engine.prefix_cache.bytes <= engine.prefix_cache.budget
    assert 1 <= len(engine.prefix_cache) <= 3
    # least recently used left first: the newest system prompt is still there, the oldest is not
    again_new = engine.chat([ChatRequest(convs[-1], GREEDY)])[0]
    again_old = engine.chat([ChatRequest(convs[0], GREEDY)])[0]
    assert again_new.cached_tokens > 0 and again_old.cached_tokens == 0


@pytest.mark.demo
def test_demo_prefix_cache_is_exact(demo_dir):
    plain = LocalEngine(demo_dir, prefix_cache_mb=0)
    cached = LocalEngine(demo_dir, prefix_cache_mb=64)
    convs = conversations()
    want, got = _run(plain, convs), _run(cached, convs)
    assert [c.token_ids for c in got] == [c.token_ids for c in want]
    assert got[1].cached_tokens > 0 and got[2].cached_tokens > got[1].cached_tokens

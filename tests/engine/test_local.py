"""The in-process engine on a tiny Gemma 4: batching, seeds, stop rules, streaming, usage."""

from __future__ import annotations

import pytest
import torch

from sealion.engine import ChatRequest, CompletionRequest, SamplingParams
from sealion.engine.local import LocalEngine

PROMPTS = [
    "Hello there, how are",
    "Ibu kota Indonesia adalah kota yang sangat besar dan ramai sekali, dengan banyak gedung tinggi",
    "x",
    "Xin chào, tôi là",
    "เมืองหลวงของประเทศไทยคือ",
]
GREEDY = SamplingParams(max_new_tokens=12, temperature=0)


@pytest.fixture(scope="module")
def engine(tiny_text_dir):
    return LocalEngine(tiny_text_dir, max_batch_size=4)


def test_batched_greedy_equals_unbatched(engine):
    solo = [engine.complete([CompletionRequest(p, GREEDY)])[0] for p in PROMPTS]
    batch = engine.complete([CompletionRequest(p, GREEDY) for p in PROMPTS])
    for a, b in zip(solo, batch):
        assert a.token_ids == b.token_ids
        assert a.text == b.text
        assert a.completion_tokens == 12 and a.finish_reason == "length"


def test_results_in_request_order_and_usage(engine):
    out = engine.complete([CompletionRequest(p, GREEDY, id=str(i)) for i, p in enumerate(PROMPTS)])
    assert [c.id for c in out] == [str(i) for i in range(len(PROMPTS))]
    for p, c in zip(PROMPTS, out):
        assert c.prompt_tokens == len(engine.encode(p))


def test_seeded_sampling_is_reproducible(engine):
    s = SamplingParams(max_new_tokens=16, temperature=1.0, seed=1234)
    a = engine.complete([CompletionRequest("Hello", s)])[0]
    b = engine.complete([CompletionRequest("Hello", s), CompletionRequest("Other prompt", s)])[0]
    c = engine.complete([CompletionRequest("Hello", SamplingParams(max_new_tokens=16, temperature=1.0, seed=99))])[0]
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids


def test_model_default_sampling_from_generation_config(engine):
    # the tiny model's generation_config samples (do_sample, top_k 64, top_p 0.95): unseeded runs differ
    assert engine.defaults["do_sample"] is True and engine.defaults["top_k"] == 64
    runs = {tuple(engine.complete([CompletionRequest("Hi", SamplingParams(max_new_tokens=8))])[0].token_ids)
            for _ in range(3)}
    assert len(runs) > 1


def test_stop_string_cuts_output(engine):
    full = engine.complete([CompletionRequest("Hello there", GREEDY)])[0]
    assert len(full.text) > 6
    stop = full.text[3:6]
    cut = engine.complete([CompletionRequest("Hello there", SamplingParams(max_new_tokens=12, temperature=0,
                                                                          stop=[stop]))])[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]
    assert stop not in cut.text


def test_stop_token_id(engine):
    full = engine.complete([CompletionRequest("Hello there", GREEDY)])[0]
    third = full.token_ids[2]
    cut = engine.complete([CompletionRequest("Hello there", SamplingParams(max_new_tokens=12, temperature=0,
                                                                          stop_token_ids=[third]))])[0]
    assert cut.finish_reason == "stop"
    assert cut.token_ids == full.token_ids[: full.token_ids.index(third)]


def test_streaming_deltas_concatenate_to_final_text(engine):
    req = CompletionRequest("Xin chào", SamplingParams(max_new_tokens=10, temperature=0))
    deltas = list(engine.stream(req))
    final = deltas[-1].final
    assert final is not None and final.completion_tokens == 10
    assert "".join(d.text for d in deltas) == final.text
    assert final.text == engine.complete([req])[0].text
    assert sum(1 for d in deltas if d.text) >= 3  # really incremental


def test_streaming_never_shows_text_later_cut_by_stop(engine):
    full = engine.complete([CompletionRequest("Hello there", GREEDY)])[0]
    stop = full.text[4:9]
    req = CompletionRequest("Hello there", SamplingParams(max_new_tokens=12, temperature=0, stop=[stop]))
    shown = "".join(d.text for d in engine.stream(req))
    assert shown == full.text[: full.text.find(stop)]


def test_logits_processor_scripts_output(tiny_text_dir):
    script = [10979, 236764, 1902]  # "Hi", ",", " there" in the Gemma vocabulary

    class Force:
        def __call__(self, input_ids, scores):
            step = input_ids.shape[1] - self.prompt_len
            forced = torch.full_like(scores, -1e9)
            forced[:, script[step] if step < len(script) else 1] = 0
            return forced

    force = Force()
    e = LocalEngine(tiny_text_dir, logits_processors=[force])
    req = CompletionRequest("Say hi", SamplingParams(max_new_tokens=10, temperature=0))
    force.prompt_len = len(e.encode("Say hi"))
    out = e.complete([req])[0]
    assert out.token_ids == script and out.finish_reason == "stop"
    assert out.text == e.tokenizer.decode(script)


def test_chat_request_renders_and_stops_at_turn_end(tiny_text_dir):
    turn_end = 106

    def force_end_after_two(input_ids, scores):
        forced = torch.full_like(scores, -1e9)
        forced[:, 10979 if input_ids.shape[1] < force_end_after_two.n + 2 else turn_end] = 0
        return forced

    e = LocalEngine(tiny_text_dir, logits_processors=[force_end_after_two])
    msgs = [{"role": "user", "content": "Hi"}]
    from sealion.engine.prompting import render_chat

    force_end_after_two.n = len(e.encode(render_chat(e.tokenizer, msgs)))
    out = e.chat([ChatRequest(msgs, SamplingParams(max_new_tokens=10, temperature=0))])[0]
    # usage counts the turn-end token the model generated; the text and token ids leave it out
    assert out.finish_reason == "stop" and out.completion_tokens == 3 and out.token_ids == [10979, 10979]
    assert out.content == "HiHi"


def test_prompt_over_context_is_refused(tiny_text_dir):
    from sealion.errors import SealionError

    e = LocalEngine(tiny_text_dir)
    with pytest.raises(SealionError, match="context"):
        e.complete([CompletionRequest("word " * 5000, GREEDY)])


# ---- shared prompt prefixes -------------------------------------------------------------------------------------

SHARED = ("Jawablah hanya dengan format berikut: \"Jawaban: ANSWER\". Ganti ANSWER dengan huruf A atau B. "
          "Berdasarkan situasi di bawah ini, pilihan mana yang lebih mungkin? Situasi: ")
OWN = ["Barang itu rapuh.", "Dia lapar sekali karena belum makan sejak pagi tadi, lalu pergi ke warung.", "x",
       "Hujan turun deras."]


def widened_window(src, tmp_path, window: int):
    """A copy of a tiny checkpoint whose sliding window holds a whole test sequence (the weights do not change)."""
    import json
    import shutil

    dst = tmp_path / f"{src.name}-w{window}"
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    (cfg.get("text_config") or cfg)["sliding_window"] = window
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("kind", ["gemma4", "gemma3"])
def test_shared_prefix_batch_equals_solo_and_unshared(kind, tiny_text_dir, tiny_gemma3_dir, tmp_path):
    eng = LocalEngine(widened_window(tiny_text_dir if kind == "gemma4" else tiny_gemma3_dir, tmp_path, 256),
                      max_batch_size=8)
    # one row stops early, so finished rows leave a batch whose cache started as a repeated prefix
    reqs = [CompletionRequest(SHARED + s, GREEDY if i != 1 else SamplingParams(max_new_tokens=3, temperature=0))
            for i, s in enumerate(OWN)]
    rows = [eng._completion_seq(r) for r in reqs]
    assert eng.core._shared_prefix(rows) >= 20

    first_logits = []

    def record(history, scores):
        if record.first:  # the prefill step of the batch
            first_logits.append(scores.clone())
            record.first = False
        return scores

    eng.logits_processors = [record]
    record.first = True
    shared = eng.complete(reqs)
    eng.share_prefix = False
    eng.prefix_cache.clear()
    record.first = True
    plain = eng.complete(reqs)
    eng.logits_processors = []
    solo = [eng.complete([r])[0] for r in reqs]
    assert [c.token_ids for c in shared] == [c.token_ids for c in plain] == [c.token_ids for c in solo]
    assert [c.completion_tokens for c in shared] == [12, 3, 12, 12]
    assert [c.prompt_tokens for c in shared] == [len(r.prompt_ids) for r in rows]
    assert len(first_logits) == 2 and torch.allclose(first_logits[0], first_logits[1], atol=1e-4)


def test_no_prefix_sharing_beyond_the_sliding_window(engine):
    """The tiny model's window (16) is shorter than these sequences: sharing would change attention, so it is off."""
    rows = [engine._completion_seq(CompletionRequest(SHARED + s, GREEDY)) for s in OWN]
    assert engine.core._shared_prefix(rows) == 0
    rows = [engine._completion_seq(CompletionRequest(p, GREEDY)) for p in PROMPTS]
    assert engine.core._shared_prefix(rows) == 0  # nothing in common but <bos>


def test_an_explicit_temperature_means_sampling():
    """OpenAI semantics in both backends: temperature > 0 samples even when the checkpoint's generation_config
    decodes greedily; do_sample=False or temperature 0 still force greedy."""
    assert SamplingParams(temperature=0.7).is_greedy(default_do_sample=False) is False
    assert SamplingParams().is_greedy(default_do_sample=False) is True
    assert SamplingParams().is_greedy(default_do_sample=True) is False
    assert SamplingParams(temperature=0.7, do_sample=False).is_greedy(default_do_sample=True) is True
    assert SamplingParams(temperature=0).is_greedy(default_do_sample=True) is True


def test_nucleus_in_the_window_equals_the_full_sort():
    """top-p picks its nucleus among the best 1,024 tokens when their mass reaches top_p: the kept tokens and their
    probabilities equal the full sort's; a flat distribution falls back to the sort."""
    from sealion.engine import sampling

    g = torch.Generator().manual_seed(0)
    peaked = torch.randn(262144, generator=g) * 6
    flat = torch.randn(262144, generator=g) * 0.01
    for logits, top_k, top_p in ((peaked, 0, 0.9), (peaked, 0, 0.5), (flat, 0, 0.9), (peaked, 40, 0.9)):
        got = {}
        for window in (1024, 262144):  # 262144 = the whole vocabulary, i.e. the plain sort
            sampling.NUCLEUS_WINDOW = window
            try:
                idx, probs = sampling.candidates(logits, top_k, top_p)
            finally:
                sampling.NUCLEUS_WINDOW = 1024
            got[window] = {int(i): float(p) for i, p in zip(idx, probs) if p > 0}
        assert got[1024].keys() == got[262144].keys() and len(got[1024]) > 1
        assert all(abs(got[1024][k] - got[262144][k]) < 1e-6 for k in got[1024])
        assert abs(sum(got[1024].values()) - 1) < 1e-5
    # seeded draws repeat, and stay inside the nucleus
    idx, probs = sampling.candidates(peaked, 0, 0.5)
    nucleus = {int(i) for i, p in zip(idx, probs) if p > 0}
    draws = [sampling.draw_token(peaked, 1.0, 0, 0.5, torch.Generator().manual_seed(s)) for s in range(30)]
    assert set(draws) <= nucleus
    assert draws == [sampling.draw_token(peaked, 1.0, 0, 0.5, torch.Generator().manual_seed(s)) for s in range(30)]


# ---- prefill in length groups ------------------------------------------------------------------------------------

LONG = "Pada suatu hari yang cerah, seorang petani tua berjalan ke pasar membawa sekeranjang mangga, " * 3


@pytest.mark.parametrize("kind,shared", [("gemma4", True), ("gemma3", True), ("gemma4", False)])
def test_grouped_prefill_equals_one_padded_pass_and_solo(kind, shared, tiny_text_dir, tiny_gemma3_dir, tmp_path):
    from sealion.engine.prefill import plan_prefill

    eng = LocalEngine(widened_window(tiny_text_dir if kind == "gemma4" else tiny_gemma3_dir, tmp_path, 512),
                      max_batch_size=8)
    head = SHARED if shared else ""
    owns = ["x", "Barang itu rapuh.", LONG, "Hujan turun deras.", LONG + "Lalu?"]
    # the second row stops early: rows leave a batch whose cache was joined from groups
    reqs = [CompletionRequest(head + s, GREEDY if i != 1 else SamplingParams(max_new_tokens=3, temperature=0))
            for i, s in enumerate(owns)]
    rows = [eng._completion_seq(r) for r in reqs]
    n_shared = eng.core._shared_prefix(rows)
    assert (n_shared > 0) == shared and eng.core._can_group(rows)
    assert len(plan_prefill([r.prompt_ids for r in rows], n_shared)) >= 2  # short prompts are not padded to long ones
    grouped = eng.complete(reqs)
    eng.group_prefill = False
    plain = eng.complete(reqs)
    solo = [eng.complete([r])[0] for r in reqs]
    assert [c.token_ids for c in grouped] == [c.token_ids for c in plain] == [c.token_ids for c in solo]
    assert [c.completion_tokens for c in grouped][1] == 3


def test_plan_groups_minimises_padding_plus_calls():
    from sealion.engine.prefill import plan_groups

    assert plan_groups([5, 5, 5, 5]) == [(0, 4)]
    assert plan_groups([10, 10, 200, 200], call_cost=48) == [(0, 2), (2, 4)]
    assert plan_groups([10, 12, 14], call_cost=48) == [(0, 3)]  # a call costs more than the padding it saves
    assert plan_groups([]) == []
    lengths = [3, 8, 9, 40, 41, 90]
    groups = plan_groups(lengths, call_cost=4)
    assert groups[0][0] == 0 and groups[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
    with pytest.raises(ValueError, match="ascending"):
        plan_groups([5, 3])


def test_prefix_clusters_share_longer_prefixes_once(tiny_text_dir, tmp_path):
    """Two instruction variants after a common start (a task with two question types): each variant's longer
    prefix is computed once, and the answers equal the plain padded batch and solo generation."""
    from sealion.engine.prefill import plan_prefill

    eng = LocalEngine(widened_window(tiny_text_dir, tmp_path, 512), max_batch_size=8)
    variants = ["Manakah penyebabnya? Pikirkan baik-baik sebelum menjawab dengan satu huruf saja. Situasi: ",
                "Manakah akibatnya? Jelaskan juga alasan singkat setelah menjawab dengan satu huruf. Situasi: "]
    owns = ["Barang itu rapuh.", "Hujan turun deras sekali sejak pagi.", "x", "Dia lapar.", "Lampu padam."]
    reqs = [CompletionRequest(SHARED + variants[i % 2] + s, GREEDY) for i, s in enumerate(owns * 2)]
    rows = [eng._completion_seq(r) for r in reqs]
    shared = eng.core._shared_prefix(rows)
    plan = plan_prefill([r.prompt_ids for r in rows], shared)
    assert {g.prefix for g in plan} - {shared} and all(g.prefix > shared for g in plan)
    assert sorted(i for g in plan for i in g.rows) == list(range(len(reqs)))
    clustered = eng.complete(reqs)
    eng.group_prefill = False
    plain = eng.complete(reqs)
    solo = [eng.complete([r])[0] for r in reqs]
    assert [c.token_ids for c in clustered] == [c.token_ids for c in plain] == [c.token_ids for c in solo]


def test_prefix_clusters_plan():
    from sealion.engine.prefill import prefix_clusters

    a, b = [1, 2, 3] + list(range(10, 30)), [1, 2, 3] + list(range(40, 60))
    prompts = [a + [7], b + [8, 9], a + [5, 6], [1, 2, 4, 4], b + [1], a + [9]]
    clusters = dict((tuple(sorted(rows)), p) for rows, p in prefix_clusters(prompts, shared=3, call_cost=8))
    assert clusters == {(0, 2, 5): len(a), (1, 4): len(b), (3,): 3}
    # not worth a call: the extra prefix is short next to the call cost
    (rows, p), = prefix_clusters(prompts, shared=3, call_cost=1000)
    assert sorted(rows) == list(range(6)) and p == 3
    # a row never loses its last token to a prefix
    rows, p = prefix_clusters([[5] * 30, [5] * 30], shared=0, call_cost=1)[0]
    assert p == 29


def test_an_engine_dropped_without_close_frees_its_model(tiny_text_dir):
    """A notebook (or a test suite) that opens engine after engine must not keep every model alive: the model
    thread holds its core only weakly, so dropping the last reference frees the weights and ends the thread."""
    import gc
    import threading
    import time
    import weakref

    others = set(threading.enumerate())
    engine = LocalEngine(tiny_text_dir, max_batch_size=2)
    assert engine.complete([CompletionRequest("Hello there", GREEDY)])[0].completion_tokens == 12
    model = weakref.ref(engine.model)
    threads = {t for t in threading.enumerate() if t.name == "sealion-engine"} - others
    assert threads  # this engine's own model thread
    del engine
    gc.collect()
    deadline = time.monotonic() + 10
    while model() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
        gc.collect()
    assert model() is None
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)

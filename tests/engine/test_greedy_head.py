"""The bf16-screened LM head gives the fp32 argmax (greedy decoding) and is used only where that is all that counts."""

from __future__ import annotations

import pytest
import torch

from sealion.engine import CompletionRequest, SamplingParams
from sealion.engine.greedy_head import ScreenedHead
from sealion.engine.local import LocalEngine


def _head(vocab: int, hidden: int, bias: bool, seed: int) -> torch.nn.Linear:
    g = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(hidden, vocab, bias=bias)
    with torch.no_grad():
        head.weight.copy_(torch.randn(vocab, hidden, generator=g) * 0.05)
        if bias:
            head.bias.copy_(torch.randn(vocab, generator=g))
    return head


def _add_near_ties(head: torch.nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
    """Near ties: hidden rows 0..15 get a second vocabulary row that is their winner's twin, 1e-4 apart in the
    logit; returns the exact logits after the change."""
    vocab = head.weight.shape[0]
    with torch.no_grad():
        exact = head(hidden)
        for i in range(16):
            win = int(exact[i].argmax())
            twin = (win + 1 + i) % vocab
            head.weight[twin] = head.weight[win] + 1e-4 * hidden[i] / hidden[i].norm() ** 2 * (1 if i % 2 else -1)
            if head.bias is not None:
                head.bias[twin] = head.bias[win]
        return head(hidden)


def test_argmax_matches_fp32_on_random_and_near_tied_rows():
    for bias in (False,):
        head = _head(8192, 96, bias, seed=1)
        g = torch.Generator().manual_seed(2)
        hidden = torch.randn(64, 96, generator=g) * 8
        exact = _add_near_ties(head, hidden)
        screen = ScreenedHead(head)
        assert torch.equal(screen.argmax(hidden), exact.argmax(-1))
        assert screen.calls == 1
        candidates = screen._candidates(hidden)
        assert candidates.numel() < 8192 // 8  # the screen keeps few rows for the fp32 rescoring
        # soft-capped like the model: the same argmax as capping the full fp32 logits
        assert torch.equal(screen.argmax(hidden, softcap=30.0), (torch.tanh(exact / 30.0) * 30.0).argmax(-1))
        # bf16 alone gets some of the near ties wrong: the screen is doing real work
        approx = torch.nn.functional.linear(hidden.bfloat16(), head.weight.bfloat16(),
                                            None if head.bias is None else head.bias.bfloat16()).float()
        assert not torch.equal(approx.argmax(-1), exact.argmax(-1))


def test_heads_with_bias_or_low_precision_are_left_alone():
    assert not ScreenedHead.applies_to(_head(64, 8, True, seed=0))
    assert not ScreenedHead.applies_to(_head(64, 8, False, seed=0).to(torch.bfloat16))
    assert ScreenedHead.applies_to(_head(64, 8, False, seed=0))


def test_uneven_row_norms_and_flat_scores():
    """Rows of very different norms (the one-norm bound is loose, the per-row bound decides) and an all-zero hidden
    state (every row ties: the plain fp32 head answers)."""
    head = _head(16384, 64, False, seed=5)
    with torch.no_grad():
        head.weight[:128] *= 40  # a few rows far larger than the rest
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(6))
    plain = head(x)
    screen = ScreenedHead(head)
    assert torch.equal(screen.argmax(x), plain.argmax(-1)) and screen.calls == 1
    assert torch.equal(screen.argmax(torch.zeros(2, 64)), torch.zeros(2, dtype=torch.long))  # all tie: lowest id
    # fallbacks are counted until a screened call succeeds (the engine stops screening a batch after a few)
    assert screen.misses == 1
    screen.argmax(torch.zeros(2, 64))
    assert screen.misses == 2
    screen.argmax(x)
    assert screen.misses == 0 and screen.calls == 2


@pytest.mark.parametrize("kind", ["bf16", "int8"])
def test_engine_greedy_is_identical_with_and_without_the_screen(tiny_text_dir, kind):
    prompts = ["Hello there, how are", "Ibu kota Indonesia adalah", "เมืองหลวงของประเทศไทยคือ", "x"]
    greedy = SamplingParams(max_new_tokens=10, temperature=0)
    fast = LocalEngine(tiny_text_dir, max_batch_size=4, fast_greedy=kind)
    slow = LocalEngine(fast.loaded, max_batch_size=4, fast_greedy=False)
    a = fast.complete([CompletionRequest(p, greedy) for p in prompts])
    b = slow.complete([CompletionRequest(p, greedy) for p in prompts])
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert type(fast._screen).__name__ == {"bf16": "ScreenedHead", "int8": "Int8ScreenedHead"}[kind]
    assert fast._screen.calls >= 10 and slow._screen is None
    # sampled rows never take the screened path (the scores must be real logits there)
    calls = fast._screen.calls
    fast.complete([CompletionRequest("Hello", SamplingParams(max_new_tokens=4, temperature=1.0, seed=0))])
    assert fast._screen.calls == calls

def _outlier_hidden(n: int, dim: int, seed: int) -> torch.Tensor:
    """Hidden states like Gemma's final ones: mostly small, a few features in the hundreds."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g) * 4
    x[:, :3] *= 60
    return x


def test_int8_screen_bound_holds_against_fp32():
    """The int8 screen's per-row bound covers the kernel's error against the fp32 product on random heads, with
    outlier features, at batch 1, 8 and 13 (the kernel takes other paths for other batch sizes; 13 rows are scored
    in two calls)."""
    from sealion.engine.greedy_head import Int8ScreenedHead

    for seed, (vocab, hidden) in enumerate([(8192, 96), (4096, 640)]):
        head = _head(vocab, hidden, False, seed=10 + seed)
        screen = Int8ScreenedHead(head)
        for batch in (1, 8, 13):
            x = _outlier_hidden(batch, hidden, seed=20 + seed)
            y, eps = screen.bounds(x)
            exact = torch.nn.functional.linear(x.double(), head.weight.double())
            assert ((y.double() - exact).abs() <= eps.double()).all()


def test_int8_screen_argmax_matches_fp32_with_near_ties():
    from sealion.engine.greedy_head import Int8ScreenedHead

    head = _head(8192, 96, False, seed=1)
    hidden = _outlier_hidden(64, 96, seed=2)
    exact = _add_near_ties(head, hidden)
    screen = Int8ScreenedHead(head)
    assert torch.equal(screen.argmax(hidden), exact.argmax(-1)) and screen.calls == 1
    assert screen._candidates(hidden).numel() < 8192 // 8
    assert torch.equal(screen.argmax(hidden, softcap=30.0), (torch.tanh(exact / 30.0) * 30.0).argmax(-1))
    # the int8 scores alone pick some near ties wrong: the rescoring is doing real work
    assert not torch.equal(screen._scores(hidden).float().argmax(-1), exact.argmax(-1))


def test_choose_screen():
    from sealion.engine.greedy_head import Int8ScreenedHead, choose_screen

    head = _head(4096, 64, False, seed=3)
    assert choose_screen(head, False) is None
    assert choose_screen(_head(64, 8, True, seed=0), "auto") is None  # a biased head is left alone
    assert type(choose_screen(head, True)) is ScreenedHead and type(choose_screen(head, "bf16")) is ScreenedHead
    assert type(choose_screen(head, "int8")) is Int8ScreenedHead
    auto = choose_screen(head, "auto")
    for batch in (1, 3, 8):
        assert auto.screen_for(batch) is None or type(auto.screen_for(batch)) in (ScreenedHead, Int8ScreenedHead)
        x = _outlier_hidden(batch, 64, seed=30 + batch)
        assert torch.equal(auto.argmax(x), head(x).argmax(-1))
    assert sorted(auto._choice) == [1, 4, 8]  # timed once per power-of-two batch size


@pytest.mark.demo
def test_int8_screen_on_the_demo_model_is_exact_and_screens(demo_dir):
    """On the real demo model's hidden states the int8 screen keeps few rows (it does real work) and the engine's
    greedy tokens equal the plain fp32 head's, in several languages."""
    prompts = ["Ibu kota Indonesia adalah", "Thủ đô của Việt Nam là", "The capital of Malaysia is",
               "เมืองหลวงของประเทศไทยคือ"]
    greedy = SamplingParams(max_new_tokens=16, temperature=0)
    fast = LocalEngine(demo_dir, max_batch_size=4, fast_greedy="int8", prefix_cache_mb=0)
    slow = LocalEngine(fast.loaded, max_batch_size=4, fast_greedy=False, prefix_cache_mb=0)
    try:
        a = fast.complete([CompletionRequest(p, greedy) for p in prompts])
        b = slow.complete([CompletionRequest(p, greedy) for p in prompts])
    finally:
        fast.close()
        slow.close()
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert type(fast._screen).__name__ == "Int8ScreenedHead" and fast._screen.calls >= 8

"""The bf16-screened LM head gives the fp32 argmax (greedy decoding) and is used only where that is all that counts."""

from __future__ import annotations

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


def test_argmax_matches_fp32_on_random_and_near_tied_rows():
    for bias in (False,):
        head = _head(8192, 96, bias, seed=1)
        g = torch.Generator().manual_seed(2)
        hidden = torch.randn(64, 96, generator=g) * 8
        # near ties: rows 0..15 get a second vocabulary row that is the winner's twin, 1e-4 apart in the logit
        with torch.no_grad():
            exact = head(hidden)
            for i in range(16):
                win = int(exact[i].argmax())
                twin = (win + 1 + i) % 8192
                head.weight[twin] = head.weight[win] + 1e-4 * hidden[i] / hidden[i].norm() ** 2 * (1 if i % 2 else -1)
                if bias:
                    head.bias[twin] = head.bias[win]
            exact = head(hidden)
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
    x = torch.randn(8, 64)
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


def test_engine_greedy_is_identical_with_and_without_the_screen(tiny_text_dir):
    prompts = ["Hello there, how are", "Ibu kota Indonesia adalah", "เมืองหลวงของประเทศไทยคือ", "x"]
    greedy = SamplingParams(max_new_tokens=10, temperature=0)
    fast = LocalEngine(tiny_text_dir, max_batch_size=4)
    slow = LocalEngine(fast.loaded, max_batch_size=4, fast_greedy=False)
    a = fast.complete([CompletionRequest(p, greedy) for p in prompts])
    b = slow.complete([CompletionRequest(p, greedy) for p in prompts])
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert fast._screen is not None and fast._screen.calls >= 10 and slow._screen is None
    # sampled rows never take the screened path (the scores must be real logits there)
    calls = fast._screen.calls
    fast.complete([CompletionRequest("Hello", SamplingParams(max_new_tokens=4, temperature=1.0, seed=0))])
    assert fast._screen.calls == calls

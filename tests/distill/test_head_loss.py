"""The fused head loss against plain autograd through dense logits: values and gradients, every option."""

import pytest
import torch
import torch.nn.functional as F

from sealion.distill.head_loss import HeadTargets, fused_kd_ce
from sealion.distill.losses import LossConfig, chunked_topk, project_logits, sparse_divergence

V, H, N, K = 50, 16, 13, 5


def _case(seed, bias=False, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, H, generator=g, dtype=dtype, requires_grad=True)
    weight = torch.randn(V, H, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(V, generator=g, dtype=dtype, requires_grad=True) if bias else None
    teacher_w = torch.randn(V, H, generator=g, dtype=dtype)
    targets = torch.randint(0, V, (N,), generator=g)
    ids, lps, tail = chunked_topk(hidden.detach(), teacher_w, None, K, chunk_size=4)
    return hidden, weight, b, targets, ids, lps, tail


def _reference(hidden, weight, bias, targets, ids, lps, tail, cfg, kd_coef, ce_coef, softcap, cap_t):
    logits = project_logits(hidden, weight, bias, softcap)
    kd = sparse_divergence(logits, ids, lps, tail, cfg, capture_temperature=cap_t)
    ce = F.cross_entropy(logits, targets, reduction="none")
    agree = (logits.argmax(-1) == ids[:, 0]).to(kd.dtype)
    return kd_coef * kd.sum() + ce_coef * ce.sum(), kd, ce, agree


@pytest.mark.parametrize("div,missing,T,softcap,ce_coef,bias,chunk", [
    ("fkl", "tail", 1.0, None, 0.3, False, 4),
    ("jsd", "tail", 1.0, 30.0, 0.0, False, 5),
    ("jsd", "zero", 1.5, 30.0, 0.3, True, 3),
    ("rkl", "tail", 2.0, None, 0.1, False, 100),
    ("rkl", "zero", 1.0, None, 0.0, True, 1),
    ("tvd", "tail", 0.7, 5.0, 0.2, False, 4),
    ("tvd", "zero", 1.0, None, 0.2, False, 6),
])
def test_fused_values_and_gradients_equal_autograd(div, missing, T, softcap, ce_coef, bias, chunk):
    hidden, weight, b, targets, ids, lps, tail = _case(sum(map(ord, div + missing)), bias=bias)
    cfg = LossConfig(divergence=div, missing=missing, temperature=T, beta=0.3, chunk_size=chunk)
    params = [hidden, weight] + ([b] if bias else [])
    ref = _reference(hidden, weight, b, targets, ids, lps, tail, cfg, 0.7, ce_coef, softcap, 1.0)
    ref_grads = torch.autograd.grad(ref[0] * 1.9, params)
    got = fused_kd_ce(hidden, weight, b, HeadTargets(targets, ids, lps, tail, cfg, kd_coef=0.7, ce_coef=ce_coef,
                                                      softcap=softcap))
    got_grads = torch.autograd.grad(got[0] * 1.9, params)  # an outer factor reaches every gradient
    # sparse_divergence (the reference) works in float32 whatever it is given: compare at that precision
    for r, x in zip(ref, got):
        assert torch.allclose(r.detach().double(), x.detach().double(), rtol=1e-5, atol=1e-6)
    for r, x in zip(ref_grads, got_grads):
        assert (r - x).norm() <= 1e-5 * r.norm(), (r - x).abs().max()


def test_fused_gradient_flows_into_a_model_and_only_where_needed():
    hidden, weight, _, targets, ids, lps, tail = _case(7)
    frozen = weight.detach()  # a frozen head: only the hidden states get a gradient
    # from a fixed generator: the global one's state depends on which tests ran before in this worker
    x = torch.randn(N, H, dtype=torch.float64, generator=torch.Generator().manual_seed(11), requires_grad=True)
    h = torch.tanh(x) * 3  # something before the head
    cfg = LossConfig(divergence="fkl", chunk_size=4)
    loss, *_ = fused_kd_ce(h, frozen, None, HeadTargets(targets, ids, lps, tail, cfg, kd_coef=1.0, ce_coef=0.5))
    loss.backward()
    x2 = x.detach().requires_grad_()
    ref, *_ = _reference(torch.tanh(x2) * 3, frozen, None, targets, ids, lps, tail, cfg, 1.0, 0.5, None, 1.0)
    ref.backward()
    # the reference computes its divergence in float32: equal to that precision (a wrong gradient is off by O(1))
    assert (x.grad - x2.grad).norm() <= 1e-4 * x2.grad.norm()
    assert frozen.grad is None


def test_fused_in_float32_and_bfloat16_stays_close_to_float64():
    hidden, weight, _, targets, ids, lps, tail = _case(11)
    cfg = LossConfig(divergence="jsd", chunk_size=4)
    ref = _reference(hidden, weight, None, targets, ids, lps, tail, cfg, 1.0, 0.1, 30.0, 1.0)
    ref_gw = torch.autograd.grad(ref[0], weight)[0]
    for dtype, tol in [(torch.float32, 1e-4), (torch.bfloat16, 0.1)]:
        h, w = hidden.detach().to(dtype).requires_grad_(), weight.detach().to(dtype).requires_grad_()
        loss, kd, ce, agree = fused_kd_ce(h, w, None, HeadTargets(targets, ids, lps.to(dtype), tail.to(dtype), cfg,
                                                                   kd_coef=1.0, ce_coef=0.1, softcap=30.0))
        loss.backward()
        assert w.grad.dtype == dtype and kd.dtype == torch.float32
        rel = (w.grad.double() - ref_gw).norm() / ref_gw.norm()
        assert rel < tol, (dtype, rel)


def test_no_grad_gives_values_only_and_empty_input_is_a_zero_loss():
    hidden, weight, _, targets, ids, lps, tail = _case(3)
    cfg = LossConfig(divergence="fkl", chunk_size=4)
    t = HeadTargets(targets, ids, lps, tail, cfg, kd_coef=1.0, ce_coef=0.1)
    with torch.no_grad():
        loss, kd, ce, agree = fused_kd_ce(hidden, weight, None, t)
    ref = _reference(hidden, weight, None, targets, ids, lps, tail, cfg, 1.0, 0.1, None, 1.0)
    assert not loss.requires_grad and torch.allclose(kd.double(), ref[1].detach().double(), rtol=1e-5)
    empty = HeadTargets(targets[:0], ids[:0], lps[:0], tail[:0], cfg)
    loss, kd, ce, agree = fused_kd_ce(hidden[:0], weight, None, empty)
    assert kd.numel() == 0 and float(loss.detach()) == 0.0
    loss.backward()
    assert torch.count_nonzero(weight.grad) == 0


@pytest.mark.parametrize("beta,T", [(0.5, 1.0), (0.1, 2.0), (0.9, 0.5)])
def test_dense_teacher_gives_the_full_vocabulary_jsd(beta, T):
    """online_k >= the vocabulary: the generalised JSD over every id, as GKD/TRL define it on full distributions
    (M = beta p + (1 - beta) q, JSD = beta KL(p||M) + (1 - beta) KL(q||M)), written here from that definition."""
    hidden, weight, _, targets, *_ = _case(23)
    g = torch.Generator().manual_seed(5)
    teacher_w = torch.randn(V, H, generator=g, dtype=torch.float64)
    ids, lps, tail = chunked_topk(hidden.detach(), teacher_w, None, V + 3, chunk_size=4, temperature=T)
    assert ids.shape == (N, V) and ids.stride(0) == 0 and torch.isneginf(tail).all()  # a broadcast row, no tail
    cfg = LossConfig(divergence="jsd", missing="tail", temperature=T, beta=beta, chunk_size=4)
    loss, kd, _, agree = fused_kd_ce(hidden, weight, None, HeadTargets(targets, ids, lps, tail, cfg,
                                                                        capture_temperature=T))  # online: at T
    p = torch.softmax(hidden.detach() @ teacher_w.T / T, dim=-1)
    q = torch.softmax(hidden @ weight.T / T, dim=-1)
    m = beta * p + (1 - beta) * q
    # times T^2, the module's documented scale (gradients keep their size across temperatures)
    ref = (beta * (p * (p / m).log()).sum(-1) + (1 - beta) * (q * (q / m).log()).sum(-1)) * T * T
    assert torch.allclose(kd.double(), ref.detach(), rtol=1e-4, atol=1e-6)
    (gw,) = torch.autograd.grad(loss, weight)
    (rw,) = torch.autograd.grad(ref.sum(), weight)
    assert (gw - rw).norm() <= 1e-4 * rw.norm()
    assert torch.equal(agree.bool(), (hidden @ weight.T).argmax(-1) == p.argmax(-1))


def test_dense_teacher_in_float32_on_a_large_vocabulary_is_finite_and_exact():
    g = torch.Generator().manual_seed(9)
    vocab, n = 32768, 6
    hidden = torch.randn(n, H, generator=g)
    weight = (torch.randn(vocab, H, generator=g) * 0.3).requires_grad_()
    teacher_w = torch.randn(vocab, H, generator=g) * 0.3
    ids, lps, tail = chunked_topk(hidden, teacher_w, None, vocab, chunk_size=4)
    cfg = LossConfig(divergence="jsd", missing="tail", beta=0.5, chunk_size=4)
    loss, kd, *_ = fused_kd_ce(hidden, weight, None, HeadTargets(torch.zeros(n, dtype=torch.long), ids, lps, tail,
                                                                  cfg))
    (gw,) = torch.autograd.grad(loss, weight)
    p, q = torch.softmax(hidden.double() @ teacher_w.double().T, -1), torch.softmax(hidden.double() @ weight.double().T, -1)
    m = 0.5 * (p + q)
    ref = 0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)
    assert torch.isfinite(gw).all() and torch.allclose(kd.double(), ref.detach(), rtol=1e-3, atol=1e-6)


def _dense_reference(hidden, weight, bias, teacher_w, targets, div, beta, T, softcap, ce_coef, kd_coef):
    """The dense objective from its definition: full softmaxes, autograd does the rest."""
    p = torch.softmax(project_logits(hidden.detach(), teacher_w, None, softcap) / T, dim=-1)
    z = project_logits(hidden, weight, bias, softcap)
    logq = torch.log_softmax(z / T, dim=-1)
    q = logq.exp()
    if div == "fkl" or (div == "jsd" and beta == 0.0):
        kd = (p * (p.log() - logq)).sum(-1)
    elif div == "rkl" or (div == "jsd" and beta == 1.0):
        kd = (q * (logq - p.log())).sum(-1)
    else:
        m = beta * p + (1 - beta) * q
        kd = beta * (p * (p / m).log()).sum(-1) + (1 - beta) * (q * (logq - m.log())).sum(-1)
    kd = kd * T * T
    ce = F.cross_entropy(z, targets, reduction="none")
    return kd_coef * kd.sum() + ce_coef * ce.sum(), kd, ce


@pytest.mark.parametrize("T", [0.5, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("div,beta,softcap,ce_coef,bias", [
    ("jsd", 0.5, None, 0.0, False),
    ("jsd", 0.2, 30.0, 0.4, True),
    ("fkl", 0.5, None, 0.3, False),
    ("rkl", 0.5, 5.0, 0.0, True),
    ("jsd", 1.0, None, 0.2, False),
])
def test_dense_closed_form_equals_autograd_through_the_definition(div, beta, softcap, ce_coef, bias, T):
    """The dense path writes its gradient down in closed form into reused buffers; every divergence, temperature,
    soft-cap, bias and cross-entropy weight against autograd through the full-vocabulary definition, twice through
    one workspace (the second call must not see the first one's buffers)."""
    from sealion.distill.losses import Workspace

    hidden, weight, b, targets, *_ = _case(31 + int(T * 10), bias=bias)
    teacher_w = torch.randn(V, H, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    params = [hidden, weight] + ([b] if bias else [])
    ref = _dense_reference(hidden, weight, b, teacher_w, targets, div, beta, T, softcap, ce_coef, 0.6)
    ref_grads = torch.autograd.grad(ref[0] * 1.7, params)
    ws = Workspace()
    for _ in range(2):
        ids, lps, tail = chunked_topk(hidden.detach(), teacher_w, None, V, softcap=softcap, chunk_size=4,
                                      temperature=T, workspace=ws)
        cfg = LossConfig(divergence=div, missing="tail", temperature=T, beta=beta, chunk_size=5)
        got = fused_kd_ce(hidden, weight, b, HeadTargets(targets, ids, lps, tail, cfg, kd_coef=0.6, ce_coef=ce_coef,
                                                          softcap=softcap, capture_temperature=T, workspace=ws))
        got_grads = torch.autograd.grad(got[0] * 1.7, params)
        for r, x in zip(ref[1:], got[1:3]):
            assert torch.allclose(r.detach(), x.detach(), rtol=1e-5, atol=1e-7), (r - x).abs().max()
        for r, x in zip(ref_grads, got_grads):
            assert (r - x).norm() <= 1e-5 * r.norm(), (r - x).abs().max()


def test_dense_rows_at_another_capture_temperature_are_rescaled_exactly():
    """Dense rows captured at T = 1 and trained at T = 2: p_T = softmax(log p / T), exact since every id is there."""
    hidden, weight, _, targets, *_ = _case(41)
    teacher_w = torch.randn(V, H, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    ids, lps, tail = chunked_topk(hidden.detach(), teacher_w, None, V, chunk_size=4)  # at T = 1
    cfg = LossConfig(divergence="jsd", missing="tail", temperature=2.0, beta=0.5, chunk_size=4)
    got = fused_kd_ce(hidden, weight, None, HeadTargets(targets, ids, lps, tail, cfg, capture_temperature=1.0))
    ref = _dense_reference(hidden, weight, None, teacher_w, targets, "jsd", 0.5, 2.0, None, 0.0, 1.0)
    assert torch.allclose(got[1], ref[1].detach(), rtol=1e-5, atol=1e-7)

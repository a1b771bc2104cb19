"""Each sparse divergence against a dense, naive reference on small tensors: values and gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from sealion.distill.losses import LossConfig, chunked_topk, sparse_divergence

V, N, K = 40, 6, 7
TEMPERATURES = (0.5, 1.0, 2.0, 4.0)


def _setup(seed=0, k=K):
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(N, V, generator=g, dtype=torch.float64) * 2.0
    student = (torch.randn(N, V, generator=g, dtype=torch.float64) * 2.0).requires_grad_(True)
    logp_t = F.log_softmax(teacher, -1)
    lps, ids = logp_t.topk(k, -1)
    tail = torch.log1p(-lps.exp().sum(-1).clamp(max=1 - 1e-12))
    return teacher, student, ids, lps, tail


def _dense_kl(p, q):
    return torch.where(p > 0, p * (p.clamp_min(1e-300).log() - q.log()), torch.zeros_like(p)).sum(-1)


def _divergence(p, q, div, beta):
    if div == "fkl":
        return _dense_kl(p, q)
    if div == "rkl":
        return _dense_kl(q, p)
    if div == "jsd":
        m = beta * p + (1 - beta) * q
        return beta * _dense_kl(p, m) + (1 - beta) * _dense_kl(q, m)
    return 0.5 * (p - q).abs().sum(-1)


def _full_vocab_reference(teacher_logits, student_logits, ids, div, beta, T, missing):
    """Written from the definitions with full [N, V] softmaxes at temperature T, nothing taken from the capture:
    `zero` = the teacher's tempered distribution restricted to `ids` and renormalised (the student renormalised
    over the same ids for reverse KL), `tail` = both distributions summed into the k ids + one bucket."""
    p = F.softmax(teacher_logits / T, -1)
    q = F.softmax(student_logits / T, -1)
    inside = torch.zeros_like(p, dtype=torch.bool).scatter_(-1, ids, True)
    if missing == "zero":
        pz = torch.where(inside, p, torch.zeros_like(p))
        pz = pz / pz.sum(-1, keepdim=True)
        if div == "rkl":
            qz = torch.where(inside, q, torch.zeros_like(q))
            qz = qz / qz.sum(-1, keepdim=True)
            return _dense_kl(qz, torch.where(inside, pz, torch.ones_like(pz))) * T * T
        return _divergence(pz, q, div, beta) * T * T
    pb = torch.cat([p.gather(-1, ids), torch.where(inside, 0.0, p).sum(-1, keepdim=True)], -1)
    qb = torch.cat([q.gather(-1, ids), torch.where(inside, 0.0, q).sum(-1, keepdim=True)], -1)
    return _divergence(pb, qb, div, beta) * T * T


@pytest.mark.parametrize("capture_T", [1.0, 2.0])
@pytest.mark.parametrize("missing", ["zero", "tail"])
@pytest.mark.parametrize("div,beta", [("fkl", 0.5), ("rkl", 0.5), ("jsd", 0.5), ("jsd", 0.1), ("jsd", 0.9), ("tvd", 0.5)])
@pytest.mark.parametrize("T", TEMPERATURES)
def test_sparse_divergence_matches_full_vocabulary_reference(missing, div, beta, T, capture_T):
    """The capture's top-k at capture_T plus the tail stored at T give the exact divergence at T."""
    teacher, student, _, _, _ = _setup()
    lps, ids = F.log_softmax(teacher / capture_T, -1).topk(K, -1)
    tail_T = torch.log1p(-F.softmax(teacher / T, -1).gather(-1, ids).sum(-1))  # what the capture stores for T
    cfg = LossConfig(divergence=div, beta=beta, temperature=T, missing=missing)
    got = sparse_divergence(student, ids, lps, tail_T, cfg, capture_temperature=capture_T)
    (g_got,) = torch.autograd.grad(got.sum(), student)
    ref = _full_vocab_reference(teacher, student, ids, div, beta, T, missing)
    (g_ref,) = torch.autograd.grad(ref.sum(), student)
    assert torch.allclose(got.double(), ref, atol=1e-5, rtol=1e-4), (got, ref)
    assert torch.allclose(g_got.double(), g_ref, atol=1e-5, rtol=1e-4)
    assert (got >= -1e-6).all()


def test_tempered_tail_needs_the_tail_at_that_temperature():
    """Without the tail at T the loss refuses (the T=1 tail cannot give it); at T = capture_T it derives it."""
    teacher, student, ids, lps, _ = _setup(seed=4)
    with pytest.raises(ValueError, match="temperature 2.0"):
        sparse_divergence(student, ids, lps, None, LossConfig(temperature=2.0, missing="tail"))
    got = sparse_divergence(student, ids, lps, None, LossConfig(temperature=1.0, missing="tail"))
    ref = _full_vocab_reference(teacher, student, ids, "fkl", 0.5, 1.0, "tail")
    assert torch.allclose(got.double(), ref, atol=1e-5)


def test_chunked_topk_stores_the_tail_at_each_temperature():
    g = torch.Generator().manual_seed(6)
    hidden, w = torch.randn(9, 8, generator=g), torch.randn(V, 8, generator=g)
    ids, lps, tail, extra = chunked_topk(hidden, w, None, 6, chunk_size=4, tail_temperatures=(0.5, 2.0, 4.0))
    logits = hidden @ w.T
    for j, T in enumerate((0.5, 2.0, 4.0)):
        mass = F.softmax(logits / T, -1).gather(-1, ids).sum(-1)
        assert torch.allclose(extra[:, j].exp(), 1 - mass, atol=1e-5), T
    assert torch.allclose(tail, torch.log1p(-lps.exp().sum(-1)), atol=1e-5)


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_full_support_equals_trl_style_dense_losses(T):
    """With k = V nothing is missing: forward KL, reverse KL and JSD equal the dense GKD formulas."""
    teacher, student, ids, lps, tail = _setup(seed=1, k=V)
    lt, ls = F.log_softmax(teacher / T, -1), F.log_softmax(student / T, -1)
    fkl = F.kl_div(ls, lt, log_target=True, reduction="none").sum(-1)
    rkl = F.kl_div(lt, ls, log_target=True, reduction="none").sum(-1)
    beta = 0.3
    mix = torch.logsumexp(torch.stack([ls + math.log(1 - beta), lt + math.log(beta)]), 0)
    jsd = beta * F.kl_div(mix, lt, log_target=True, reduction="none").sum(-1) + (1 - beta) * F.kl_div(
        mix, ls, log_target=True, reduction="none"
    ).sum(-1)
    for div, ref in [("fkl", fkl), ("rkl", rkl), ("jsd", jsd)]:
        got = sparse_divergence(student, ids, lps, None, LossConfig(divergence=div, beta=beta, temperature=T, missing="zero"))
        assert torch.allclose(got.double(), ref * T * T, atol=1e-6), div


def test_divergence_is_zero_when_student_equals_teacher_on_buckets():
    teacher, _, ids, lps, tail = _setup(seed=2)
    for div in ["fkl", "rkl", "jsd", "tvd"]:
        d = sparse_divergence(teacher.clone(), ids, lps, tail, LossConfig(divergence=div, missing="tail"))
        assert d.abs().max() < 1e-6, div


def test_jsd_beta_endpoints_are_kls():
    _, student, ids, lps, tail = _setup(seed=3)
    for beta, div in [(0.0, "fkl"), (1.0, "rkl")]:
        a = sparse_divergence(student, ids, lps, tail, LossConfig(divergence="jsd", beta=beta))
        b = sparse_divergence(student, ids, lps, tail, LossConfig(divergence=div))
        assert torch.allclose(a, b)


def test_chunked_topk_matches_full_softmax():
    g = torch.Generator().manual_seed(5)
    hidden, w = torch.randn(9, 8, generator=g), torch.randn(V, 8, generator=g)
    ids, lps, tail = chunked_topk(hidden, w, None, 6, chunk_size=2)
    full = F.log_softmax(hidden @ w.T, -1)
    v, i = full.topk(6, -1)
    assert torch.equal(ids, i) and torch.allclose(lps, v, atol=1e-6)
    assert torch.allclose(tail.exp() + lps.exp().sum(-1), torch.ones(9), atol=1e-5)


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="divergence"):
        LossConfig(divergence="kl2")
    with pytest.raises(ValueError, match="missing"):
        LossConfig(missing="uniform")

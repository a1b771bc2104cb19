"""Each sparse divergence against a dense, naive reference on small tensors: values and gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from sealion.distill.losses import LossConfig, chunked_topk, sparse_divergence

V, N, K = 40, 6, 7


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


def _dense_reference(student, ids, lps, tail, div, beta, T, missing):
    """Naive full-vocabulary (zero) or bucketed (tail) computation with explicit dense tensors."""
    q = F.softmax(student / T, -1)
    if missing == "zero":
        p = torch.zeros_like(q)
        p.scatter_(-1, ids, F.softmax(lps / T, -1))
        if div == "rkl":
            qr = torch.zeros_like(q)
            qr.scatter_(-1, ids, q.gather(-1, ids))
            qr = qr / qr.sum(-1, keepdim=True)
            return _dense_kl(qr, torch.where(p > 0, p, torch.ones_like(p))) * T * T
    else:
        onehot = torch.zeros(N, V, ids.shape[1] + 1, dtype=q.dtype)
        onehot[:, :, -1] = 1.0
        for n in range(N):
            for j, v in enumerate(ids[n].tolist()):
                onehot[n, v, -1] = 0.0
                onehot[n, v, j] = 1.0
        q = torch.einsum("nv,nvb->nb", q, onehot)
        p = F.softmax(torch.cat([lps, tail[:, None]], -1) / T, -1)
    if div == "fkl":
        d = _dense_kl(p, q)
    elif div == "rkl":
        d = _dense_kl(q, p)
    elif div == "jsd":
        m = beta * p + (1 - beta) * q
        d = beta * _dense_kl(p, m) + (1 - beta) * _dense_kl(q, m)
    else:
        d = 0.5 * (p - q).abs().sum(-1)
    return d * T * T


@pytest.mark.parametrize("missing", ["zero", "tail"])
@pytest.mark.parametrize("div,beta", [("fkl", 0.5), ("rkl", 0.5), ("jsd", 0.5), ("jsd", 0.1), ("jsd", 0.9), ("tvd", 0.5)])
@pytest.mark.parametrize("T", [1.0, 2.0])
def test_sparse_divergence_matches_dense_reference(missing, div, beta, T):
    _, student, ids, lps, tail = _setup()
    cfg = LossConfig(divergence=div, beta=beta, temperature=T, missing=missing)
    got = sparse_divergence(student, ids, lps, tail, cfg)
    (g_got,) = torch.autograd.grad(got.sum(), student)
    ref = _dense_reference(student, ids, lps, tail, div, beta, T, missing)
    (g_ref,) = torch.autograd.grad(ref.sum(), student)
    assert torch.allclose(got.double(), ref, atol=1e-5, rtol=1e-4), (got, ref)
    assert torch.allclose(g_got.double(), g_ref, atol=1e-5, rtol=1e-4)
    assert (got >= -1e-6).all()


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

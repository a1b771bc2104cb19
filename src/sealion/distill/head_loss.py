"""The student's LM head and its loss in one pass: values and gradients chunk by chunk, nothing recomputed.

A Gemma LM head is a [262144, H] matrix, so the logits of a batch are the largest tensor of a distillation step and
their projection its largest cost. Autograd through a chunked projection (with activation checkpointing, so only
one [chunk, V] block is alive) computes every chunk's logits twice and runs log-softmax, cross-entropy and their
backward passes as separate sweeps over the vocabulary. Here each chunk is projected once and its gradient is
written down directly:

* every divergence sees the student only through the log-probabilities at the teacher's k ids,
  logq_s = z[ids] / T - logsumexp(z / T) (losses.divergence_from_gathered), so autograd runs on that [c, k] tensor
  and gives g = dL/dlogq_s; then dL/dz = (scatter(g at ids) - softmax(z / T) * sum(g)) / T;
* cross-entropy adds ce_coef * (softmax(z) - onehot(target));
* a final soft-cap z = cap * tanh(x / cap) multiplies by 1 - (z / cap)^2;

and the chunk's gradient G = dL/dx gives dL/dh = G W and dL/dW += G^T h right away. A dense teacher (every id:
TRL's objective) skips even the [c, k] autograd: its gradient is written in closed form (`_dense_chunk`) into
buffers that a `Workspace` keeps from one step to the next. The backward pass only hands
these over (scaled by the incoming gradient). Three vocabulary-sized matmuls per chunk instead of four, one
softmax instead of four sweeps, and the same numbers as autograd (tests/distill/test_head_loss.py).

The loss must be linear in the per-position terms: loss = kd_coef * sum(kd) + ce_coef * sum(ce), which is how
train.py weighs them (the coefficients carry the global batch normalisation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .losses import (LossConfig, Workspace, divergence_from_gathered, log_softmax_, logsumexp_, project_logits,
                     take_buffer, teacher_log_probs)


@dataclass
class HeadTargets:
    """What the loss compares the student with at the scored positions (one row per position)."""

    targets: torch.Tensor  # [n] next-token ids, for cross-entropy
    ids: torch.Tensor  # [n, k] teacher's token ids
    logprobs: torch.Tensor  # [n, k] teacher's log-probabilities at the capture temperature
    tail: torch.Tensor | None  # [n] teacher's log-mass outside the ids
    cfg: LossConfig
    kd_coef: float = 1.0
    ce_coef: float = 0.0
    softcap: float | None = None
    capture_temperature: float = 1.0
    workspace: Workspace | None = None  # keeps the dense objective's [chunk, V] buffers between steps


def _logits(h, weight, bias, softcap):
    """The chunk's (soft-capped) logits, in float32 or float64."""
    z = F.linear(h, weight, bias)
    if z.dtype not in (torch.float32, torch.float64):  # half-precision models: the softmax runs in fp32
        z = z.float()
    if softcap:
        z.div_(softcap).tanh_().mul_(softcap)
    return z


def _chunk(h, weight, bias, t: HeadTargets, s: int, e: int, want_grad: bool, work=None):
    """(kd, ce, agree, G) for positions s:e; G = dL/d(pre-softcap logits) or None."""
    T = t.cfg.temperature
    ids, targets = t.ids[s:e], t.targets[s:e]
    if work is not None:  # the dense objective
        z = project_logits(h, weight, bias, t.softcap, out=work[0][: h.shape[0]])
        return _dense_chunk(z, t, s, e, want_grad, work[1:])
    z = _logits(h, weight, bias, t.softcap)
    # the teacher's best id: the first of a top-k, anywhere in a dense (vocabulary-order) row
    dense = ids.shape[1] >= z.shape[1]
    best = t.logprobs[s:e].argmax(-1) if dense else ids[:, 0]
    agree = (z.argmax(-1) == best).to(z.dtype)
    # every id present: nothing is missing, and "zero" is the exact full-vocabulary divergence (a tail bucket of
    # mass 0 would only add float32 rounding)
    cfg = replace(t.cfg, missing="zero") if dense and t.cfg.missing != "zero" else t.cfg
    lse_t = torch.logsumexp(z / T if T != 1.0 else z, dim=-1)
    lse_1 = lse_t if T == 1.0 else torch.logsumexp(z, dim=-1)
    ce = lse_1 - z.gather(1, targets[:, None]).squeeze(1)
    logq_s = z.gather(1, ids) / T - lse_t[:, None]
    tail = None if t.tail is None else t.tail[s:e]
    if not want_grad:
        kd = divergence_from_gathered(logq_s, t.logprobs[s:e], tail, cfg, capture_temperature=t.capture_temperature)
        return kd, ce, agree, None
    with torch.enable_grad():
        leaf = logq_s.detach().requires_grad_()
        kd = divergence_from_gathered(leaf, t.logprobs[s:e], tail, cfg, capture_temperature=t.capture_temperature)
        (g,) = torch.autograd.grad(kd.sum() * t.kd_coef, leaf)
    kd = kd.detach()
    g = g / T
    g_sum = g.sum(-1, keepdim=True)
    if T == 1.0:  # one softmax serves both terms
        G = (z - lse_t[:, None]).exp_().mul_(t.ce_coef - g_sum)
    else:
        G = ((z / T) - lse_t[:, None]).exp_().mul_(-g_sum)
        if t.ce_coef:
            G.add_((z - lse_1[:, None]).exp_(), alpha=t.ce_coef)
    G.scatter_add_(1, ids, g)
    if t.ce_coef:
        G.scatter_add_(1, targets[:, None], torch.full_like(ce[:, None], -t.ce_coef))
    if t.softcap:
        G.mul_(z.div_(t.softcap).square_().neg_().add_(1.0))
    return kd, ce, agree, G


_DENSE_KINDS = ("fkl", "rkl", "jsd")


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of two [c, V] blocks, [c], without a [c, V] product."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def _dense_chunk(z, t: HeadTargets, s: int, e: int, want_grad: bool, work):
    """`_chunk` for a teacher row over every id (the dense objective), in closed form, in reused buffers.

    With p the teacher and q = softmax(z / T) the student over the whole vocabulary, each divergence's gradient with
    respect to z / T is q * (g - sum(q g)) for a per-id g (fkl: q - p outright; rkl: g = log q - log p; jsd:
    g = (1 - beta) (log q - log m), the terms through m cancelling). Autograd through the same formulas makes ~40
    vocabulary-sized sweeps per chunk, each into a fresh buffer; this makes ~12 into the logits' own buffer `z`
    (overwritten) and three reused ones (`work`), which is what makes the dense objective affordable.
    """
    T, beta, kind = t.cfg.temperature, t.cfg.beta, t.cfg.divergence
    if kind == "jsd" and beta in (0.0, 1.0):
        kind = "fkl" if beta == 0.0 else "rkl"
    c = z.shape[0]
    q, a, b = (w[:c] for w in work)
    targets = t.targets[s:e]
    logp = t.logprobs[s:e].to(z.dtype)
    if t.capture_temperature != T:  # rescaled, and then renormalised: exact, every id is present
        logp = teacher_log_probs(logp, None, temperature=T, missing="zero",
                                 capture_temperature=t.capture_temperature).to(z.dtype)
    agree = (z.argmax(-1) == logp.argmax(-1)).to(z.dtype)
    z_target = z.gather(1, targets[:, None]).squeeze(1)
    lse_1 = None
    if T != 1.0:  # cross-entropy is at T = 1
        lse_1 = logsumexp_(z, a)
        z.div_(T)
    lse_t = log_softmax_(z, a)  # z is now log q; z = T * (log q + lse_t) rebuilds it
    logq = z
    if lse_1 is None:
        lse_1 = lse_t
    ce = lse_1.squeeze(1) - z_target
    torch.exp(logq, out=q)
    if kind == "fkl":  # sum p (log p - log q) = sum p log p - sum p log q; p = exp(finite) is never NaN
        torch.exp(logp, out=a)
        kd = _dot(a, logp) - _dot(a, logq)
        grad = a.neg_().add_(q) if want_grad else None
    elif kind == "rkl":  # sum q (log q - log p)
        d = torch.sub(logq, logp, out=a)
        kd = _dot(q, d)
        grad = d.sub_(kd[:, None]).mul_(q) if want_grad else None
    else:  # log m by logaddexp: finite wherever log p and log q are, even where both masses underflow to 0
        logm = torch.logaddexp(torch.add(logp, math.log(beta), out=a), torch.add(logq, math.log1p(-beta), out=b),
                               out=a)
        torch.exp(logp, out=b)
        kd_p = _dot(b, logp) - _dot(b, logm)
        d = logm.neg_().add_(logq)  # log q - log m
        kd_q = _dot(q, d)
        kd = beta * kd_p + (1 - beta) * kd_q
        grad = d.sub_(kd_q[:, None]).mul_(q).mul_(1 - beta) if want_grad else None
    kd = kd * (T * T)
    if not want_grad:
        return kd, ce, agree, None
    G = grad.mul_(t.kd_coef * T)  # d(kd_coef * T^2 * kd)/dz = kd_coef * T * d(kd)/d(z / T)
    if t.softcap or (t.ce_coef and T != 1.0):
        z.add_(lse_t).mul_(T)  # back to the (soft-capped) logits
    if t.ce_coef:
        G.add_(q if T == 1.0 else torch.sub(z, lse_1, out=b).exp_(), alpha=t.ce_coef)
        G.scatter_add_(1, targets[:, None], torch.full_like(ce[:, None], -t.ce_coef))
    if t.softcap:
        G.mul_(z.div_(t.softcap).square_().neg_().add_(1.0))
    return kd, ce, agree, G


def _chunks(hidden, weight, bias, t: HeadTargets, want_grad: bool):
    """(start, kd, ce, agree, G) for each chunk of `t.cfg.chunk_size` positions, in order.

    A dense teacher row (every id) gets four [chunk, V] buffers for the whole call: G is a view of one of them,
    valid until the next chunk."""
    n, vocab, size = hidden.shape[0], weight.shape[0], t.cfg.chunk_size
    work = None
    if t.ids.shape[1] >= vocab and t.cfg.divergence in _DENSE_KINDS:
        dtype = torch.promote_types(weight.dtype, torch.float32)
        work = [take_buffer(t.workspace, f"head{i}", (min(n, size), vocab), dtype, hidden.device) for i in range(4)]
    for s in range(0, n, size):
        e = s + size
        yield (s, *_chunk(hidden[s:e], weight, bias, t, s, e, want_grad, work))


def _totals(t: HeadTargets, kds: list, ces: list, agrees: list):
    kd, ce, agree = torch.cat(kds), torch.cat(ces), torch.cat(agrees)
    return t.kd_coef * kd.sum() + t.ce_coef * ce.sum(), kd, ce, agree


class _FusedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, t: HeadTargets):
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.zeros_like(hidden) if need_h else None
        # accumulate the weight's gradient in fp32 whatever the weights' dtype: chunks add up
        acc = torch.promote_types(weight.dtype, torch.float32)
        # the first chunk writes it: a [V, H] zero-fill would be a sweep of its own (670 MB at Gemma's vocabulary)
        grad_w = torch.empty(weight.shape, dtype=acc, device=weight.device) if need_w else None
        grad_b = torch.zeros(bias.shape, dtype=acc, device=bias.device) if need_b else None
        kds, ces, agrees = [], [], []
        for s, kd, ce, agree, G in _chunks(hidden, weight, bias, t, want_grad=True):
            kds.append(kd)
            ces.append(ce)
            agrees.append(agree)
            h = hidden[s : s + G.shape[0]]
            if grad_h is not None:
                grad_h[s : s + G.shape[0]] = G.to(weight.dtype) @ weight
            if grad_w is not None:
                torch.mm(G.t(), h.to(acc), out=grad_w) if s == 0 else grad_w.addmm_(G.t(), h.to(acc))
            if grad_b is not None:
                grad_b.add_(G.sum(0))
        loss, kd, ce, agree = _totals(t, kds, ces, agrees)
        ctx.grads = (grad_h, None if grad_w is None else grad_w.to(weight.dtype),
                     None if grad_b is None else grad_b.to(bias.dtype))
        ctx.mark_non_differentiable(kd, ce, agree)
        return loss, kd, ce, agree

    @staticmethod
    def backward(ctx, g_loss, *_):
        grads = ctx.grads
        del ctx.grads  # one backward per forward; the buffers go to autograd as they are
        if not bool(g_loss == 1):
            grads = tuple(None if g is None else g.mul_(g_loss.to(g.dtype)) for g in grads)
        return (*grads, None)


def fused_kd_ce(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, t: HeadTargets):
    """(loss, kd, ce, agree) for hidden states [n, H] of the scored positions.

    loss = t.kd_coef * sum(kd) + t.ce_coef * sum(ce) is differentiable with respect to hidden, weight and bias;
    kd, ce (per position, kd already times T^2) and top-1 agreement are plain values for logging. Without
    gradients (evaluation) the same values come chunk by chunk and nothing else is kept.
    """
    if not hidden.shape[0]:  # no scored positions: a zero loss that still reaches the parameters (DDP wants them all)
        z = hidden.new_zeros(0, dtype=torch.float32)
        return hidden.sum() * 0.0 + weight.sum() * 0.0, z, z, z
    if torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in (hidden, weight, bias)):
        return _FusedHeadLoss.apply(hidden, weight, bias, t)
    parts = [(kd, ce, agree) for _, kd, ce, agree, _ in _chunks(hidden, weight, bias, t, want_grad=False)]
    return _totals(t, *map(list, zip(*parts)))

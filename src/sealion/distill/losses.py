"""Divergences between a sparse teacher distribution and the student, and the chunked KD + CE loss.

Teacher rows come as the top-k ids, their log-probabilities (at the capture temperature, usually 1) and the log
of the mass outside them *at the training temperature*. Two ways to handle that missing mass:

* ``zero``: the teacher's top-k renormalised, zero elsewhere. Forward KL, JSD and TVD are then exact
  full-vocabulary divergences between that zero-extended teacher and the full student softmax (the student's
  mass outside the top-k enters JSD and TVD in closed form). Reverse KL would be infinite, so it renormalises the
  student over the same k tokens (documented in docs/distill.md).
* ``tail``: both distributions are collapsed to k+1 buckets (the k tokens, everything else); every divergence is
  computed on the buckets, exactly at every temperature. Tempering rescales the top-k log-probabilities by
  T_capture / T, which fixes their ratios but not their total: the tempered tail mass sum_{j outside} p_j^(1/T) /
  sum_j p_j^(1/T) depends on how the tail's mass is spread over its tokens, so it cannot be computed from the T=1
  tail mass. The capture therefore stores the tail log-mass at each temperature it can serve
  (``--tail-temperatures``) and training refuses another one (train.py). On a 262k vocabulary at T=2 with a
  top-128 tail of 0.61 at T=1, the true tempered tail is ~0.96; treating the tail as one token (what this module
  did before) gives ~0.11.

Generalised JSD follows Agarwal et al. (GKD) and TRL: M = beta*p + (1-beta)*q,
JSD_beta = beta*KL(p||M) + (1-beta)*KL(q||M); beta=0 is forward KL and beta=1 reverse KL.
All per-token divergences are multiplied by T^2 so gradients keep their scale across temperatures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DIVERGENCES = ("fkl", "rkl", "jsd", "tvd")
MISSING = ("zero", "tail")


@dataclass(frozen=True)
class LossConfig:
    divergence: str = "fkl"
    beta: float = 0.5  # JSD interpolation (0 = forward KL, 1 = reverse KL)
    temperature: float = 1.0
    missing: str = "tail"
    kd_weight: float = 0.9
    ce_weight: float = 0.1
    chunk_size: int = 128  # positions per lm_head chunk

    def __post_init__(self):
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {DIVERGENCES}, got {self.divergence!r}")
        if self.missing not in MISSING:
            raise ValueError(f"missing must be one of {MISSING}, got {self.missing!r}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, stable on both sides of -ln 2; clamped away from log(0)."""
    x = x.clamp(max=-1e-7)
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """sum_i p_i (log p_i - log q_i) over the last dim, with 0 log 0 = 0."""
    p = logp.exp()
    live = p > 0
    # mask before multiplying: 0 * (-inf) would put NaN into the backward pass even under torch.where
    zero = torch.zeros_like(p)
    return (p * (torch.where(live, logp, zero) - torch.where(live, logq, zero))).sum(-1)


def _jsd(logp: torch.Tensor, logq: torch.Tensor, beta: float) -> torch.Tensor:
    logm = torch.logsumexp(torch.stack([logp + math.log(beta), logq + math.log1p(-beta)]), dim=0)
    return beta * _kl(logp, logm) + (1 - beta) * _kl(logq, logm)


def teacher_log_probs(
    logprobs: torch.Tensor, tail: torch.Tensor | None, *, temperature: float, missing: str, capture_temperature: float = 1.0
) -> torch.Tensor:
    """Teacher log-probabilities at `temperature`: [n,k] (zero) or [n,k+1] with the tail bucket last.

    `logprobs` are the top-k at `capture_temperature`; `tail` is the log-mass outside them at `temperature` (the
    training temperature). Without a tail it is derived from the top-k, which is only right when the two
    temperatures are equal.
    """
    a = capture_temperature / temperature
    lp = logprobs.float() * a if a != 1.0 else logprobs.float()
    inside = lp - torch.logsumexp(lp, dim=-1, keepdim=True)  # the tempered top-k, renormalised among themselves
    if missing == "zero":
        return inside
    if tail is None:
        if a != 1.0:
            raise ValueError(f"the tail at temperature {temperature} is needed (the top-k are at {capture_temperature})")
        tail = _log1mexp(torch.logsumexp(lp, dim=-1))
    t = tail.float()
    return torch.cat([inside + _log1mexp(t).unsqueeze(-1), t.unsqueeze(-1)], dim=-1)


def sparse_divergence(
    student_logits: torch.Tensor,
    ids: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    teacher_tail: torch.Tensor | None,
    cfg: LossConfig,
    *,
    capture_temperature: float = 1.0,
) -> torch.Tensor:
    """Per-position divergence (times T^2) between the sparse teacher and the student's full softmax.

    student_logits: [n, V] (after any final soft-capping); ids, teacher_logprobs: [n, k]; teacher_tail: [n] or None.
    """
    T = cfg.temperature
    logq_s = F.log_softmax(student_logits.float() / T, dim=-1).gather(-1, ids)
    return divergence_from_gathered(logq_s, teacher_logprobs, teacher_tail, cfg,
                                    capture_temperature=capture_temperature)


def divergence_from_gathered(
    logq_s: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    teacher_tail: torch.Tensor | None,
    cfg: LossConfig,
    *,
    capture_temperature: float = 1.0,
) -> torch.Tensor:
    """The divergence of `sparse_divergence` from the student's log-probabilities at the teacher's ids, [n, k].

    Every divergence here sees the student only through these k values (the rest of its softmax enters as the
    mass they leave over), which is what lets the fused head (head_loss.py) differentiate through a [n, k] tensor.
    """
    T = cfg.temperature
    logp = teacher_log_probs(
        teacher_logprobs, teacher_tail, temperature=T, missing=cfg.missing, capture_temperature=capture_temperature
    )
    kind, beta = cfg.divergence, cfg.beta
    if kind == "jsd" and beta == 0.0:
        kind = "fkl"
    elif kind == "jsd" and beta == 1.0:
        kind = "rkl"

    if cfg.missing == "tail":
        logq_out = _log1mexp(torch.logsumexp(logq_s, dim=-1))
        logq = torch.cat([logq_s, logq_out.unsqueeze(-1)], dim=-1)
        if kind == "fkl":
            d = _kl(logp, logq)
        elif kind == "rkl":
            d = _kl(logq, logp)
        elif kind == "jsd":
            d = _jsd(logp, logq, beta)
        else:
            d = 0.5 * (logp.exp() - logq.exp()).abs().sum(-1)
    else:
        q_s = logq_s.exp()
        q_out = (1.0 - q_s.sum(-1)).clamp(min=0.0)
        if kind == "fkl":
            d = _kl(logp, logq_s)
        elif kind == "rkl":
            logq_n = logq_s - torch.logsumexp(logq_s, dim=-1, keepdim=True)
            d = _kl(logq_n, logp)
        elif kind == "jsd":
            # outside the top-k, p = 0 and M = (1-beta) q: that region adds (1-beta) * q_out * log(1/(1-beta))
            d = _jsd(logp, logq_s, beta) - (1 - beta) * q_out * math.log1p(-beta)
        else:
            d = 0.5 * ((logp.exp() - q_s).abs().sum(-1) + q_out)
    return d * (T * T)


def project_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, softcap: float | None,
                   out: torch.Tensor | None = None):
    """Soft-capped logits; with `out` (float32 or float64), written into it, the soft-cap in place."""
    if out is None:
        logits = F.linear(hidden, weight, bias)
        return torch.tanh(logits / softcap) * softcap if softcap else logits
    if out.dtype == weight.dtype:
        torch.mm(hidden, weight.t(), out=out) if bias is None else torch.addmm(bias, hidden, weight.t(), out=out)
    else:
        out.copy_(F.linear(hidden, weight, bias))
    if softcap:
        out.div_(softcap).tanh_().mul_(softcap)
    return out


@torch.no_grad()
def chunked_topk(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, k: int, *, softcap=None, chunk_size=128,
    temperature: float = 1.0, tail_temperatures: tuple[float, ...] = (), workspace: Workspace | None = None,
):
    """The teacher's top-k (ids, log-probabilities, tail log-mass) at `temperature` for hidden states [n, H],
    chunk by chunk. With `tail_temperatures`, a fourth value [n, len(tail_temperatures)]: the log-mass outside the
    same ids at each of those temperatures (what the tempered tail bucket needs, see teacher_log_probs).

    `k` >= the vocabulary is the dense objective: every id in vocabulary order (no sort; the ids are one broadcast
    row, not an [n, V] tensor) and an empty tail; with a `workspace`, the [n, V] log-probabilities live in it."""
    vocab = weight.shape[0]
    if k >= vocab:
        return _dense_log_probs(hidden, weight, bias, softcap, chunk_size, temperature, tail_temperatures, workspace)
    ids, lps, tails, extra = [], [], [], []
    for s in range(0, hidden.shape[0], chunk_size):
        z = project_logits(hidden[s : s + chunk_size], weight, bias, softcap).float()
        logits = z / temperature if temperature != 1.0 else z
        v, i = logits.topk(k, dim=-1)  # on the logits: no vocabulary-sized log-softmax is written
        lse = torch.logsumexp(logits, dim=-1, keepdim=True)
        ids.append(i)
        lps.append(v - lse)
        tails.append(_tail_outside(logits, i, lse))
        if tail_temperatures:
            cols = []
            for t in tail_temperatures:
                zt = z / t
                cols.append(_tail_outside(zt, i, torch.logsumexp(zt, dim=-1, keepdim=True)))
            extra.append(torch.stack(cols, dim=-1))
    if not ids:
        e = hidden.new_zeros((0, k))
        out = (e.long(), e.float(), hidden.new_zeros(0).float())
        return (*out, hidden.new_zeros((0, len(tail_temperatures))).float()) if tail_temperatures else out
    out = (torch.cat(ids), torch.cat(lps), torch.cat(tails))
    return (*out, torch.cat(extra)) if tail_temperatures else out


class Workspace:
    """Vocabulary-sized buffers kept from one training step to the next, one per name.

    A fresh [c, V] tensor is larger than malloc's mmap threshold, so it comes from the OS and its first writes pay a
    page fault per 4 KiB (~0.5 ms per MB here, as much as the sweeps themselves). The owner (the trainer's
    objective, the online teacher) keeps one of these; what `take` hands out is overwritten by the next call with
    the same name."""

    def __init__(self):
        self._flat: dict[str, torch.Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
        n = math.prod(shape)
        buf = self._flat.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype or buf.device != torch.device(device):
            self._flat.pop(name, None)  # the old one goes before the new one is allocated
            buf = self._flat[name] = torch.empty(n, dtype=dtype, device=device)
        return buf[:n].view(shape)


def take_buffer(workspace: Workspace | None, name: str, shape, dtype, device) -> torch.Tensor:
    if workspace is None:
        return torch.empty(shape, dtype=dtype, device=device)
    return workspace.take(name, tuple(shape), dtype, device)


def logsumexp_(z: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """The log-sum-exp [c, 1] over the last dim of a [c, V] block, its exponentials written to the same-sized
    `scratch`, so no vocabulary-sized temporary is allocated (see Workspace for why that matters)."""
    mx = z.amax(-1, keepdim=True)
    return torch.sub(z, mx, out=scratch).exp_().sum(-1, keepdim=True).log_().add_(mx)


def log_softmax_(z: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """log-softmax over the last dim of a [c, V] block, in place (scratch as in logsumexp_); returns the
    log-sum-exp [c, 1]."""
    lse = logsumexp_(z, scratch)
    z.sub_(lse)
    return lse


def _dense_log_probs(hidden, weight, bias, softcap, chunk_size, temperature, tail_temperatures, workspace=None):
    n, vocab, dev = hidden.shape[0], weight.shape[0], hidden.device
    # one projection for every row into the result itself: MKL runs [n, H] x [H, V] at ~1.3x the rate of
    # 128-row pieces, and the result is the one [n, V] tensor this needs anyway
    lp = take_buffer(workspace, "teacher", (n, vocab), torch.float32, dev)
    lp = project_logits(hidden, weight, bias, softcap, out=lp)
    # the student's fused head (head_loss.py) reuses this buffer under the same name: never alive at once
    scratch = take_buffer(workspace, "head1", (min(n, chunk_size), vocab), torch.float32, dev)
    for s in range(0, n, chunk_size):
        block = lp[s : s + chunk_size]
        if temperature != 1.0:
            block.div_(temperature)
        log_softmax_(block, scratch[: block.shape[0]])
    ids = torch.arange(vocab, device=hidden.device).expand(n, vocab)
    out = (ids, lp, torch.full((n,), -math.inf, device=hidden.device))
    return (*out, torch.full((n, len(tail_temperatures)), -math.inf, device=hidden.device)) if tail_temperatures \
        else out


def _tail_outside(logits: torch.Tensor, ids: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """log of the softmax mass outside `ids`, summed over the other logits directly: log(1 - sum(top-k)) would
    lose everything below float32's epsilon (a peaked teacher's tail is often e^-18)."""
    if ids.shape[-1] >= logits.shape[-1]:
        return torch.full_like(lse[:, 0], -math.inf)
    return (torch.logsumexp(logits.scatter(-1, ids, -math.inf), dim=-1, keepdim=True) - lse)[:, 0]

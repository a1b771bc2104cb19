"""Exact greedy decoding with a cheap LM head on CPU.

On a CPU the LM head of a Gemma model (262,144 x hidden, fp32) is the largest matmul of a decode step, and oneDNN
runs the same product in bf16 several times faster. For greedy decoding only the argmax matters, so:

1. score every vocabulary row in bf16 (`a_j`) with a rigorous bound on its error:
   |a_j - e_j| <= eps_j = SLACK * ||h|| * ||w_j|| <= eps = SLACK * ||h|| * max_j ||w_j||, where e_j is the fp32 logit (bf16 rounds each input and the
   output with relative error 2^-8, and accumulates in fp32; Cauchy-Schwarz bounds the sum; SLACK = 2^-6 > 3 * 2^-8
   leaves room for the accumulation order);
2. the fp32 argmax j* satisfies a_j* >= e_j* - eps >= e_k - eps >= a_k - 2 eps for every k, so every row with
   a_j >= max(a) - 2 eps is a candidate; when that is too many, only those with a_j + eps_j >= max_k(a_k - eps_k)
   stay; the candidates are recomputed in fp32 (and soft-capped as the model does) and their argmax is returned.

The engine calls the decoder for hidden states and asks this head for token ids, so no vocabulary-sized logits
tensor is written at all. The result is the argmax of the fp32 logits (up to fp32 rounding differences in the
order of the sum, which a full fp32 matmul at another batch size has too). It is used only when every row in the
batch is greedy and no logits processor looks at the scores.
"""

from __future__ import annotations

import torch

SLACK = 2.0**-6
MAX_CANDIDATE_FRACTION = 1 / 8  # beyond this many fp32 rescoring rows, the plain fp32 matmul is as cheap


class ScreenedHead:
    """A bf16 screen for one bias-free `torch.nn.Linear` LM head (weights as they are at construction)."""

    def __init__(self, head: torch.nn.Linear):
        weight = head.weight.detach()
        self.head = head
        self.weight = weight
        self.weight_bf16 = weight.to(torch.bfloat16)
        self.row_norms = weight.float().norm(dim=1)
        self.max_row_norm = float(self.row_norms.max())
        # the per-row bound only helps when a few rows are much longer than the rest
        self.uneven = self.max_row_norm > 1.5 * float(self.row_norms.median())
        self._buffers: dict[int, torch.Tensor] = {}
        self.calls = 0  # forwards that took the screened path (tests and benchmarks read it)
        self.misses = 0  # consecutive forwards that fell back to the fp32 head (a flat distribution)

    @staticmethod
    def applies_to(head: object) -> bool:
        w = getattr(head, "weight", None)
        return (isinstance(head, torch.nn.Linear) and head.bias is None and w is not None
                and w.dtype == torch.float32 and w.device.type == "cpu")

    def _candidates(self, x: torch.Tensor) -> torch.Tensor | None:
        """Sorted vocabulary rows that could hold some row's fp32 argmax, or None when too many could."""
        approx = self._scores(x)  # bf16 scores
        x_norm = x.norm(dim=1)
        threshold = approx.amax(dim=1).float() - 2 * SLACK * x_norm * self.max_row_norm
        # compared in bf16: lower the threshold by more than one bf16 step so its rounding cannot drop a candidate
        threshold = (threshold - threshold.abs() * 2.0**-6).to(torch.bfloat16)
        # a - t >= 0 whenever a >= t (a rounded difference keeps its sign or becomes 0): a superset, never less
        approx.sub_(threshold[:, None])
        candidates = (approx.amax(dim=0) >= 0).nonzero().squeeze(1)
        limit = MAX_CANDIDATE_FRACTION * self.weight.shape[0]
        if candidates.numel() > limit and self.uneven:
            # the one-norm-for-all bound was loose (row norms vary a lot): tighten it with each row's own norm.
            # floor <= max_k(a_k - eps_k) over all k, and the argmax is among these candidates, so it stays.
            sub = approx.index_select(1, candidates).float() + threshold.float()[:, None]
            eps = (SLACK * x_norm)[:, None] * self.row_norms.index_select(0, candidates)[None, :]
            floor = (sub - eps).amax(dim=1, keepdim=True)
            candidates = candidates[((sub + eps) >= floor).any(dim=0)]
        return None if candidates.numel() > limit else candidates

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        """x @ W^T in bf16, into a buffer kept per batch size (a fresh 262k-wide result each decode step costs
        page faults that show up as a few ms)."""
        n = x.shape[0]
        buf = self._buffers.get(n)
        if buf is None:
            if len(self._buffers) >= 4:
                self._buffers.clear()
            buf = self._buffers[n] = torch.empty((n, self.weight.shape[0]), dtype=torch.bfloat16)
        return torch.mm(x.to(torch.bfloat16), self.weight_bf16.t(), out=buf)

    def argmax(self, hidden: torch.Tensor, softcap: float | None = None) -> torch.Tensor:
        """Token ids [B] = argmax of softcap(hidden @ W^T) in fp32, for hidden states [B, H]."""
        x = hidden.float()
        candidates = self._candidates(x)
        if candidates is None:
            self.misses += 1  # a flat distribution: nothing to save, the plain fp32 head answers
            return self._capped(torch.nn.functional.linear(x, self.weight), softcap).argmax(-1)
        self.calls += 1
        self.misses = 0
        scores = self._capped(torch.nn.functional.linear(x, self.weight.index_select(0, candidates)), softcap)
        return candidates[scores.argmax(-1)]  # candidates ascend, so ties go to the lowest id as in a full argmax

    @staticmethod
    def _capped(logits: torch.Tensor, softcap: float | None) -> torch.Tensor:
        if softcap is None:
            return logits
        return torch.tanh(logits / softcap) * softcap  # the same operations as the model's own final soft-cap


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 flags for native bf16 matmuls (oneDNN uses them)
SCREEN_MIN_SPEEDUP = 1.25  # the bf16 product must beat fp32 by this much before the screen is used


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_speedup(head: torch.nn.Linear, batch: int = 4, repeats: int = 3) -> float:
    """fp32 time / bf16 time of the head's product for `batch` rows (best of a few runs; ~50 ms on a 262k head)."""
    import time

    weight = head.weight.detach()
    w16 = weight.to(torch.bfloat16)
    x = torch.randn(batch, weight.shape[1])
    x16 = x.to(torch.bfloat16)

    def best(fn) -> float:
        fn()  # warm: first calls pick kernels
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    with torch.inference_mode():
        fp32 = best(lambda: torch.nn.functional.linear(x, weight))
        bf16 = best(lambda: torch.mm(x16, w16.t()))
    return fp32 / max(bf16, 1e-9)


def screen_pays_off(head: torch.nn.Linear, flags: set[str] | None = None, speedup=bf16_speedup) -> bool:
    """Whether this CPU runs the screen's bf16 product faster than the plain fp32 head: yes with native bf16
    (AVX-512 BF16, AMX); otherwise (AVX2-only machines emulate bf16) only if a quick timing says so."""
    flags = cpu_flags() if flags is None else flags
    if any(f in flags for f in BF16_CPU_FLAGS):
        return True
    return speedup(head) >= SCREEN_MIN_SPEEDUP

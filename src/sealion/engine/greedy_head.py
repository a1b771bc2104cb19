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

`Int8ScreenedHead` does the same with an int8 copy of the head and a per-row bound: half the bf16 screen's bytes,
which is what a decode step on a small quantised model is made of (the fp32 head of the 270M demo model is 63% of
its weights). `AdaptiveScreen` times the plain head and both screens once per batch size and keeps the fastest
(or none): the int8 kernel wins at batch 1, bf16 GEMM at larger batches, and CPUs differ in which kernels they run
well.
"""

from __future__ import annotations

import torch

SLACK = 2.0**-6
MAX_CANDIDATE_FRACTION = 1 / 8  # beyond this many fp32 rescoring rows, the plain fp32 matmul is as cheap


class ScreenedHead:
    """A bf16 screen for one bias-free `torch.nn.Linear` LM head (weights as they are at construction)."""

    def __init__(self, head: torch.nn.Linear):
        self._init_common(head)
        weight = self.weight
        self.weight_bf16 = weight.to(torch.bfloat16)
        self.row_norms = weight.float().norm(dim=1)
        self.max_row_norm = float(self.row_norms.max())
        # the per-row bound only helps when a few rows are much longer than the rest
        self.uneven = self.max_row_norm > 1.5 * float(self.row_norms.median())
        self._buffers: dict[int, torch.Tensor] = {}

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
            return self.plain_argmax(x, softcap)
        self.calls += 1
        self.misses = 0
        scores = self._capped(torch.nn.functional.linear(x, self.weight.index_select(0, candidates)), softcap)
        return candidates[scores.argmax(-1)]  # candidates ascend, so ties go to the lowest id as in a full argmax

    def plain_argmax(self, hidden: torch.Tensor, softcap: float | None = None) -> torch.Tensor:
        """The unscreened answer: the full fp32 product, capped, argmaxed."""
        return self._capped(torch.nn.functional.linear(hidden.float(), self.weight), softcap).argmax(-1)

    def _init_common(self, head: torch.nn.Linear) -> None:
        self.head = head
        self.weight = head.weight.detach()
        self.calls = 0  # forwards that took the screened path (tests and benchmarks read it)
        self.misses = 0  # consecutive forwards that fell back to the fp32 head (a flat distribution)

    @staticmethod
    def _capped(logits: torch.Tensor, softcap: float | None) -> torch.Tensor:
        if softcap is None:
            return logits
        return torch.tanh(logits / softcap) * softcap  # the same operations as the model's own final soft-cap


class Int8ScreenedHead(ScreenedHead):
    """The same screen with an int8 copy of the head (one scale per row) scored by PyTorch's weight-only int8
    kernel: a quarter of the fp32 head's bytes, half the bf16 screen's. The bound is per row and rigorous for a
    kernel that rounds the activations to bf16, accumulates in fp32 and rounds its output to bf16:

    y_j - e_j = x.(w~_j - w_j) + (x~ - x).w~_j + accumulation + output rounding, where w~_j = codes_j * bf16(s_j)
    is the row the kernel multiplies and x~ = bf16(x); Cauchy-Schwarz with the residual norms D_j = ||w~_j - w_j||
    (exact, computed once in float64) and Q_j = ||w~_j|| gives
    |y_j - e_j| <= ||x|| D_j + (||x~ - x|| + 2^-10 ||x~||) Q_j + 2^-7 |y_j|  (times 1.01 for the float32 sums).
    Rows whose interval [y_j - eps_j, y_j + eps_j] reaches the highest lower end are rescored in fp32."""

    def __init__(self, head: torch.nn.Linear):
        from ..quant.modules import quantize_int8_rows, row_blocks

        self._init_common(head)
        weight = self.weight
        codes, scales = quantize_int8_rows(weight)
        self.codes = codes
        self.scales_bf16 = scales.to(torch.bfloat16)
        residual = torch.empty(weight.shape[0], dtype=torch.float64)
        self.row_norms = torch.empty(weight.shape[0], dtype=torch.float32)
        for rows in row_blocks(weight.shape[0]):  # small float64 temporaries, a block of rows at a time
            used = codes[rows].float() * self.scales_bf16[rows].float()[:, None]
            residual[rows] = (used.double() - weight[rows].double()).norm(dim=1)
            self.row_norms[rows] = used.norm(dim=1)
        # rounded up a little so float32 storage cannot make the bound smaller than the float64 value
        self.residual_norms = (residual * (1 + 2.0**-20)).float()
        self.row_norms *= 1 + 2.0**-20

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        xb = x.to(torch.bfloat16)
        if xb.shape[0] <= INT8_ROWS_PER_CALL:
            return torch.ops.aten._weight_int8pack_mm(xb, self.codes, self.scales_bf16)
        return torch.cat([torch.ops.aten._weight_int8pack_mm(part, self.codes, self.scales_bf16)
                          for part in xb.split(INT8_ROWS_PER_CALL)])

    def bounds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores y [B, V], eps [B, V]) with |y - x @ W^T| <= eps elementwise."""
        y = self._scores(x).float()
        xb = x.to(torch.bfloat16).float()
        n_x = x.norm(dim=1, keepdim=True)
        n_round = (xb - x).norm(dim=1, keepdim=True) + 2.0**-10 * xb.norm(dim=1, keepdim=True)
        eps = y.abs().mul_(2.0**-7).add_(n_x * self.residual_norms).add_(n_round * self.row_norms).mul_(1.01)
        return y, eps

    def _candidates(self, x: torch.Tensor) -> torch.Tensor | None:
        y, eps = self.bounds(x)
        floor = (y - eps).amax(dim=1, keepdim=True)
        candidates = ((y + eps) >= floor).any(dim=0).nonzero().squeeze(1)
        return None if candidates.numel() > MAX_CANDIDATE_FRACTION * self.weight.shape[0] else candidates


# PyTorch's int8 kernel slows down sharply past 8 rows a call (AVX2, demo head 262144 x 640: 52 ms at 8 rows,
# 125 ms at 16, so two calls of 8 take 104 ms); smaller batches are one call.
INT8_ROWS_PER_CALL = 8

SCREEN_MIN_SPEEDUP = 1.25  # a screen's scoring product must beat the fp32 head by this much to be used


SCREENS = {"bf16": ScreenedHead, "int8": Int8ScreenedHead}


def _best_time(fn, repeats: int = 3) -> float:
    import time

    fn()  # warm: first calls pick kernels
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


class AdaptiveScreen(ScreenedHead):
    """Per batch size, the fastest of the plain fp32 head and the two screens: the int8 kernel is a matrix-vector
    product per row (fastest at batch 1, several times slower than oneDNN's bf16 GEMM at batch 16), so the choice is
    timed once per power-of-two batch size on first use (a screen only when it beats fp32 by SCREEN_MIN_SPEEDUP)
    and kept. `calls` / `misses` count like a single screen's, for the engine's give-up rule."""

    def __init__(self, head: torch.nn.Linear):
        self._init_common(head)
        self._screens: dict[str, ScreenedHead] = {}
        self._choice: dict[int, str | None] = {}

    def _screen(self, kind: str) -> ScreenedHead:
        if kind not in self._screens:
            self._screens[kind] = SCREENS[kind](self.head)
        return self._screens[kind]

    def screen_for(self, batch: int) -> ScreenedHead | None:
        bucket = 1 << max(0, batch - 1).bit_length()
        if bucket not in self._choice:
            x = torch.randn(bucket, self.weight.shape[1])
            # no_grad, not inference_mode: the screens and their output buffers are made here and used later
            with torch.no_grad():
                best, best_time = None, _best_time(lambda: torch.nn.functional.linear(x, self.weight))
                best_time /= SCREEN_MIN_SPEEDUP
                for kind in SCREENS:
                    screen = self._screen(kind)
                    t = _best_time(lambda: screen._scores(x))
                    if t < best_time:
                        best, best_time = kind, t
            self._choice[bucket] = best
            # a copy no batch size uses is memory for nothing (~half the fp32 head for bf16): made again if needed
            for kind in set(self._screens) - set(self._choice.values()):
                del self._screens[kind]
        kind = self._choice[bucket]
        return None if kind is None else self._screens[kind]

    def argmax(self, hidden: torch.Tensor, softcap: float | None = None) -> torch.Tensor:
        screen = self.screen_for(hidden.shape[0])
        if screen is None:  # the plain head is fastest at this batch size: not a miss
            return self.plain_argmax(hidden, softcap)
        before = screen.calls
        out = screen.argmax(hidden, softcap)
        if screen.calls > before:
            self.calls, self.misses = self.calls + 1, 0
        else:
            self.misses += 1
        return out


def choose_screen(head: torch.nn.Linear, kind: str | bool = "auto") -> ScreenedHead | AdaptiveScreen | None:
    """The greedy screen for this head: `kind` "bf16" or "int8" (True = "bf16") builds that one; "auto" an
    `AdaptiveScreen`, which picks per batch size by timing on this CPU (never slower than the plain head); False,
    or a head a screen cannot serve, None."""
    if not kind or not ScreenedHead.applies_to(head):
        return None
    if kind is True or kind in SCREENS:
        return SCREENS["bf16" if kind is True else kind](head)
    return AdaptiveScreen(head)

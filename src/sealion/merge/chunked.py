"""Row-block execution of the methods whose result can be produced a block at a time, so a merge never holds a
whole large tensor (the 262k-row embeddings dominate a Gemma checkpoint).

Each runner gets `read(r0, r1) -> (base_block, [model_blocks])` in float32 and `emit(block)`; it may take extra
passes over the rows for global statistics (SLERP's angle, TIES's magnitude threshold). The outputs equal the
whole-tensor functions in `methods` (bit for bit where no global float sum is involved; tests check both).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from . import methods as M
from .methods import MethodSpec

Read = Callable[[int, int], tuple[torch.Tensor | None, list[torch.Tensor]]]
Emit = Callable[[torch.Tensor], None]


def blocks(rows: int, row_elems: int, chunk_elems: int):
    step = max(1, chunk_elems // max(1, row_elems))
    for r0 in range(0, rows, step):
        yield r0, min(rows, r0 + step)


def can_chunk(spec: MethodSpec, params: Sequence[dict], options: dict) -> bool:
    if spec.name in ("linear", "slerp"):
        return True
    if spec.name == "model_stock":
        return False
    dense = all(float(p.get("density", 1.0)) >= 1 for p in params)
    if spec.sparsifier is None or dense:
        return True
    return spec.sparsifier == "magnitude" and not options.get("rescale") and options.get("tie_break") != "mergekit"


def run(spec: MethodSpec, rows: int, row_elems: int, chunk_elems: int, read: Read, emit: Emit,
        params: Sequence[dict], options: dict) -> None:
    weights = [p["weight"] for p in params] if spec.model_params.get("weight", 0) is None else None
    bl = list(blocks(rows, row_elems, chunk_elems))
    if spec.name == "linear":
        for r0, r1 in bl:
            _, ms = read(r0, r1)
            emit(M.linear(ms, weights, bool(options.get("normalize", True))))
        return
    if spec.name == "slerp":
        dot = n0 = n1 = 0.0
        for r0, r1 in bl:
            b, (m,) = read(r0, r1)
            b64, m64 = b.double(), m.double()
            dot += float((b64 * m64).sum())
            n0 += float((b64 * b64).sum())
            n1 += float((m64 * m64).sum())
        n0, n1 = n0**0.5, n1**0.5
        unit = dot / ((n0 if n0 > 1e-8 else 1.0) * (n1 if n1 > 1e-8 else 1.0))
        s0, s1 = M.slerp_coefficients(unit, float(options["t"]))
        for r0, r1 in bl:
            b, (m,) = read(r0, r1)
            emit(s0 * b + s1 * m)
        return
    # task-vector family: dense, or magnitude-trimmed with thresholds found by a streaming radix select
    sparse = [spec.sparsifier == "magnitude" and float(p.get("density", 1.0)) < 1 for p in params]
    numel = rows * row_elems
    selectors = [_MagnitudeSelect(M.keep_count(float(p["density"]), numel)) if s else None for p, s in zip(params, sparse)]
    if any(sparse):
        for stage in (1, 2):
            for r0, r1 in bl:
                b, ms = read(r0, r1)
                for sel, m in zip(selectors, ms):
                    if sel is not None:
                        sel.observe(stage, _mag_bits(m - b))
            for sel in selectors:
                if sel is not None:
                    sel.settle(stage)
    for r0, r1 in bl:
        b, ms = read(r0, r1)
        taus = []
        for sel, m in zip(selectors, ms):
            tau = m - b
            if sel is not None:
                tau = tau * sel.keep(_mag_bits(tau)).view(tau.shape)
            taus.append(tau)
        emit(M.combine_task_vectors(
            b, taus, weights, consensus=spec.consensus, normalize=bool(options.get("normalize")),
            lam=float(options.get("lambda", 1.0)), int8_mask=bool(options.get("int8_mask", False)),
        ))


def _mag_bits(x: torch.Tensor) -> torch.Tensor:
    """|x| as int32 bit patterns: for non-negative floats the integer order is the numeric order."""
    return x.abs().contiguous().view(torch.int32).reshape(-1)


class _MagnitudeSelect:
    """Exact k-largest selection over a stream of blocks: two histogram passes (high then low 16 bits) find the
    k-th largest magnitude; the final pass keeps everything above it and the first ties by position."""

    def __init__(self, k: int):
        self.k = k
        self.hist = torch.zeros(1 << 16, dtype=torch.int64)
        self.high = None
        self.threshold = None
        self.ties_left = 0

    def observe(self, stage: int, bits: torch.Tensor) -> None:
        if stage == 1:
            self.hist += torch.bincount(bits >> 16, minlength=1 << 16)[: 1 << 16]
        else:
            sel = bits[(bits >> 16) == self.high]
            self.hist += torch.bincount(sel & 0xFFFF, minlength=1 << 16)[: 1 << 16]

    def _find(self, need: int) -> tuple[int, int]:
        """(bucket, count strictly above it) for the bucket holding the need-th largest."""
        from_top = torch.flip(self.hist, [0]).cumsum(0)
        pos = int(torch.searchsorted(from_top, torch.tensor(need)))  # first index with cumsum >= need
        bucket = (1 << 16) - 1 - pos
        above = int(from_top[pos - 1]) if pos > 0 else 0
        return bucket, above

    def settle(self, stage: int) -> None:
        if stage == 1:
            self.high, self.above = self._find(self.k)
        else:
            low, above_low = self._find(self.k - self.above)
            self.threshold = (self.high << 16) | low
            self.ties_left = self.k - self.above - above_low
        self.hist.zero_()

    def keep(self, bits: torch.Tensor) -> torch.Tensor:
        mask = bits > self.threshold
        eq = bits == self.threshold
        if self.ties_left > 0 and bool(eq.any()):
            rank = eq.cumsum(0)
            take = eq & (rank <= self.ties_left)
            self.ties_left -= int(take.sum())
            mask |= take
        return mask

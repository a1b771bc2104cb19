"""How a batch's prompts are prefilled: shared prefixes once, the rest in length groups, then one cache.

On a CPU the prefill of a batch is compute-bound and every token costs the same, padding included. So:

* prompts that start alike (an evaluation task's instruction, a system prompt) share their prefix: it is computed
  once at batch 1 and its KV cache repeated. Beyond the prefix all rows share, rows are clustered by longer common
  prefixes (a task with two question types has two); a cluster's extra prefix is computed once too;
* within a cluster, rows (sorted by length) are split into consecutive length groups, each prefilled at its own
  width instead of all being padded to the longest prompt;
* the groups' KV caches are joined into one batch cache by widening each with masked slots right after its prefix,
  so decoding runs at full batch as before.

Positions count real tokens only and padded slots are masked, so the result is the single padded pass's, up to the
rounding of matmuls of other shapes. Widened caches stay exact only while no sliding window has cut anything, which
the engine checks before planning anything but one plain group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

GROUP_CALL_COST = 48  # tokens: roughly what one more forward call costs on a CPU, against tokens saved
MIN_CLUSTER_EXTRA = 4  # tokens of common prefix beyond the batch-wide one before a cluster is considered


@dataclass
class PrefillGroup:
    rows: list[int]  # indices into the batch's prompts, in the order they take in the batch
    prefix: int  # leading tokens every row of the group shares, computed once at batch 1 (0: none)
    width: int  # suffix tokens per row after the prefix, the shorter ones left-padded


def plan_groups(lengths: Sequence[int], call_cost: int = GROUP_CALL_COST) -> list[tuple[int, int]]:
    """Split rows sorted by length (ascending) into [start, end) groups minimising padded tokens + call_cost each.

    Dynamic programming over the split points: a group of rows i..j costs (j - i + 1) * lengths[j] + call_cost.
    """
    n = len(lengths)
    if any(lengths[i] > lengths[i + 1] for i in range(n - 1)):
        raise ValueError("plan_groups needs lengths in ascending order")
    best = [0.0] + [float("inf")] * n  # best[j]: cost of rows [0, j)
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            c = best[i] + (j - i) * lengths[j - 1] + call_cost
            if c < best[j]:
                best[j], cut[j] = c, i
    groups, j = [], n
    while j > 0:
        groups.append((cut[j], j))
        j = cut[j]
    return groups[::-1]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    k, n = 0, min(len(a), len(b))
    while k < n and a[k] == b[k]:
        k += 1
    return k


def prefix_clusters(prompts: Sequence[Sequence[int]], shared: int, call_cost: int = GROUP_CALL_COST,
                    min_extra: int = MIN_CLUSTER_EXTRA) -> list[tuple[list[int], int]]:
    """Rows grouped by a common prefix longer than `shared`: [(row indices, prefix length)], every row once.

    In lexicographic order, rows sharing a prefix are adjacent; a run whose common prefix exceeds `shared` by at
    least `min_extra` tokens becomes a cluster when computing that extra once saves more than a call costs. The
    prefix leaves every row at least one token of its own (its last position's logits come from the group pass).
    Rows in no cluster are returned together with the batch-wide prefix `shared`.
    """
    order = sorted(range(len(prompts)), key=lambda i: list(prompts[i]))
    clusters: list[tuple[list[int], int]] = []
    rest: list[int] = []
    i = 0
    while i < len(order):
        j, common = i + 1, len(prompts[order[i]]) - 1
        while j < len(order):
            k = min(common, common_prefix_length(prompts[order[j - 1]], prompts[order[j]]), len(prompts[order[j]]) - 1)
            if k < shared + min_extra:
                break
            common, j = k, j + 1
        run = order[i:j]
        if len(run) > 1 and (len(run) - 1) * (common - shared) > call_cost:
            clusters.append((run, common))
        else:
            rest.extend(run)
        i = j
    if rest:
        clusters.append((rest, shared))
    return clusters


def plan_prefill(prompts: Sequence[Sequence[int]], shared: int, *, call_cost: int = GROUP_CALL_COST,
                 min_extra: int = MIN_CLUSTER_EXTRA) -> list[PrefillGroup]:
    """Prefix clusters, each split into length groups: the batch's prefill plan."""
    groups = []
    for rows, prefix in prefix_clusters(prompts, shared, call_cost, min_extra):
        rows = sorted(rows, key=lambda i: len(prompts[i]))
        own = [len(prompts[i]) - prefix for i in rows]
        for a, b in plan_groups(own, call_cost):
            groups.append(PrefillGroup(rows[a:b], prefix, own[b - 1]))
    return groups


def joinable(cache) -> bool:
    """True when every layer of the cache is a plain dynamic layer this module knows how to widen and join, or one
    that stores nothing (Gemma 4's KV-shared layers read an earlier layer's cache)."""
    import transformers.cache_utils as cu

    from .kvcache import RoomyLayer, RoomySlidingWindowLayer

    known = (RoomyLayer, RoomySlidingWindowLayer) + tuple(
        getattr(cu, name) for name in ("DynamicLayer", "DynamicSlidingWindowLayer", "DummyLayer") if hasattr(cu, name))
    return all(type(layer) in known for layer in getattr(cache, "layers", [None]))


def _widen(t: torch.Tensor, at: int, extra: int) -> torch.Tensor:
    """Insert `extra` zero slots at sequence index `at` of a [B, heads, L, D] tensor (masked later)."""
    if extra == 0:
        return t
    pad = t.new_zeros(t.shape[0], t.shape[1], extra, t.shape[3])
    return torch.cat([t[:, :, :at], pad, t[:, :, at:]], dim=2)


def join_caches(caches: list, groups: list[PrefillGroup]):
    """One cache for all groups: group g's cache ([prefix g][width g]) widened after its prefix to the longest, then
    stacked in group order. The first group's cache object is reused and returned; the others are consumed."""
    length = max(g.prefix + g.width for g in groups)
    base = caches[0]
    for li, layer in enumerate(base.layers):
        if getattr(layer, "keys", None) is None:
            continue  # a layer that stores nothing (KV shared with an earlier layer)
        keys, values = [], []
        for cache, g in zip(caches, groups):
            other = cache.layers[li]
            keys.append(_widen(other.keys, g.prefix, length - g.prefix - g.width))
            values.append(_widen(other.values, g.prefix, length - g.prefix - g.width))
        layer.keys, layer.values = torch.cat(keys), torch.cat(values)
        if hasattr(layer, "cumulative_length"):
            layer.cumulative_length = length
    return base


def widen_mask(mask: torch.Tensor, at: int, length: int) -> torch.Tensor:
    """A group's [B, L] attention mask widened to `length` with zeros inserted at `at` (after its prefix)."""
    extra = length - mask.shape[1]
    if extra == 0:
        return mask
    return torch.cat([mask[:, :at], mask.new_zeros(mask.shape[0], extra), mask[:, at:]], dim=1)


# Long prompts are prefilled in chunks: one pass over L tokens holds attention scores (and a mask) of L x L per head,
# which at 32k tokens is tens of GB; a chunk of C queries against the K keys cached so far holds C x K. Chunks
# extend the KV cache exactly as one pass would (same positions, same masks), so the result is the one-pass result up
# to matmul rounding. Below the budget nothing is split: a CPU pays ~GROUP_CALL_COST tokens per extra forward call.
PREFILL_SCORE_BUDGET = 1 << 26  # attention-score elements of one call (rows x heads x queries x keys): 256 MB fp32
MIN_PREFILL_CHUNK = 256  # tokens per row; smaller chunks waste the matmuls' width


def chunk_bounds(width: int, rows: int, keys: int, heads: int, *, chunk: int | None = None,
                 budget: int = PREFILL_SCORE_BUDGET) -> list[tuple[int, int]]:
    """[start, end) spans over a prefill of `width` new tokens per row, `keys` keys at the end (cached + new):
    one span when its scores fit the budget, else spans of `chunk` tokens (or what the budget allows)."""
    if width <= 0:
        return []
    if chunk is None:
        if rows * heads * width * keys <= budget:
            return [(0, width)]
        chunk = max(MIN_PREFILL_CHUNK, budget // max(1, rows * heads * keys))
    chunk = max(1, int(chunk))
    return [(a, min(a + chunk, width)) for a in range(0, width, chunk)]

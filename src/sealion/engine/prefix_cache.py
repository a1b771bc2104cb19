"""Automatic prefix caching across requests: KV caches of prompt prefixes, kept for later requests that start alike.

An entry is the batch-1 KV cache of exactly its tokens, so continuing from it is exact for every layer kind — a
sliding-window layer holds the window state after exactly those tokens, which is what a fresh prefill would have
left. Entries are never cropped (a cut sliding window cannot be rewound). Instead the core stores prefixes at the
points later requests are likely to share: the end of the last complete chat turn before the prompt's final one
(a system prompt, a conversation's history), block boundaries of long raw prompts (few-shot blocks), the prefix a
batch shares, and whole prompts (the next turn of a conversation starts with the last one's prompt).

Bounded by bytes: least recently used entries leave first. Only the engine's model thread touches it.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

BLOCK = 512  # raw prompts are also cached at multiples of this many tokens
MIN_PREFIX = 16  # shorter prefixes are not worth an entry


def _tensors(cache):
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                yield t


def cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for t in _tensors(cache))


def compact(cache):
    """The cache with its tensors copied tight (no spare room for decoding), safe to keep while the original grows."""
    import copy

    out = copy.copy(cache)
    out.layers = []
    for layer in cache.layers:
        new = copy.copy(layer)
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                setattr(new, name, t.clone())
        for name in ("_kbuf", "_vbuf"):
            if hasattr(new, name):
                setattr(new, name, None)
        out.layers.append(new)
    return out


class PrefixCache:
    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self._entries: OrderedDict[tuple[int, ...], tuple[object, int]] = OrderedDict()
        self._lengths: dict[int, int] = {}  # entry length -> how many entries have it
        self.bytes = 0
        self.hits = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, tokens: list[int], *, below: int | None = None) -> tuple[int, object] | None:
        """The longest entry that is a prefix of `tokens` and shorter than `below` (default: len(tokens)), as
        (length, cache); the caller copies the cache before extending it."""
        limit = len(tokens) if below is None else below
        for n in sorted((n for n in self._lengths if n <= limit), reverse=True):
            key = tuple(tokens[:n])
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                self.reused_tokens += n
                return n, entry[0]
        return None

    def offer(self, tokens: list[int], cache, *, tight: bool = False) -> None:
        """Keep `cache` (the KV of exactly `tokens`) unless it is already there or larger than the whole budget."""
        key = tuple(tokens)
        if len(key) < MIN_PREFIX:
            return
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        kept = cache if tight else compact(cache)
        size = cache_bytes(kept)
        if size > self.budget:
            return
        self._entries[key] = (kept, size)
        self._lengths[len(key)] = self._lengths.get(len(key), 0) + 1
        self.bytes += size
        while self.bytes > self.budget:
            old, (_, old_size) = self._entries.popitem(last=False)
            self.bytes -= old_size
            self._lengths[len(old)] -= 1
            if not self._lengths[len(old)]:
                del self._lengths[len(old)]

    def clear(self) -> None:
        self._entries.clear()
        self._lengths.clear()
        self.bytes = 0


def cache_point(tokens: list[int], turn_end_id: int | None) -> int:
    """Where to split a prompt's prefill so the part before is worth keeping: just after the turn end before the
    final turn's (a chat's system prompt or history), else the last block boundary (raw prompts); 0 when neither is
    worth it. The split leaves at least one token for the prompt's own pass."""
    end = len(tokens) - 1
    if turn_end_id is not None:
        ends = [i for i in range(end) if tokens[i] == turn_end_id]
        if len(ends) >= 2 and ends[-2] + 1 >= MIN_PREFIX:
            return ends[-2] + 1
    block = (end // BLOCK) * BLOCK
    return block if block >= MIN_PREFIX else 0

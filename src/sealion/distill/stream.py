"""Training batches streamed from shards: memory bounded by a few decoded shards, whatever the capture's size.

An epoch is planned from metadata only (each example's length and scored-position count, two small members of a
shard) and its teacher rows are decoded when a batch needs them:

* the shards are shuffled (seeded by seed and epoch), then taken `window` at a time; the window's examples are
  shuffled, packed into rows (or one example per row), the rows shuffled again, and cut into batches; rows that do
  not fill a batch lead the next window's batches;
* a batch is a list of rows of (shard, example) references; every process plans the same global batches (the plan
  depends on the seed, never on the number of processes) and takes rows rank, rank + world, ... of each, so N
  processes see the same batches as one, and the global batch's scored-position count is known everywhere;
* decoded shards sit in a small least-recently-used cache (`2 * window + 1` shards); a batch touches the shards of
  at most two windows;
* the plan is a pure function of the seed and the epoch, so resuming after batch i of an epoch replays the plan's
  metadata and skips i batches without decoding anything: the next batch is the one an uninterrupted run takes.

Held-out examples are the last `holdout` of the run in shard order; they never enter the training plan.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .data import Example, pack
from .store import Capture, ShardMeta

Ref = tuple[int, int]  # (shard index in the run's shard list, example index inside the shard)


@dataclass
class Item:
    """An example with its teacher rows (offline) or without (online)."""

    example: Example
    ids: np.ndarray | None = None
    logprobs: np.ndarray | None = None
    tails: dict[float, np.ndarray] = field(default_factory=dict)  # temperature -> tail log-mass per position


@dataclass
class PlannedBatch:
    rows: list[list[Ref]]
    positions: int  # scored positions in the whole (global) batch
    tokens: int


class CaptureSource:
    """The shards of one or more captures, as one list."""

    def __init__(self, captures: list[Capture]):
        self.captures = captures
        self.index = [(c, i) for c in captures for i in range(len(c.shards))]
        self.sizes = [c.shards[i][1] for c, i in self.index]

    def meta(self, s: int) -> ShardMeta:
        cap, i = self.index[s]
        return cap.meta(i)

    def read(self, s: int) -> list[Item]:
        cap, i = self.index[s]
        return [Item(c.example, c.ids, c.logprobs, c.tails) for c in cap.read(i)]


class MemorySource:
    """Examples already in memory (online distillation), cut into pseudo-shards so they plan the same way."""

    def __init__(self, examples: list[Example], shard_size: int = 256):
        self.parts = [examples[i : i + shard_size] for i in range(0, len(examples), shard_size)]
        self.sizes = [len(p) for p in self.parts]

    def meta(self, s: int) -> ShardMeta:
        lens = np.array([len(e.input_ids) for e in self.parts[s]], dtype=np.int64)
        scored = np.array([int(e.target_mask[1:].sum()) for e in self.parts[s]], dtype=np.int64)
        return ShardMeta(lens, scored)

    def read(self, s: int) -> list[Item]:
        return [Item(e) for e in self.parts[s]]


class ShardCache:
    """Decoded shards, least recently used first out."""

    def __init__(self, source, capacity: int):
        self.source, self.capacity = source, max(1, capacity)
        self.shards: OrderedDict[int, list[Item]] = OrderedDict()
        self.decoded = 0  # shard decodes so far (a re-decode means the cache was too small)

    def items(self, refs: list[Ref]) -> list[Item]:
        return [self._shard(s)[j] for s, j in refs]

    def _shard(self, s: int) -> list[Item]:
        if s in self.shards:
            self.shards.move_to_end(s)
            return self.shards[s]
        while len(self.shards) >= self.capacity:
            self.shards.popitem(last=False)
        self.shards[s] = self.source.read(s)
        self.decoded += 1
        return self.shards[s]


class Planner:
    """The batches of each epoch, from shard metadata (see the module docstring)."""

    def __init__(self, source, *, batch_size: int, pack_rows: bool, max_tokens: int, seed: int, window: int = 4,
                 holdout: int = 0):
        self.source = source
        self.batch_size, self.pack_rows, self.max_tokens = batch_size, pack_rows, max_tokens
        self.seed, self.window = seed, max(1, window)
        sizes = np.asarray(source.sizes, dtype=np.int64)
        self.total = int(sizes.sum())
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.holdout = holdout
        self.cutoff = self.total - holdout  # global example index from which examples are held out
        self._steps: dict[int, int] = {}

    @property
    def num_train(self) -> int:
        return self.cutoff

    def heldout_refs(self) -> list[Ref]:
        refs = []
        for s, (off, n) in enumerate(zip(self.offsets.tolist(), self.source.sizes)):
            refs.extend((s, j) for j in range(max(0, self.cutoff - off), n))
        return refs

    def steps_in_epoch(self, epoch: int) -> int:
        if epoch not in self._steps:
            if self.pack_rows:  # packing depends on lengths: count by planning (metadata only)
                self._steps[epoch] = sum(1 for _ in self.epoch(epoch))
            else:
                self._steps[epoch] = -(-self.num_train // self.batch_size)
        return self._steps[epoch]

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[PlannedBatch]:
        """The epoch's batches in order, after skipping the first `skip` (resume)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.source.sizes)).tolist()
        carry: list[tuple[list[Ref], int, int]] = []  # (refs, tokens, scored) of rows not yet in a batch
        done = 0
        for w in range(0, len(order), self.window):
            refs, lens, scored = [], [], []
            for s in order[w : w + self.window]:
                n_train = min(self.source.sizes[s], max(0, self.cutoff - int(self.offsets[s])))
                if not n_train:
                    continue
                m = self.source.meta(s)
                refs.extend((s, j) for j in range(n_train))
                lens.extend(m.lengths[:n_train].tolist())
                scored.extend(m.scored[:n_train].tolist())
            perm = rng.permutation(len(refs)).tolist()
            refs, lens, scored = [refs[i] for i in perm], [lens[i] for i in perm], [scored[i] for i in perm]
            if self.pack_rows:
                groups = pack(lens, self.max_tokens)
                groups = [groups[i] for i in rng.permutation(len(groups))]
            else:
                groups = [[i] for i in range(len(refs))]
            pool = carry + [([refs[i] for i in g], sum(lens[i] for i in g), sum(scored[i] for i in g)) for g in groups]
            full = len(pool) // self.batch_size * self.batch_size
            for b in range(0, full, self.batch_size):
                if done >= skip:
                    yield _batch(pool[b : b + self.batch_size])
                done += 1
            carry = pool[full:]
        if carry and done >= skip:
            yield _batch(carry)


def _batch(rows: list[tuple[list[Ref], int, int]]) -> PlannedBatch:
    return PlannedBatch([r for r, _, _ in rows], sum(s for _, _, s in rows), sum(t for _, t, _ in rows))

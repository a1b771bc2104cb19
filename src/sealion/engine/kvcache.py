"""A transformers DynamicCache whose layers write new tokens into spare room instead of concatenating.

transformers' DynamicLayer appends a decode step's key and value with `torch.cat`, which copies the whole cache of
every layer on every step: at batch 40 with ~120 cached tokens that is ~190 MB of copying per step on the demo
model, about a tenth of a CPU decode step. These layers keep `reserve` free slots after the cached tokens and write
into them in place; `keys` / `values` stay views of the first `length` slots, so the rest of transformers (masks,
batch_select_indices, repeat_interleave) sees an ordinary layer. Anything that replaces the tensors (selecting
rows, joining caches) simply makes the next write allocate fresh room once.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer


class _Room:
    """Spare-room bookkeeping shared by the two layer kinds."""

    reserve: int = 0
    _kbuf: torch.Tensor | None = None
    _vbuf: torch.Tensor | None = None

    def _write(self, key_states: torch.Tensor, value_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys, self.values
        length = keys.shape[-2] if keys.dim() == 4 else 0
        need = length + key_states.shape[-2]
        buf = self._kbuf
        in_place = (buf is not None and length > 0 and keys.data_ptr() == buf.data_ptr()
                    and keys.shape[:2] == buf.shape[:2] and need <= buf.shape[-2])
        if not in_place:  # first write, or the tensors were replaced: one copy into a buffer with room to spare
            # growing an existing cache (a long prompt in chunks): a quarter more, so the copies stay few
            shape = (*key_states.shape[:2], need + max(self.reserve, length // 4), key_states.shape[-1])
            self._kbuf = key_states.new_empty(shape)
            self._vbuf = value_states.new_empty((*shape[:3], value_states.shape[-1]))
            if length:
                self._kbuf[:, :, :length] = keys
                self._vbuf[:, :, :length] = values
        self._kbuf[:, :, length:need] = key_states
        self._vbuf[:, :, length:need] = value_states
        self.keys, self.values = self._kbuf[:, :, :need], self._vbuf[:, :, :need]
        return self.keys, self.values


class RoomyLayer(_Room, DynamicLayer):
    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        return self._write(key_states, value_states)


class RoomySlidingWindowLayer(_Room, DynamicSlidingWindowLayer):
    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.record_past or self.cumulative_length + key_states.shape[-2] >= self.sliding_window:
            return super().update(key_states, value_states, *args, **kwargs)  # the window cuts: transformers' way
        self.cumulative_length += key_states.shape[-2]
        return self._write(key_states, value_states)


def roomy_cache(config, reserve: int) -> DynamicCache:
    """A DynamicCache for `config` whose plain and sliding layers keep `reserve` free slots (others as they are)."""
    cache = DynamicCache(config=config)
    for i, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer:
            new = RoomyLayer()
        elif type(layer) is DynamicSlidingWindowLayer:
            new = RoomySlidingWindowLayer(sliding_window=layer.sliding_window)
        else:
            continue
        new.reserve = reserve
        cache.layers[i] = new
    return cache


# ---- batch surgery: the running batch is right-aligned ([padding..., tokens...]) with one padded length T. Full
# layers store T positions; sliding-window layers store the last min(T, window - 1) and count T in
# `cumulative_length`. Rotary positions are applied before keys are cached, so shifting a row right by adding
# padding on its left leaves its attention exactly as in a solo run.


def _live(layer) -> bool:
    return bool(getattr(layer, "is_initialized", False)) and getattr(layer, "keys", None) is not None \
        and layer.keys.dim() == 4


def _stored_target(layer, total: int) -> int:
    if isinstance(layer, DynamicSlidingWindowLayer):
        return min(total, layer.sliding_window - 1)
    return total


def pad_left(cache, n: int, total_before: int) -> None:
    """Add `n` padding positions on the left of every row (the padded length goes from total_before to +n)."""
    if n <= 0:
        return
    total = total_before + n
    for layer in cache.layers:
        if isinstance(layer, DynamicSlidingWindowLayer):
            layer.cumulative_length = total
        if not _live(layer):
            continue
        grow = _stored_target(layer, total) - layer.keys.shape[-2]
        if grow > 0:
            layer.keys = torch.nn.functional.pad(layer.keys, (0, 0, grow, 0))
            layer.values = torch.nn.functional.pad(layer.values, (0, 0, grow, 0))


def concat(first, second) -> None:
    """Append the rows of `second` to `first` (both already padded to the same length). Mutates `first`."""
    for a, b in zip(first.layers, second.layers):
        if _live(a) and _live(b):
            a.keys = torch.cat([a.keys, b.keys], dim=0)
            a.values = torch.cat([a.values, b.values], dim=0)
        elif _live(a) != _live(b):
            raise RuntimeError("cannot join caches whose layers are not filled alike")


def select_rows(cache, index: torch.Tensor) -> None:
    for layer in cache.layers:
        if _live(layer):
            layer.keys = layer.keys.index_select(0, index)
            layer.values = layer.values.index_select(0, index)


def trim_left(cache, n: int, total_before: int) -> None:
    """Drop `n` leading positions that are padding in every row."""
    if n <= 0:
        return
    total = total_before - n
    for layer in cache.layers:
        if isinstance(layer, DynamicSlidingWindowLayer):
            layer.cumulative_length = total
        if not _live(layer):
            continue
        keep = _stored_target(layer, total)
        if layer.keys.shape[-2] > keep:
            start = layer.keys.shape[-2] - keep
            layer.keys = layer.keys[..., start:, :]
            layer.values = layer.values[..., start:, :]

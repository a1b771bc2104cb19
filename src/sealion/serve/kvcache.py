"""Batch surgery on a transformers `DynamicCache`: left-pad, join, select rows, trim leading padding.

The running batch is kept right-aligned: every row is `[padding..., its tokens...]`, all rows share one padded
length `T`, and the 2-D attention mask marks the padding. Full-attention layers store `T` positions; sliding-window
layers store the last `min(T, window - 1)` and count `T` in `cumulative_length`. Rotary positions are applied before
keys are cached, so shifting a row right by adding padding leaves its attention exactly as in a solo run.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

try:  # KV-sharing consumers (Gemma 4 layers that reuse another layer's keys) hold no data
    from transformers.cache_utils import DummyLayer
except ImportError:  # older transformers
    DummyLayer = DynamicLayer

SUPPORTED_LAYERS = (DynamicLayer, DynamicSlidingWindowLayer, DummyLayer)


def check_supported(cache) -> None:
    for layer in cache.layers:
        if type(layer) not in SUPPORTED_LAYERS:
            raise TypeError(f"continuous batching does not support cache layer {type(layer).__name__}")


def _live(layer) -> bool:
    return bool(getattr(layer, "is_initialized", False)) and layer.keys is not None and layer.keys.dim() == 4


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
            layer.keys = layer.keys[..., start:, :].contiguous()
            layer.values = layer.values[..., start:, :].contiguous()

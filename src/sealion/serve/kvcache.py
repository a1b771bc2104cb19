"""Batch surgery on a transformers `DynamicCache`: left-pad, join, select rows, trim leading padding.

The running batch is kept right-aligned: every row is `[padding..., its tokens...]`, all rows share one padded
length `T`, and the 2-D attention mask marks the padding. Full-attention layers store `T` positions; sliding-window
layers store the last `min(T, window - 1)` and count `T` in `cumulative_length`. Rotary positions are applied before
keys are cached, so shifting a row right by adding padding leaves its attention exactly as in a solo run.
"""

from __future__ import annotations

from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

try:  # KV-sharing consumers (Gemma 4 layers that reuse another layer's keys) hold no data
    from transformers.cache_utils import DummyLayer
except ImportError:  # older transformers
    DummyLayer = DynamicLayer

# The batch surgery itself is the engine's (one copy); the server's scheduler calls it through this module.
from ..engine.kvcache import concat, pad_left, select_rows, trim_left  # noqa: E402,F401

SUPPORTED_LAYERS = (DynamicLayer, DynamicSlidingWindowLayer, DummyLayer)


def check_supported(cache) -> None:
    for layer in cache.layers:
        if type(layer) not in SUPPORTED_LAYERS:
            raise TypeError(f"continuous batching does not support cache layer {type(layer).__name__}")


"""Loading a model reference for serving: text-only (the server takes no images or audio yet)."""

from __future__ import annotations


def load_for_serving(ref: str, *, dtype=None, device: str | None = None, quantize: str | None = None):
    """Return (model, tokenizer) for a model reference (directory, hub id, .gguf, or `demo`)."""
    from sealion.models import load

    loaded = load(ref, text_only=True, dtype=dtype, device=device, quantize=quantize)
    return loaded.model, loaded.tokenizer

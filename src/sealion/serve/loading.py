"""Loading a model reference for serving: with its processor (images, audio) when the checkpoint has one."""

from __future__ import annotations


def load_served(ref: str, *, dtype=None, device: str | None = None, quantize: str | None = None,
                text_only: bool = False):
    """The `LoadedModel` for a model reference (directory, hub id, .gguf, or `demo`). A multimodal checkpoint
    loads its towers and processor unless `text_only` (less memory; image and audio parts are then refused)."""
    from sealion.models import load

    return load(ref, text_only=text_only, dtype=dtype, device=device, quantize=quantize)


def load_for_serving(ref: str, *, dtype=None, device: str | None = None, quantize: str | None = None):
    """Return (model, tokenizer), text-only: for servers that take no media."""
    loaded = load_served(ref, dtype=dtype, device=device, quantize=quantize, text_only=True)
    return loaded.model, loaded.tokenizer

"""Text in, text out: one interface (`Engine`), an in-process transformers backend (`LocalEngine`) and an
OpenAI-compatible HTTP backend (`HTTPEngine`)."""

from __future__ import annotations

from .base import Engine
from .types import ChatRequest, Completion, CompletionRequest, SamplingParams, StreamDelta


def open_engine(ref, **kwargs) -> Engine:
    """An engine for a model reference: `http(s)://...` -> HTTPEngine, anything else -> LocalEngine."""
    if isinstance(ref, str) and ref.startswith(("http://", "https://")):
        from .http import HTTPEngine

        return HTTPEngine(ref, **kwargs)
    from .local import LocalEngine

    return LocalEngine(ref, **kwargs)


def __getattr__(name):  # lazy: importing sealion.engine must not import torch
    if name == "LocalEngine":
        from .local import LocalEngine

        return LocalEngine
    if name == "HTTPEngine":
        from .http import HTTPEngine

        return HTTPEngine
    raise AttributeError(name)


__all__ = [
    "Engine", "LocalEngine", "HTTPEngine", "open_engine",
    "SamplingParams", "CompletionRequest", "ChatRequest", "Completion", "StreamDelta",
]

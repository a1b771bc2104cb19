"""Text in, text out: one interface (`Engine`), an in-process transformers backend (`LocalEngine`) and an
OpenAI-compatible HTTP backend (`HTTPEngine`)."""

from __future__ import annotations

from .base import Engine
from .types import ChatRequest, Completion, CompletionRequest, SamplingParams, StreamDelta


BACKENDS = ("auto", "transformers", "llama.cpp")


def open_engine(ref, *, backend: str = "auto", **kwargs) -> Engine:
    """An engine for a model reference: `http(s)://...` -> HTTPEngine, anything else -> LocalEngine; with
    `backend="llama.cpp"` a `.gguf` file runs through llama.cpp (`LlamaCppEngine`) instead of being dequantised."""
    if backend not in BACKENDS:
        from ..errors import ConfigError

        raise ConfigError(f"--backend {backend}: unknown backend (choose from {', '.join(BACKENDS)})")
    if backend == "llama.cpp":
        from .llamacpp import open_llamacpp

        return open_llamacpp(ref, **kwargs)
    if isinstance(ref, str) and ref.startswith(("http://", "https://")):
        from .http import HTTPEngine

        return HTTPEngine(ref, **kwargs)
    from .local import LocalEngine

    return LocalEngine(ref, **kwargs)


def __getattr__(name):  # lazy: importing sealion.engine must not import torch
    if name == "LocalEngine":
        from .local import LocalEngine

        return LocalEngine
    if name == "LlamaCppEngine":
        from .llamacpp import LlamaCppEngine

        return LlamaCppEngine
    if name == "HTTPEngine":
        from .http import HTTPEngine

        return HTTPEngine
    raise AttributeError(name)


__all__ = [
    "Engine", "LocalEngine", "HTTPEngine", "LlamaCppEngine", "open_engine", "BACKENDS",
    "SamplingParams", "CompletionRequest", "ChatRequest", "Completion", "StreamDelta",
]

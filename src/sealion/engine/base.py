"""The one engine interface. Backends: `local.LocalEngine` (in-process transformers) and
`http.HTTPEngine` (any OpenAI-compatible server)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Iterator, Sequence

from .types import ChatRequest, Completion, CompletionRequest, StreamDelta

ProgressFn = Callable[[int], None]  # called with the number of requests just finished


class Engine(ABC):
    name: str

    @abstractmethod
    def complete(self, requests: Sequence[CompletionRequest], *, progress: ProgressFn | None = None) -> list[Completion]:
        """Generate for raw prompts, batched; results in request order."""

    @abstractmethod
    def chat(self, requests: Sequence[ChatRequest], *, progress: ProgressFn | None = None) -> list[Completion]:
        """Generate for conversations; results carry parsed content/reasoning/tool_calls."""

    @abstractmethod
    def stream(self, request: CompletionRequest | ChatRequest) -> Iterator[StreamDelta]:
        """Yield text deltas as they are generated; the last delta carries the final Completion."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free resources (HTTP clients, model memory)."""

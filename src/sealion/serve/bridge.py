"""Engine-core sequences seen from asyncio: the server's only link to the model thread.

The core (`sealion.engine.core.EngineCore`) calls a sequence's `emit` on its own thread; `Flight` hands each event
to the event loop with `call_soon_threadsafe`, so the model thread never touches an asyncio object. One request
may carry several sequences (`n > 1`, several prompts): their events arrive on one queue, tagged by index.
"""

from __future__ import annotations

import asyncio

from ..engine.core import Event, Sequence


class Flight:
    """The sequences of one HTTP request. `cancel()` frees their rows at the core's next step."""

    def __init__(self, seqs: list[Sequence]):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self.seqs = seqs
        for i, seq in enumerate(seqs):
            seq.emit = lambda event, i=i: self.loop.call_soon_threadsafe(self.queue.put_nowait, (i, event))

    def cancel(self) -> None:
        for seq in self.seqs:
            seq.cancel()

    @property
    def first_token_at(self) -> float | None:
        times = [s.first_token_at for s in self.seqs if s.first_token_at is not None]
        return min(times) if times else None

    @property
    def enqueued_at(self) -> float:
        return min(s.enqueued_at for s in self.seqs)

    async def events(self, poll: float | None = None):
        """(index, event) until every sequence has sent its final event. With `poll`, yields (None, None) every
        `poll` seconds without an event, so the caller can look for a client that went away."""
        open_ = len(self.seqs)
        while open_:
            if poll is None:
                item = await self.queue.get()
            else:
                try:  # a cancelled Queue.get loses nothing
                    item = await asyncio.wait_for(self.queue.get(), timeout=poll)
                except asyncio.TimeoutError:
                    yield None, None
                    continue
            if item[1].kind != "delta":
                open_ -= 1
            yield item

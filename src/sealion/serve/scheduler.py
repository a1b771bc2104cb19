"""Continuous batching over an in-process transformers model.

One model thread owns the model. Requests arrive through a thread-safe inbox; between decode steps the thread
prefills newly admitted requests (left-padded, in one forward), joins their KV cache to the running batch and then
decodes every running row in one shared forward per token. A row leaves the batch the step it finishes or its client
goes away, and its slot is taken by the next waiting request. Events go back to the asyncio side through a
callback (see `AsyncRequest`), never by touching asyncio objects from this thread.

Greedy results equal a solo run: each row keeps its own position ids, padding is masked, and rotary embeddings
are applied before keys are cached, so a row's attention never sees another row or the padding.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from . import kvcache
from .sampling import SamplingConfig, choose_tokens, make_generator

log = logging.getLogger("sealion.serve")


@dataclass
class Event:
    """What the model thread reports for one request: a text delta, then one final event."""

    kind: str  # "delta" | "done" | "error"
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    token_ids: list[int] = field(default_factory=list)
    error: str | None = None
    code: str | None = None  # for errors: "cancelled" | "timeout" | "shutdown" | "internal"


class Sequence:
    """One request inside the scheduler."""

    def __init__(self, prompt_ids: list[int], cfg: SamplingConfig, emit: Callable[[Event], None],
                 timeout: float | None = None):
        if not prompt_ids:
            raise ValueError("empty prompt")
        self.prompt_ids = list(prompt_ids)
        self.cfg = cfg
        self.emit = emit
        self.generator = make_generator(cfg.seed) if not cfg.greedy else None
        self.generated: list[int] = []
        self.text = ""
        self.emitted = 0  # characters of `text` already sent
        self.cancelled = threading.Event()
        self.done = False
        self.cached = 0  # real tokens in the KV cache for this row
        self.last_token: int | None = None
        self.enqueued_at = time.monotonic()
        self.deadline = self.enqueued_at + timeout if timeout else None
        self.first_token_at: float | None = None

    def cancel(self) -> None:
        self.cancelled.set()


class Scheduler:
    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch: int = 32,
        max_prefill_tokens: int = 8192,
        max_model_len: int | None = None,
        eos_token_ids: list[int] | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.backend = getattr(tokenizer, "backend_tokenizer", None)  # thread-safe decode
        self.max_batch = max(1, int(max_batch))
        self.max_prefill_tokens = max(1, int(max_prefill_tokens))
        self.max_model_len = max_model_len or context_length(model)
        self.eos_token_ids = set(eos_token_ids or default_eos_ids(model, tokenizer))
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self.device = next(model.parameters()).device

        self._inbox: queue.Queue[Sequence] = queue.Queue()
        self._waiting: deque[Sequence] = deque()
        self._rows: list[Sequence] = []
        self._cache = None
        self._mask: torch.Tensor | None = None
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        # counters read by /metrics (ints and floats written by the model thread only)
        self.prompt_tokens_total = 0
        self.generated_tokens_total = 0
        self.forward_steps_total = 0
        self.batch_rows_total = 0  # sum of batch sizes over decode steps (mean batch = this / steps)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "Scheduler":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sealion-model", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, seq: Sequence) -> None:
        if self._closing.is_set():
            raise RuntimeError("scheduler is shut down")
        self._inbox.put(seq)

    @property
    def waiting_count(self) -> int:
        return self._inbox.qsize() + len(self._waiting)

    @property
    def running_count(self) -> int:
        return len(self._rows)

    # ------------------------------------------------------------ model thread

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while not self._closing.is_set():
            try:
                self._take_inbox(block=not self._rows and not self._waiting)
                self._drop_cancelled()
                self._admit()
                if self._rows:
                    self._decode_step()
            except Exception as e:  # a bug or OOM must not kill the thread: fail the batch, keep serving
                log.exception("scheduler step failed")
                self._fail_all(f"internal error: {type(e).__name__}: {e}", "internal")
        self._fail_all("server shutting down", "shutdown")
        for seq in list(self._waiting) + self._drain_inbox():
            self._finish(seq, Event("error", error="server shutting down", code="shutdown"))

    def _drain_inbox(self) -> list[Sequence]:
        out = []
        while True:
            try:
                out.append(self._inbox.get_nowait())
            except queue.Empty:
                return out

    def _take_inbox(self, block: bool) -> None:
        if block:
            try:
                self._waiting.append(self._inbox.get(timeout=0.05))
            except queue.Empty:
                return
        self._waiting.extend(self._drain_inbox())

    def _drop_cancelled(self) -> None:
        """Free the rows of requests whose client left or whose time ran out."""
        now = time.monotonic()

        def why(seq: Sequence) -> Event | None:
            if seq.cancelled.is_set():
                return Event("error", error="cancelled", code="cancelled")
            if seq.deadline is not None and now > seq.deadline:
                return Event("error", error="the request ran past its time limit", code="timeout")
            return None

        for seq in list(self._waiting):
            event = why(seq)
            if event:
                self._waiting.remove(seq)
                self._finish(seq, event)
        gone = set()
        for i, seq in enumerate(self._rows):
            event = why(seq)
            if event:
                self._finish(seq, event)
                gone.add(i)
        if gone:
            self._remove_rows(gone)

    def _admit(self) -> None:
        batch: list[Sequence] = []
        budget = self.max_prefill_tokens
        while self._waiting and len(self._rows) + len(batch) < self.max_batch:
            seq = self._waiting[0]
            n = len(seq.prompt_ids)
            if batch and n > budget:
                break
            self._waiting.popleft()
            batch.append(seq)
            budget -= n
        if not batch:
            return
        try:
            self._prefill(batch)
        except Exception as e:  # e.g. a prompt that breaks the model: fail these, keep the running batch
            log.exception("prefill failed")
            for seq in batch:
                self._finish(seq, Event("error", error=f"prefill failed: {type(e).__name__}: {e}", code="internal"))

    def _prefill(self, batch: list[Sequence]) -> None:
        length = max(len(s.prompt_ids) for s in batch)
        ids = torch.full((len(batch), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        for i, seq in enumerate(batch):
            n = len(seq.prompt_ids)
            ids[i, length - n :] = torch.tensor(seq.prompt_ids, dtype=torch.long)
            mask[i, length - n :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=True,
            logits_to_keep=1,
        )
        cache = _output_cache(out)
        kvcache.check_supported(cache)
        logits = out.logits[:, -1, :]
        self.forward_steps_total += 1
        mask = mask.to(self.device)
        # join the running batch: both sides padded on the left to the longer length
        if self._cache is None:
            self._cache, self._mask = cache, mask
        else:
            total = self._mask.shape[1]
            if total < length:
                kvcache.pad_left(self._cache, length - total, total)
                self._mask = torch.nn.functional.pad(self._mask, (length - total, 0))
            elif length < total:
                kvcache.pad_left(cache, total - length, length)
                mask = torch.nn.functional.pad(mask, (total - length, 0))
            kvcache.concat(self._cache, cache)
            self._mask = torch.cat([self._mask, mask], dim=0)
        for seq in batch:
            seq.cached = len(seq.prompt_ids)
            self.prompt_tokens_total += len(seq.prompt_ids)
        self._rows.extend(batch)
        self._advance_rows(batch, logits)

    def _decode_step(self) -> None:
        rows = self._rows
        ids = torch.tensor([[s.last_token] for s in rows], dtype=torch.long, device=self.device)
        positions = torch.tensor([[s.cached] for s in rows], dtype=torch.long, device=self.device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(rows), 1))], dim=1)
        out = self.model(
            input_ids=ids,
            attention_mask=self._mask,
            position_ids=positions,
            cache=self._cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self._cache = _output_cache(out)
        self.forward_steps_total += 1
        self.batch_rows_total += len(rows)
        for s in rows:
            s.cached += 1
        self._advance_rows(list(rows), out.logits[:, -1, :])

    def _advance_rows(self, rows: list[Sequence], logits: torch.Tensor) -> None:
        """Sample one token per row (rows are the last len(rows) rows of the batch, in order)."""
        tokens = choose_tokens(logits, [s.cfg for s in rows], [s.generator for s in rows])
        offset = len(self._rows) - len(rows)
        finished = set()
        for j, (seq, tok) in enumerate(zip(rows, tokens)):
            if self._append_token(seq, tok):
                finished.add(offset + j)
        if finished:
            self._remove_rows(finished)

    def _append_token(self, seq: Sequence, token: int) -> bool:
        """Record a token, emit the text that is safe to show; True when the sequence is finished."""
        self.generated_tokens_total += 1
        if seq.first_token_at is None:
            seq.first_token_at = time.monotonic()
        cfg = seq.cfg
        if token in self.eos_token_ids or token in cfg.stop_token_ids:
            seq.generated.append(token)
            self._finish(seq, self._final(seq, "stop", seq.text, counted=len(seq.generated)))
            return True
        seq.generated.append(token)
        seq.last_token = token
        text = self._decode(seq.generated, cfg.skip_special_tokens)
        cut = _find_stop(text, cfg.stop)
        if cut is not None:
            self._finish(seq, self._final(seq, "stop", text[:cut], counted=len(seq.generated)))
            return True
        seq.text = text
        if len(seq.generated) >= cfg.max_new_tokens or seq.cached + 1 >= self.max_model_len:
            self._finish(seq, self._final(seq, "length", text, counted=len(seq.generated)))
            return True
        safe = _safe_prefix(text, cfg.stop)
        if safe > seq.emitted:
            delta = text[seq.emitted : safe]
            seq.emitted = safe
            self._send(seq, Event("delta", text=delta))
        return False

    def _final(self, seq: Sequence, reason: str, text: str, counted: int) -> Event:
        rest = text[seq.emitted :] if len(text) >= seq.emitted else ""
        return Event(
            "done",
            text=rest,
            finish_reason=reason,
            prompt_tokens=len(seq.prompt_ids),
            completion_tokens=counted,
            token_ids=list(seq.generated),
        )

    def _decode(self, ids: list[int], skip_special: bool) -> str:
        if self.backend is not None:
            return self.backend.decode(ids, skip_special_tokens=skip_special)
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special)

    def _remove_rows(self, drop: set[int]) -> None:
        keep = [i for i in range(len(self._rows)) if i not in drop]
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache = None
            self._mask = None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        kvcache.select_rows(self._cache, index)
        self._mask = self._mask.index_select(0, index)
        # drop columns that are padding in every remaining row, so the batch does not grow without bound
        used = self._mask.any(dim=0).nonzero()
        lead = int(used[0].item()) if used.numel() else self._mask.shape[1]
        if lead > 0:
            kvcache.trim_left(self._cache, lead, self._mask.shape[1])
            self._mask = self._mask[:, lead:]

    def _fail_all(self, message: str, code: str) -> None:
        for seq in self._rows:
            self._finish(seq, Event("error", error=message, code=code))
        self._rows = []
        self._cache = None
        self._mask = None

    def _finish(self, seq: Sequence, event: Event) -> None:
        if seq.done:
            return
        seq.done = True
        self._send(seq, event)

    @staticmethod
    def _send(seq: Sequence, event: Event) -> None:
        try:
            seq.emit(event)
        except Exception:  # the receiver is gone (closed loop); nothing to tell
            seq.cancel()


# ---------------------------------------------------------------- asyncio side


class AsyncRequest:
    """Submit a sequence and read its events from asyncio. `cancel()` frees the slot at the next step."""

    def __init__(self, scheduler: Scheduler, prompt_ids: list[int], cfg: SamplingConfig,
                 timeout: float | None = None):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.seq = Sequence(prompt_ids, cfg, self._emit, timeout=timeout)
        self.scheduler = scheduler
        self.started = time.monotonic()

    def _emit(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def start(self) -> "AsyncRequest":
        self.scheduler.submit(self.seq)
        return self

    def cancel(self) -> None:
        self.seq.cancel()

    async def events(self):
        while True:
            event = await self.queue.get()
            yield event
            if event.kind != "delta":
                return


# ---------------------------------------------------------------- helpers


def _output_cache(out) -> Any:
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = getattr(out, "past_key_values", None)
    if cache is None:
        raise RuntimeError("the model returned no KV cache")
    return cache


def _find_stop(text: str, stops: list[str]) -> int | None:
    best = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or i < best):
            best = i
    return best


def _safe_prefix(text: str, stops: list[str]) -> int:
    """Length of the prefix that may be streamed: no half-decoded character, no possible start of a stop string."""
    end = len(text)
    while end > 0 and text[end - 1] == "\ufffd":
        end -= 1
    for s in stops:
        for k in range(min(len(s) - 1, end), 0, -1):
            if text[:end].endswith(s[:k]):
                end -= k
                break
    return end


def context_length(model) -> int:
    cfg = model.config
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return int(getattr(cfg, "max_position_embeddings", None) or 8192)


def default_eos_ids(model, tokenizer) -> list[int]:
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if value is None:
            continue
        ids.extend(value if isinstance(value, (list, tuple)) else [value])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted({int(i) for i in ids})

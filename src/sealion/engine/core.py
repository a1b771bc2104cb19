"""The engine core: the one place that decodes. Every caller submits `Sequence`s to it — the offline API
(`LocalEngine.complete/chat/stream`) and `sealion serve` alike — and reads back `Event`s.

A model thread runs a step loop: take new requests from a thread-safe inbox, drop the cancelled and the timed out,
admit waiting requests into free rows (prefill: a shared prompt prefix once, the rest in length groups, see
`prefill.py`; a prefix already computed for an earlier request comes from the prefix cache, `prefix_cache.py`),
join their KV cache to the running batch (left padding), then decode every running row in one forward per token
and retire finished rows at once. Greedy batches pick tokens through a bf16- or int8-screened LM head where this CPU
makes that faster (`greedy_head.py`); KV layers grow in place (`kvcache.py`).

Greedy results equal a solo run: every row keeps its own position ids, padding is masked, and rotary embeddings are
applied before keys are cached, so a row's attention never sees another row or the padding.
"""

from __future__ import annotations

import atexit
import copy
import logging
import queue
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from . import kvcache
from .detok import TextTracker
from .greedy_head import ScreenedHead, choose_screen
from .prefix_cache import cache_point
from .prompting import TURN_END_ID
from .prefill import (PrefillGroup, chunk_bounds, common_prefix_length, join_caches, joinable, plan_prefill,
                      widen_mask)
from .sampling import ResolvedSampling, choose_next, token_logprobs

log = logging.getLogger("sealion.engine")

MIN_SHARED_PREFIX = 16  # tokens; below this a separate prefix pass costs more than it saves
LOGPROB_CHUNK_ELEMENTS = 1 << 26  # logits one prompt-log-prob call may hold (256 MB fp32): 256 rows of 262k
MIN_LOGPROB_CHUNK = 64
KV_RESERVE = 128  # free KV slots a cache keeps ahead of decoding (grown again, one copy, when used up)
MAX_SCREEN_MISSES = 4  # consecutive fp32 fallbacks of the greedy screen before a batch stops trying it


@dataclass
class Event:
    """What the core reports for one sequence: text deltas (streaming sequences only), then one final event."""

    kind: str  # "delta" | "done" | "error"
    text: str = ""
    token_ids: list[int] = field(default_factory=list)  # the tokens behind this delta (done: none)
    logprobs: list[dict] = field(default_factory=list)  # per token of this delta, when the request asks for them
    finish_reason: str | None = None
    error: str | None = None
    code: str | None = None  # errors: "cancelled" | "timeout" | "shutdown" | "internal"


class Sequence:
    """One request inside the core. The caller builds it (`LocalEngine.sequence`) and reads its fields after the
    final event; until then only the model thread touches it.

    Usage rule: `completion_tokens` counts every token the model produced, the stop token included (it was
    generated, as vLLM and OpenAI count it); `generated` and the text leave the stop token out.
    """

    def __init__(self, prompt_ids: list[int], sampling: ResolvedSampling, *, max_new_tokens: int,
                 tracker: TextTracker, stop_ids: set[int], emit: Callable[[Event], None] | None = None,
                 stream: bool = False, extra_inputs: dict | None = None, timeout: float | None = None,
                 logprobs: int | None = None, prompt_logprobs: int | None = None, thinking_budget=None):
        if not prompt_ids:
            raise ValueError("empty prompt")
        self.prompt_ids = list(prompt_ids)
        self.sampling = sampling
        self.max_new_tokens = max_new_tokens
        self.tracker = tracker
        self.stop_ids = stop_ids
        self.emit = emit
        self.stream = stream
        self.extra_inputs = extra_inputs or {}
        self.logprobs = logprobs  # None: off; k >= 0: the chosen token's log-prob and the k best
        self.prompt_logprobs = prompt_logprobs
        self.thinking = thinking_budget  # a thinking.Budget or None
        self.generated: list[int] = []
        self.token_logprobs: list[dict] = []
        self.stop_token: int | None = None  # the stop id that ended the sequence (counted, not in `generated`)
        self.stop_logprob: dict | None = None  # its log-prob, when the request asks for them (vLLM reports it)
        self.prompt_token_logprobs: list[dict | None] | None = None
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.code: str | None = None
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.enqueued_at = time.monotonic()
        self.deadline = self.enqueued_at + timeout if timeout else None
        self.first_token_at: float | None = None
        self.cached_prefix = 0  # prompt tokens that came from the prefix cache
        self.meta: dict[str, Any] = {}  # the caller's own bookkeeping (request index, chat request, ...)

    def cancel(self) -> None:
        self.cancelled.set()

    @property
    def needs_logits(self) -> bool:
        return not self.sampling.greedy or self.logprobs is not None


class EngineCore:
    """The step loop over one model. `max_batch_size` rows decode together; `max_batch_tokens` bounds the padded
    prompt tokens of one admission's prefill; `logits_processors` (HF-style `(input_ids, scores) -> scores`) see
    every row's left-padded history. `prefill_chunk` fixes the tokens per row of one prefill call (None: split only
    prompts whose attention scores would pass `prefill.PREFILL_SCORE_BUDGET`). `fast_greedy`: "auto" (per batch size
    the fastest of the plain head and the bf16 and int8 screens, timed once per power-of-two batch size), "bf16" /
    "int8" / True (= "bf16") to force one, or False. `prefix_cache` is a `PrefixCache` (or None) shared by every
    request."""

    def __init__(self, model, tokenizer, *, max_batch_size: int = 16, max_batch_tokens: int = 16384,
                 logits_processors=(), share_prefix: bool = True, fast_greedy="auto", group_prefill: bool = True,
                 prefix_cache=None, prefill_chunk: int | None = None):
        import inspect

        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self.logits_processors = list(logits_processors or [])
        self.share_prefix = share_prefix
        self.fast_greedy = fast_greedy
        self.group_prefill = group_prefill
        self.prefix_cache = prefix_cache
        self.prefill_chunk = prefill_chunk
        self.device = next(model.parameters()).device
        text_config = getattr(model.config, "text_config", model.config)
        self.sliding_window = getattr(text_config, "sliding_window", None) or None
        self.softcap = getattr(text_config, "final_logit_softcapping", None)
        self.heads = int(getattr(text_config, "num_attention_heads", 1) or 1)
        self.pad_id = int(tokenizer.pad_token_id or 0)
        # transformers renamed `past_key_values` to `cache` in 5.2x; use whichever this version takes
        self._cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        # the decoder alone (hidden states, no LM head): for prefixes and the greedy screen
        self.decoder = getattr(model, "base_model", model)
        params = inspect.signature(self.decoder.forward).parameters
        self._decoder_cache_kw = "cache" if "cache" in params else "past_key_values"
        self._joinable: bool | None = None
        self.screen: ScreenedHead | None = None
        self._screen_decided = False
        self._screen_off = False  # this batch's distributions were too flat for the screen: off until it changes
        self._admitting_cached = 0  # prompt tokens the admission being prefilled takes from the prefix cache

        self._inbox: queue.Queue = queue.Queue()
        self._waiting: list[Sequence] = []
        self._rows: list[Sequence] = []
        self._cache = None
        self._mask: torch.Tensor | None = None  # [B, T] attention mask of the running batch
        self._pos: torch.Tensor | None = None  # [B] position of each row's last token
        self._next: list[int] = []  # each row's token to feed next
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        weakref.finalize(self, self._inbox.put, None)  # freed: wake the idle model thread so it ends
        # counters for /metrics and benchmarks (written by the model thread only)
        self.prompt_tokens_total = 0
        self.cached_prompt_tokens_total = 0
        self.generated_tokens_total = 0
        self.forward_steps_total = 0
        self.batch_rows_total = 0  # sum of batch sizes over decode steps

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "EngineCore":
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._closing.clear()
                # the thread holds the core weakly (see `_model_thread`), so an engine nobody uses is freed
                self._thread = threading.Thread(target=_model_thread, args=(weakref.ref(self), self._inbox,
                                                                           self._closing),
                                                name="sealion-engine", daemon=True)
                self._thread.start()
                # A daemon thread still inside torch when the interpreter exits aborts the process ("terminate
                # called without an active exception"): stop the loop first.
                atexit.register(self._close_at_exit, weakref.ref(self))
        return self

    @staticmethod
    def _close_at_exit(ref) -> None:
        core = ref()
        if core is not None:
            core.close()

    def close(self, timeout: float = 10.0) -> None:
        self._closing.set()
        self._inbox.put(None)  # wake an idle loop
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, seqs: list[Sequence]) -> None:
        """Queue sequences (admitted together when rows are free, in this order)."""
        if self._closing.is_set():
            raise RuntimeError("the engine is shut down")
        self.start()
        self._inbox.put(list(seqs))

    @property
    def waiting_count(self) -> int:
        return sum(len(x) for x in list(self._inbox.queue) if x) + len(self._waiting)

    @property
    def running_count(self) -> int:
        return len(self._rows)

    # ------------------------------------------------------------ the step loop

    def _step_round(self, item: list[Sequence] | None) -> bool:
        """One round of the step loop (with `item`, a batch the idle thread took from the inbox); True while
        there is work left."""
        try:
            if item:
                self._waiting.extend(item)
            self._take_inbox()
            self._drop_gone()
            self._admit()
            if self._rows:
                self._decode_step()
        except Exception as e:  # a bug or OOM must not kill the thread: fail the batch, keep going
            log.exception("engine step failed")
            self._fail_running(f"internal error: {type(e).__name__}: {e}", "internal")
        return bool(self._rows or self._waiting)

    def _shut_down(self, item: list[Sequence] | None) -> None:
        self._fail_running("the engine is shutting down", "shutdown")
        for seq in self._waiting + (item or []) + [s for batch in self._drain() for s in batch]:
            self._finish(seq, Event("error", error="the engine is shutting down", code="shutdown"))
        self._waiting = []

    def _drain(self) -> list[list[Sequence]]:
        out = []
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return out
            if item:
                out.append(item)

    def _take_inbox(self) -> None:
        for batch in self._drain():
            self._waiting.extend(batch)

    def _drop_gone(self) -> None:
        """Free the rows of requests whose caller left or whose time ran out."""
        now = time.monotonic()

        def why(seq: Sequence) -> Event | None:
            if seq.cancelled.is_set():
                return Event("error", error="cancelled", code="cancelled")
            if seq.deadline is not None and now > seq.deadline:
                return Event("error", error="the request ran past its time limit", code="timeout")
            return None

        keep = []
        for seq in self._waiting:
            event = why(seq)
            if event:
                self._finish(seq, event)
            else:
                keep.append(seq)
        self._waiting = keep
        gone = []
        for i, seq in enumerate(self._rows):
            event = why(seq)
            if event:
                self._finish(seq, event)
                gone.append(i)
        if gone:
            self._retire(gone)

    def _admit(self) -> None:
        """Prefill waiting sequences into free rows. With many waiting (an offline batch) a quarter of the batch
        must be free first, so admissions — each one copies the running cache once — stay few."""
        free = self.max_batch_size - len(self._rows)
        if not self._waiting or free <= 0:
            return
        if self._rows and free < min(len(self._waiting), max(1, self.max_batch_size // 4)):
            return
        batch: list[Sequence] = []
        if self._waiting[0].extra_inputs:  # images, audio: prefilled alone, then decoded with the others
            batch = [self._waiting.pop(0)]
        else:
            longest = 0
            while self._waiting and len(batch) < free and not self._waiting[0].extra_inputs:
                n = len(self._waiting[0].prompt_ids)
                if batch and max(longest, n) * (len(batch) + 1) > self.max_batch_tokens:
                    break
                longest = max(longest, n)
                batch.append(self._waiting.pop(0))
        try:
            self._prefill(batch)
        except Exception as e:  # e.g. a prompt that breaks the model: fail these, keep the running batch
            log.exception("prefill failed")
            for seq in batch:
                self._finish(seq, Event("error", error=f"prefill failed: {type(e).__name__}: {e}", code="internal"))

    # ------------------------------------------------------------ prefill

    def _prefill(self, seqs: list[Sequence]) -> None:
        self._screen_off = False  # the batch changes: give the screen another chance
        self._admitting_cached = 0
        reserve = min(max(s.max_new_tokens for s in seqs), KV_RESERVE)
        extra = seqs[0].extra_inputs if len(seqs) == 1 else {}
        for s in seqs:
            if s.prompt_logprobs is not None:
                s.prompt_token_logprobs = self._prompt_logprobs(s)
        live = [s for s in seqs if s.max_new_tokens > 0]
        for s in seqs:
            if s.max_new_tokens <= 0:  # prompt scoring only (echo + max_tokens 0)
                self._finish(s, Event("done", finish_reason="length"))
        if not live:
            return
        seqs = live
        screen = self._screen_for(seqs)
        prompts = [s.prompt_ids for s in seqs]
        shared = self._shared_prefix(seqs)
        prefix_caches: dict[tuple[int, ...], object] = {}  # batch-1 caches of prefixes, by their tokens
        if len(seqs) == 1 and not extra and self._use_prefix_cache():
            # one prompt: split where a later request may share the part before (prefix_cache.py)
            point = max(cache_point(prompts[0], TURN_END_ID), self._cached_length(prompts[0]))
            plan = [PrefillGroup([0], point, len(prompts[0]) - point)]
        elif self._can_group(seqs):
            plan = plan_prefill(prompts, shared)
        else:
            order = sorted(range(len(seqs)), key=lambda i: len(prompts[i]))
            plan = [PrefillGroup(order, shared, max(len(p) for p in prompts) - shared)]
        caches, masks, last, firsts = [], [], [], []
        for g in plan:
            group = [seqs[i] for i in g.rows]
            if g.prefix:
                gcache = copy.deepcopy(self._prefix_kv(group[0].prompt_ids[: g.prefix], shared, prefix_caches,
                                                       reserve))
                if len(group) > 1:
                    gcache.batch_repeat_interleave(len(group))
            else:
                gcache = kvcache.roomy_cache(self.model.config, reserve)
            # the rest of each prompt, right-aligned: [prefix][padding][own tokens]; positions count real tokens
            # only, so padding in the middle changes nothing
            ids = torch.full((len(group), g.width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(group), g.prefix + g.width), dtype=torch.long)
            mask[:, : g.prefix] = 1
            for i, s in enumerate(group):
                own = s.prompt_ids[g.prefix:]
                ids[i, g.width - len(own):] = torch.tensor(own)
                mask[i, g.prefix + g.width - len(own):] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, g.prefix:]
            spans = [(0, g.width)] if extra else self._chunks(len(group), g.width, g.prefix + g.width)
            for a, b in spans[:-1]:  # a long prompt: all but its last chunk through the decoder alone
                self.decoder(input_ids=ids[:, a:b], attention_mask=mask[:, : g.prefix + b],
                             position_ids=positions[:, a:b], use_cache=True, **{self._decoder_cache_kw: gcache})
                self.forward_steps_total += 1
            a, b = spans[-1]
            firsts.append(self._forward(screen, gcache, input_ids=ids[:, a:b], attention_mask=mask[:, : g.prefix + b],
                                        position_ids=positions[:, a:b], **extra))
            if len(group) == 1 and not extra and self._use_prefix_cache():
                self.prefix_cache.offer(group[0].prompt_ids, gcache)  # a conversation's next turn starts with it
            caches.append(gcache)
            masks.append(mask)
            last.append(positions[:, -1])
            self.forward_steps_total += 1
        ordered = [seqs[i] for g in plan for i in g.rows]
        if len(plan) == 1:
            cache, mask, pos, scores = caches[0], masks[0], last[0], firsts[0]
        else:
            length = max(g.prefix + g.width for g in plan)
            mask = torch.cat([widen_mask(m, g.prefix, length) for m, g in zip(masks, plan)])
            cache, pos, scores = join_caches(caches, plan), torch.cat(last), torch.cat(firsts)
        for s in ordered:
            self.prompt_tokens_total += len(s.prompt_ids)
        if len(ordered) == 1:
            ordered[0].cached_prefix = self._admitting_cached
        self._join(ordered, cache, mask, pos)
        self._advance(len(self._rows) - len(ordered), scores)

    def _prefix_kv(self, tokens: list[int], shared: int, memo: dict, reserve: int):
        """The batch-1 KV cache of a prompt prefix, through the decoder alone (nothing reads a prefix's logits): from
        this admission's memo, else continued from the longest prefix already computed (the batch-wide one, or one
        in the prefix cache), and kept in the prefix cache for later requests."""
        key = tuple(tokens)
        if key in memo:
            return memo[key]
        start, base = 0, None
        if self._use_prefix_cache():
            hit = self.prefix_cache.lookup(tokens)
            if hit is not None and hit[0] == len(tokens):
                memo[key] = hit[1]
                self._count_cached(len(tokens))
                return hit[1]
            if hit is not None:
                start, base = hit
        if 0 < shared < len(tokens) and shared > start:
            start, base = shared, self._prefix_kv(tokens[:shared], shared, memo, reserve)
        elif base is not None:
            self._count_cached(start)
        cache = copy.deepcopy(base) if base is not None else kvcache.roomy_cache(self.model.config, reserve)
        self.run_decoder(cache, tokens[start:], start)
        memo[key] = cache
        if self._use_prefix_cache():
            self.prefix_cache.offer(tokens, cache)
        return cache

    def _use_prefix_cache(self) -> bool:
        if self.prefix_cache is None:
            return False
        if self._joinable is None:
            self._joinable = joinable(kvcache.roomy_cache(self.model.config, 0))
        return self._joinable

    def _cached_length(self, tokens: list[int]) -> int:
        hit = self.prefix_cache.lookup(tokens, below=len(tokens) - 1)
        return hit[0] if hit is not None else 0

    def _count_cached(self, n: int) -> None:
        self.cached_prompt_tokens_total += n
        self._admitting_cached = max(self._admitting_cached, n)

    def _chunks(self, rows: int, width: int, keys: int) -> list[tuple[int, int]]:
        return chunk_bounds(width, rows, keys, self.heads, chunk=self.prefill_chunk)

    def run_decoder(self, cache, tokens: list[int], start: int) -> None:
        """Extend a batch-1 cache holding `start` tokens by `tokens` (hidden states only; long ones in chunks)."""
        for a, b in self._chunks(1, len(tokens), start + len(tokens)):
            ids = torch.tensor([tokens[a:b]], device=self.device)
            self.decoder(input_ids=ids,
                         attention_mask=torch.ones((1, start + b), dtype=torch.long, device=self.device),
                         position_ids=torch.arange(start + a, start + b, device=self.device)[None], use_cache=True,
                         **{self._decoder_cache_kw: cache})

    def _prompt_logprobs(self, seq: Sequence) -> list[dict | None]:
        """Log-probs of every prompt token given the ones before (a separate full-logits pass; the first is None)."""
        if len(seq.prompt_ids) == 1:  # nothing before the only token
            return [None]
        # in chunks through a cache of its own: full logits are queries x vocabulary, and attention queries x keys
        ids, n = seq.prompt_ids, len(seq.prompt_ids)
        vocab = self.model.get_output_embeddings().weight.shape[0]
        chunk = self.prefill_chunk or max(MIN_LOGPROB_CHUNK, LOGPROB_CHUNK_ELEMENTS // vocab)
        spans = chunk_bounds(n - 1, 1, n, self.heads, chunk=chunk)
        cache = kvcache.roomy_cache(self.model.config, 0) if len(spans) > 1 else None
        out: list[dict | None] = [None]
        for a, b in spans:  # positions a..b-1 predict tokens a+1..b
            x = torch.tensor([ids[a:b]], device=self.device)
            kw = {self._cache_kw: cache, "use_cache": True} if cache is not None else {"use_cache": False}
            logits = self.model(input_ids=x, attention_mask=torch.ones((1, b), dtype=torch.long, device=self.device),
                                position_ids=torch.arange(a, b, device=self.device)[None], **kw).logits[0].float()
            out += token_logprobs(logits, ids[a + 1: b + 1], seq.prompt_logprobs or 0)
            self.forward_steps_total += 1
        return out

    def _can_group(self, seqs: list[Sequence]) -> bool:
        """Whether the prefill may split the batch (prefill.py) and join caches afterwards."""
        if not self.group_prefill or len(seqs) < 2 or any(s.extra_inputs for s in seqs):
            return False
        if self._joinable is None:
            self._joinable = joinable(kvcache.roomy_cache(self.model.config, 0))
        return self._joinable and self._fits_window(seqs)

    def _fits_window(self, seqs: list[Sequence]) -> bool:
        """Whether every row's whole sequence fits the sliding window. Sliding-window layers mask by cache index, so
        masked slots between a prefix and the rest (shared prefixes, joined groups) would widen index distances;
        they are exact only while no window ever cuts."""
        total = max(len(s.prompt_ids) for s in seqs) + max(s.max_new_tokens for s in seqs)
        return not (self.sliding_window and total > self.sliding_window)

    def _shared_prefix(self, seqs: list[Sequence]) -> int:
        """Length of the prompt prefix every row shares, when sharing it is exact and worth it; else 0."""
        if not self.share_prefix or len(seqs) < 2 or any(s.extra_inputs for s in seqs):
            return 0
        first = seqs[0].prompt_ids
        # at least one own token per row, so every row's last prompt position is computed in the batched pass
        n = min(len(s.prompt_ids) for s in seqs) - 1
        n = min([n] + [common_prefix_length(first, s.prompt_ids) for s in seqs[1:]])
        return n if n >= MIN_SHARED_PREFIX and self._fits_window(seqs) else 0

    # ------------------------------------------------------------ the running batch

    def _join(self, seqs: list[Sequence], cache, mask: torch.Tensor, pos: torch.Tensor) -> None:
        """Add prefilled rows to the running batch: both sides left-padded to the longer one, then stacked."""
        if self._cache is None:
            self._cache, self._mask, self._pos = cache, mask, pos
        else:
            total, length = self._mask.shape[1], mask.shape[1]
            if total < length:
                kvcache.pad_left(self._cache, length - total, total)
                self._mask = torch.nn.functional.pad(self._mask, (length - total, 0))
            elif length < total:
                kvcache.pad_left(cache, total - length, length)
                mask = torch.nn.functional.pad(mask, (total - length, 0))
            kvcache.concat(self._cache, cache)
            self._mask = torch.cat([self._mask, mask])
            self._pos = torch.cat([self._pos, pos])
        self._rows.extend(seqs)
        self._next.extend([0] * len(seqs))

    def _decode_step(self) -> None:
        rows = self._rows
        screen = self._screen_for(rows)
        ids = torch.tensor(self._next, dtype=torch.long, device=self.device)[:, None]
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(rows), 1))], dim=1)
        self._pos = self._pos + 1
        scores = self._forward(screen, self._cache, input_ids=ids, attention_mask=self._mask,
                               position_ids=self._pos[:, None])
        self.forward_steps_total += 1
        self.batch_rows_total += len(rows)
        self._advance(0, scores)

    def _forward(self, screen: ScreenedHead | None, cache, **inputs) -> torch.Tensor:
        """The last position's logits [B, V]; with a greedy screen, its token ids [B] (no logits are written)."""
        if screen is None:
            out = self.model(**inputs, use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})
            return out.logits[:, -1, :]
        out = self.decoder(**inputs, use_cache=True, **{self._decoder_cache_kw: cache})
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return screen.argmax(hidden[:, -1, :], self.softcap)

    def _history(self, rows: list[Sequence]) -> torch.Tensor:
        """Every row's prompt and generated tokens, left-padded: what HF-style logits processors read."""
        seqs = [s.prompt_ids + s.generated for s in rows]
        out = torch.full((len(seqs), max(len(x) for x in seqs)), self.pad_id, dtype=torch.long)
        for i, x in enumerate(seqs):
            out[i, out.shape[1] - len(x):] = torch.tensor(x)
        return out.to(self.device)

    def _advance(self, offset: int, scores: torch.Tensor) -> None:
        """Choose one token for rows offset.. of the batch from their scores; retire the finished ones."""
        rows = self._rows[offset:]
        logits = None
        if scores.dim() == 1:
            tokens = scores.tolist()
        else:
            logits = scores.float()
            for proc in self.logits_processors:
                logits = proc(self._history(rows), logits)
            tokens = choose_next(logits, [s.sampling for s in rows]).tolist()
        finished = []
        for j, (seq, tok) in enumerate(zip(rows, tokens)):
            if seq.thinking is not None:
                tok = seq.thinking.override(seq, tok)
            lp = None
            if seq.logprobs is not None and logits is not None:
                lp = token_logprobs(logits[j: j + 1], [tok], seq.logprobs)[0]
            if self._append(seq, tok, lp):
                finished.append(offset + j)
            else:
                self._next[offset + j] = tok
        if finished:
            self._retire(finished)

    def _append(self, seq: Sequence, token: int, logprob: dict | None) -> bool:
        """Record a token, emit what is safe to show; True when the sequence is finished."""
        self.generated_tokens_total += 1
        seq.completion_tokens += 1
        if seq.first_token_at is None:
            seq.first_token_at = time.monotonic()
        if token in seq.stop_ids:
            seq.stop_token, seq.stop_logprob = token, logprob
            self._finish(seq, Event("done", finish_reason="stop"))
            return True
        seq.generated.append(token)
        if logprob is not None:
            seq.token_logprobs.append(logprob)
        if seq.thinking is not None:
            seq.thinking.observe(seq, token)
        seq.tracker.add(token)
        reason = None
        if seq.tracker.stopped_at is not None:
            reason = "stop"
        elif len(seq.generated) >= seq.max_new_tokens or (
                seq.thinking is not None and seq.thinking.answer_exhausted(seq)):
            reason = "length"  # max_tokens, or the context is full
        if reason:
            self._finish(seq, Event("done", finish_reason=reason))
            return True
        if seq.stream and seq.emit is not None:
            text = seq.tracker.delta()
            self._send(seq, Event("delta", text=text, token_ids=[token], logprobs=[logprob] if logprob else []))
        return False

    def _retire(self, drop: list[int]) -> None:
        gone = set(drop)
        keep = [i for i in range(len(self._rows)) if i not in gone]
        self._rows = [self._rows[i] for i in keep]
        self._next = [self._next[i] for i in keep]
        if not keep:
            self._cache = self._mask = self._pos = None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        kvcache.select_rows(self._cache, index)
        self._mask = self._mask.index_select(0, index)
        self._pos = self._pos.index_select(0, index)
        # drop columns that are padding in every remaining row, so the batch does not widen without bound
        used = self._mask.any(dim=0).nonzero()
        lead = int(used[0].item()) if used.numel() else 0
        if lead > 0:
            kvcache.trim_left(self._cache, lead, self._mask.shape[1])
            self._mask = self._mask[:, lead:]

    def _fail_running(self, message: str, code: str) -> None:
        for seq in self._rows:
            self._finish(seq, Event("error", error=message, code=code))
        self._rows, self._next = [], []
        self._cache = self._mask = self._pos = None

    def _finish(self, seq: Sequence, event: Event) -> None:
        if seq.done.is_set():
            return
        if event.kind == "done":
            seq.finish_reason = event.finish_reason
            if seq.stream:
                event.text = seq.tracker.delta(final=True)
        else:
            seq.finish_reason, seq.error, seq.code = "error", event.error, event.code
        seq.done.set()
        self._send(seq, event)

    @staticmethod
    def _send(seq: Sequence, event: Event) -> None:
        if seq.emit is None:
            return
        try:
            seq.emit(event)
        except Exception:  # the receiver is gone (a closed event loop): nothing to tell
            seq.cancel()

    # ------------------------------------------------------------ the greedy screen

    def _screen_for(self, rows: list[Sequence]) -> ScreenedHead | None:
        """The LM-head screen when every row is greedy, nothing else reads the scores and it pays on this CPU."""
        if self._screen_off or self.logits_processors or any(s.needs_logits for s in rows):
            return None
        if not self._screen_decided:
            self._screen_decided = True
            self.screen = choose_screen(self.model.get_output_embeddings(), self.fast_greedy)
        screen = self.screen
        if screen is not None and screen.misses >= MAX_SCREEN_MISSES:
            screen.misses = 0
            self._screen_off = True  # this batch's distributions are too flat for the screen to pay
            return None
        return screen


def _model_thread(ref: "weakref.ref[EngineCore]", inbox: queue.Queue, closing: threading.Event) -> None:
    """The step loop. While idle it waits on the inbox holding no reference to its core: an engine the program
    dropped without `close()` is then garbage (its finalizer wakes this thread, which ends) instead of pinning the
    model's memory for the life of the process."""
    torch.set_grad_enabled(False)
    item = None
    with torch.inference_mode():
        while not closing.is_set():
            core = ref()
            if core is None:
                return
            busy = core._step_round(item)
            item = None
            del core
            if not busy:
                item = inbox.get()
        core = ref()
        if core is not None:
            core._shut_down(item)

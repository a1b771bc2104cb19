"""The in-process transformers backend: batched generation with left padding, per-request sampling and seeds,
stop strings and stop ids, streaming, finish reasons and token usage.

It runs its own decode loop rather than `model.generate`: the loop keeps per-row sampling state (seed, temperature,
top-k/p, stop rules), drops finished rows from the batch and the KV cache at once (so a batch never waits on its
longest row), and computes logits for the last position only.
"""

from __future__ import annotations

import copy
import inspect
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch

from ..errors import SealionError
from . import prompting
from .base import Engine, ProgressFn
from .detok import TextTracker
from .greedy_head import ScreenedHead
from .kvcache import roomy_cache
from .prefill import PrefillGroup, common_prefix_length, join_caches, joinable, plan_prefill, widen_mask
from .sampling import ResolvedSampling, choose_next, model_defaults, resolve
from .types import ChatRequest, Completion, CompletionRequest, SamplingParams, StreamDelta


MIN_SHARED_PREFIX = 16  # tokens; below this a separate prefix pass costs more than it saves
KV_RESERVE = 128  # free KV slots a cache keeps ahead of decoding (grown again, one copy, when used up)
MAX_SCREEN_MISSES = 4  # consecutive fp32 fallbacks of the greedy LM-head screen before a batch stops trying it


@dataclass
class _Row:
    index: int  # position in the caller's request list
    prompt_ids: list[int]
    params: SamplingParams
    sampling: ResolvedSampling
    tracker: TextTracker
    stop_ids: set[int]
    extra_inputs: dict[str, Any] = field(default_factory=dict)
    generated: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    chat: ChatRequest | None = None
    prompt_text: str | None = None  # the rendered chat prompt, for parsing the reply


class LocalEngine(Engine):
    """Generation in this process with a Hugging Face model.

    `model` is a reference (`demo`, a directory, a hub id, a .gguf file) or an already loaded
    `sealion.models.LoadedModel`. `max_batch_size` bounds rows per forward pass; `max_batch_tokens` bounds the padded
    prompt tokens of one prefill. `logits_processors` are applied (HF-style callables `(input_ids, scores) -> scores`)
    before sampling, e.g. to constrain or script output. `share_prefix`: a batch whose prompts start with the same
    tokens (an evaluation task's instruction, a system prompt) computes that prefix once and shares its KV cache.
    `fast_greedy`: on CPU with fp32 weights, all-greedy batches pick the argmax through a bf16 screen of the LM head
    with exact fp32 rescoring of every row that could win (`greedy_head.py`; costs a bf16 copy of the head).
    `group_prefill`: a batch's prompts are prefilled in length groups rather than all padded to the longest
    (`prefill.py`), then decoded together.
    """

    def __init__(
        self,
        model,
        *,
        max_batch_size: int = 16,
        max_batch_tokens: int = 16384,
        logits_processors: Sequence[Any] | None = None,
        dtype=None,
        device: str | None = None,
        text_only: bool = False,
        share_prefix: bool = True,
        fast_greedy: bool = True,
        group_prefill: bool = True,
    ):
        from ..models import LoadedModel, load

        self.loaded: LoadedModel = model if isinstance(model, LoadedModel) else load(
            model, dtype=dtype, device=device, text_only=text_only
        )
        self.model = self.loaded.model
        self.tokenizer = self.loaded.tokenizer
        self.name = str(self.loaded.ref)
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.logits_processors = list(logits_processors or [])
        self.device = next(self.model.parameters()).device
        gen_config = getattr(self.model, "generation_config", None)
        self.defaults = model_defaults(gen_config)
        self.eos_ids = self._eos_ids(gen_config)
        self.context_length = int(
            getattr(getattr(self.model.config, "text_config", self.model.config), "max_position_embeddings", 0) or 0
        )
        self.share_prefix = share_prefix
        self.fast_greedy = fast_greedy
        self.group_prefill = group_prefill
        self._joinable: bool | None = None  # whether this model's KV cache layers can be widened and joined
        self._screen = None
        text_config = getattr(self.model.config, "text_config", self.model.config)
        self._sliding_window = getattr(text_config, "sliding_window", None) or None
        self._lock = threading.Lock()  # one generation at a time on this model
        # transformers renamed `past_key_values` to `cache` in 5.2x; use whichever this version takes
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        # the decoder alone (hidden states, no LM head): for the shared prefix and the greedy screen
        self._decoder = getattr(self.model, "base_model", self.model)
        params = inspect.signature(self._decoder.forward).parameters
        self._decoder_cache_kw = "cache" if "cache" in params else "past_key_values"
        self._softcap = getattr(text_config, "final_logit_softcapping", None)

    def _eos_ids(self, gen_config) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(gen_config, "eos_token_id", None), self.tokenizer.eos_token_id):
            if source is None:
                continue
            ids.update(source if isinstance(source, (list, tuple)) else [source])
        return {int(i) for i in ids}

    # ---- request preparation -------------------------------------------------------------------------------

    def encode(self, prompt: str) -> list[int]:
        bos = self.tokenizer.bos_token
        # A rendered chat already starts with <bos>; a raw prompt gets the tokenizer's usual specials.
        add_special = not (bos and prompt.startswith(bos))
        ids = self.tokenizer(prompt, add_special_tokens=add_special).input_ids
        if add_special and bos and (not ids or ids[0] != self.tokenizer.bos_token_id):
            ids = [self.tokenizer.bos_token_id] + ids  # Gemma needs <bos>; some tokenizer configs omit it
        return ids

    def _row(self, index: int, prompt_ids: list[int], params: SamplingParams, extra_stop_ids=(), **kw) -> _Row:
        if not prompt_ids:
            raise SealionError("empty prompt")
        if self.context_length and len(prompt_ids) >= self.context_length:
            raise SealionError(
                f"prompt has {len(prompt_ids)} tokens; the model's context is {self.context_length} tokens"
            )
        return _Row(
            index=index,
            prompt_ids=prompt_ids,
            params=params,
            sampling=resolve(params, self.defaults),
            tracker=TextTracker(self.tokenizer, params.stop),
            stop_ids=self.eos_ids | set(params.stop_token_ids) | set(extra_stop_ids),
            **kw,
        )

    def _completion_row(self, index: int, req: CompletionRequest) -> _Row:
        ids = list(req.prompt_ids) if req.prompt_ids is not None else self.encode(req.prompt)
        return self._row(index, ids, req.params)

    def _chat_row(self, index: int, req: ChatRequest) -> _Row:
        extra: dict[str, Any] = {}
        if _has_media(req.messages):
            if self.loaded.processor is None:
                raise SealionError(f"{self.name}: this model has no processor; it cannot take images, audio or video")
            from ..chat.multimodal import prepare_inputs

            inputs = prepare_inputs(
                self.loaded.processor, self.tokenizer, req.messages, tools=req.tools,
                enable_thinking=req.enable_thinking,
            )
            ids = inputs.pop("input_ids")[0].tolist()
            text = None
            inputs.pop("attention_mask", None)
            extra = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        else:
            prompt = prompting.chat_prompt(
                self.tokenizer, req.messages, tools=req.tools, enable_thinking=req.enable_thinking
            )
            text, ids = prompt.text, prompt.ids  # ids from the renderer: message text never becomes a control id
        return self._row(index, ids, req.params, prompting.chat_stop_ids(self.tokenizer), extra_inputs=extra, chat=req,
                         prompt_text=text)

    # ---- the decode loop ------------------------------------------------------------------------------------

    def _batches(self, rows: list[_Row]) -> Iterator[list[_Row]]:
        """Group rows of similar length (less padding); rows with model inputs beyond ids run alone."""
        plain = sorted((r for r in rows if not r.extra_inputs), key=lambda r: len(r.prompt_ids))
        for r in rows:
            if r.extra_inputs:
                yield [r]
        batch: list[_Row] = []
        for r in plain:
            longest = max([len(r.prompt_ids)] + [len(b.prompt_ids) for b in batch])
            if batch and (len(batch) >= self.max_batch_size or longest * (len(batch) + 1) > self.max_batch_tokens):
                yield batch
                batch = []
            batch.append(r)
        if batch:
            yield batch

    @torch.inference_mode()
    def _run(self, rows: list[_Row]) -> Iterator[_Row]:
        """Generate for one batch; yields a row each time it gets a new token (for streaming)."""
        pad = self.tokenizer.pad_token_id or 0
        max_steps = max(r.params.max_new_tokens for r in rows)
        extra = rows[0].extra_inputs if len(rows) == 1 else {}
        screen = self._head_screen(rows) if not extra else None
        if screen is not None:
            screen.misses = 0
        rows, cache, mask, last_pos, scores = self._prefill(rows, screen, extra, min(max_steps, KV_RESERVE))
        # the prompts, left-padded: what HF-style logits processors expect as input_ids
        history = torch.full((len(rows), max(len(r.prompt_ids) for r in rows)), pad, dtype=torch.long)
        for i, r in enumerate(rows):
            history[i, history.shape[1] - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
        history = history.to(self.device)
        active = list(rows)
        for _step in range(max_steps):
            if scores.dim() == 1:
                next_ids = scores.tolist()
            else:
                logits = scores.float()
                for proc in self.logits_processors:
                    logits = proc(history, logits)
                next_ids = choose_next(logits, [r.sampling for r in active]).tolist()
            keep = []
            for i, (r, tok) in enumerate(zip(active, next_ids)):
                if tok in r.stop_ids:
                    r.finish_reason = "stop"
                else:
                    r.generated.append(tok)
                    r.tracker.add(tok)
                    if r.tracker.stopped_at is not None:
                        r.finish_reason = "stop"
                    elif len(r.generated) >= r.params.max_new_tokens:
                        r.finish_reason = "length"
                    yield r
                if r.finish_reason is None:
                    keep.append(i)
            if not keep:
                return
            step_ids = torch.tensor(next_ids, device=self.device)
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, last_pos, history, step_ids = mask[index], last_pos[index], history[index], step_ids[index]
                active = [active[i] for i in keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            last_pos = last_pos + 1
            history = torch.cat([history, step_ids[:, None]], dim=-1)
            if screen is not None and screen.misses >= MAX_SCREEN_MISSES:
                screen = None  # this batch's distributions are too flat for the screen to pay: plain fp32 from here
            scores = self._forward(screen, cache, input_ids=step_ids[:, None], attention_mask=mask,
                                   position_ids=last_pos[:, None])

    def _forward(self, screen: ScreenedHead | None, cache, **inputs) -> torch.Tensor:
        """The last position's logits [B, V]; with a greedy screen, its token ids [B] (no logits are written)."""
        if screen is None:
            out = self.model(**inputs, use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})
            return out.logits[:, -1, :]
        out = self._decoder(**inputs, use_cache=True, **{self._decoder_cache_kw: cache})
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return screen.argmax(hidden[:, -1, :], self._softcap)

    def _prefill(self, rows: list[_Row], screen, extra: dict, reserve: int):
        """Prefill a batch (prefill.py): (rows in batch order, cache, attention mask, last positions, first scores)."""
        pad = self.tokenizer.pad_token_id or 0
        prompts = [r.prompt_ids for r in rows]
        shared = self._shared_prefix(rows)
        if self._can_group(rows):
            plan = plan_prefill(prompts, shared)
        else:
            order = sorted(range(len(rows)), key=lambda i: len(prompts[i]))
            plan = [PrefillGroup(order, shared, max(len(p) for p in prompts) - shared)]
        prefix_caches: dict[tuple[int, ...], object] = {}  # batch-1 caches of the prefixes, by their tokens
        caches, masks, last, firsts = [], [], [], []
        for g in plan:
            group = [rows[i] for i in g.rows]
            if g.prefix:
                gcache = copy.deepcopy(self._prefix_cache(group[0].prompt_ids[: g.prefix], shared, prefix_caches,
                                                          reserve))
                gcache.batch_repeat_interleave(len(group))
            else:
                gcache = roomy_cache(self.model.config, reserve)
            # the rest of each prompt, right-aligned: [prefix][padding][own tokens]; positions count real tokens
            # only, so padding in the middle changes nothing
            ids = torch.full((len(group), g.width), pad, dtype=torch.long)
            mask = torch.zeros((len(group), g.prefix + g.width), dtype=torch.long)
            mask[:, : g.prefix] = 1
            for i, r in enumerate(group):
                own = r.prompt_ids[g.prefix :]
                ids[i, g.width - len(own) :] = torch.tensor(own)
                mask[i, g.prefix + g.width - len(own) :] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, g.prefix :]
            firsts.append(self._forward(screen, gcache, input_ids=ids, attention_mask=mask, position_ids=positions,
                                        **extra))
            caches.append(gcache)
            masks.append(mask)
            last.append(positions[:, -1])
        ordered = [rows[i] for g in plan for i in g.rows]
        if len(plan) == 1:
            return ordered, caches[0], masks[0], last[0], firsts[0]
        length = max(g.prefix + g.width for g in plan)
        mask = torch.cat([widen_mask(m, g.prefix, length) for m, g in zip(masks, plan)])
        return ordered, join_caches(caches, plan), mask, torch.cat(last), torch.cat(firsts)

    def _prefix_cache(self, tokens: list[int], shared: int, memo: dict, reserve: int):
        """The batch-1 KV cache of a prompt prefix, through the decoder alone (nothing reads a prefix's logits);
        a cluster's prefix continues the batch-wide one."""
        key = tuple(tokens)
        if key in memo:
            return memo[key]
        start = shared if 0 < shared < len(tokens) else 0
        cache = copy.deepcopy(self._prefix_cache(tokens[:shared], shared, memo, reserve)) if start else \
            roomy_cache(self.model.config, reserve)
        ids = torch.tensor([tokens[start:]], device=self.device)
        self._decoder(input_ids=ids, attention_mask=torch.ones((1, len(tokens)), dtype=torch.long, device=self.device),
                      position_ids=torch.arange(start, len(tokens), device=self.device)[None], use_cache=True,
                      **{self._decoder_cache_kw: cache})
        memo[key] = cache
        return cache

    def _can_group(self, rows: list[_Row]) -> bool:
        """Whether the prefill may split the batch (prefill.py) and join caches afterwards."""
        if not self.group_prefill or len(rows) < 2 or any(r.extra_inputs for r in rows):
            return False
        if self._joinable is None:
            self._joinable = joinable(roomy_cache(self.model.config, 0))
        if not self._joinable:
            return False
        return self._fits_window(rows)

    def _fits_window(self, rows: list[_Row]) -> bool:
        """Whether every row's whole sequence fits the sliding window. Sliding-window layers mask by cache index, so
        masked slots between a prefix and the rest (shared prefixes, joined groups) would widen index distances;
        they are exact only while no window ever cuts."""
        total = max(len(r.prompt_ids) for r in rows) + max(r.params.max_new_tokens for r in rows)
        return not (self._sliding_window and total > self._sliding_window)

    def _head_screen(self, rows: list[_Row]) -> ScreenedHead | None:
        """The LM-head screen when every row is greedy and nothing else reads the scores; else None."""
        if not self.fast_greedy or self.logits_processors or not all(r.sampling.greedy for r in rows):
            return None
        if self._screen is None:
            head = self.model.get_output_embeddings()
            if not ScreenedHead.applies_to(head):
                self.fast_greedy = False  # GPU or low-precision weights: the plain head is already fast
                return None
            self._screen = ScreenedHead(head)
        return self._screen

    def _shared_prefix(self, rows: list[_Row]) -> int:
        """Length of the prompt prefix every row shares, when sharing it is exact and worth it; else 0."""
        if not self.share_prefix or len(rows) < 2 or any(r.extra_inputs for r in rows):
            return 0
        first = rows[0].prompt_ids
        # at least one own token per row, so every row's last prompt position is computed in the batched pass
        n = min(len(r.prompt_ids) for r in rows) - 1
        n = min([n] + [common_prefix_length(first, r.prompt_ids) for r in rows[1:]])
        return n if n >= MIN_SHARED_PREFIX and self._fits_window(rows) else 0

    def _finish(self, r: _Row) -> Completion:
        text = r.tracker.final_text
        c = Completion(
            text=text,
            finish_reason=r.finish_reason or "length",
            prompt_tokens=len(r.prompt_ids),
            completion_tokens=len(r.generated),
            token_ids=list(r.generated),
        )
        if r.chat is not None:
            reply = prompting.parse_reply(self.tokenizer, text, r.prompt_text)
            c.content, c.reasoning, c.tool_calls = reply["content"], reply["reasoning"], reply["tool_calls"]
            if c.tool_calls and c.finish_reason == "stop":
                c.finish_reason = "tool_calls"
        return c

    def _generate(self, rows: list[_Row], progress: ProgressFn | None) -> list[Completion]:
        results: list[Completion | None] = [None] * len(rows)
        with self._lock:
            for batch in self._batches(rows):
                for _ in self._run(batch):
                    pass
                for r in batch:
                    results[r.index] = self._finish(r)
                if progress:
                    progress(len(batch))
        return results  # type: ignore[return-value]

    # ---- the Engine interface ------------------------------------------------------------------------------

    def complete(self, requests: Sequence[CompletionRequest], *, progress: ProgressFn | None = None) -> list[Completion]:
        rows = [self._completion_row(i, r) for i, r in enumerate(requests)]
        out = self._generate(rows, progress)
        for c, r in zip(out, requests):
            c.id = r.id
        return out

    def chat(self, requests: Sequence[ChatRequest], *, progress: ProgressFn | None = None) -> list[Completion]:
        rows = [self._chat_row(i, r) for i, r in enumerate(requests)]
        out = self._generate(rows, progress)
        for c, r in zip(out, requests):
            c.id = r.id
        return out

    def stream(self, request: CompletionRequest | ChatRequest) -> Iterator[StreamDelta]:
        row = self._chat_row(0, request) if isinstance(request, ChatRequest) else self._completion_row(0, request)
        with self._lock:
            for r in self._run([row]):
                piece = r.tracker.delta()
                if piece:
                    yield StreamDelta(text=piece)
        tail = row.tracker.delta(final=True)
        final = self._finish(row)
        final.id = request.id
        yield StreamDelta(text=tail, final=final)


def _has_media(messages: list[dict]) -> bool:
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") not in (None, "text"):
                    return True
    return False

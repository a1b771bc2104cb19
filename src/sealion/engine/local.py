"""The in-process transformers backend: requests in, `Completion`s out, through the engine core (`core.py`).

This module turns requests into core `Sequence`s (tokenising, rendering chats, the one rule for sampling
parameters, stop ids, the context limit, thinking budgets) and the core's results back into `Completion`s. It does
not decode: the core does, for this API and for `sealion serve` alike.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence as Seq

from ..errors import SealionError
from . import prompting
from .base import Engine, ProgressFn
from .core import EngineCore, Event, Sequence
from .detok import TextTracker
from .prefix_cache import PrefixCache
from .sampling import model_defaults, resolve
from .thinking import ThoughtBudget, budget_for_effort
from .types import ChatRequest, Completion, CompletionRequest, SamplingParams, StreamDelta

DEFAULT_PREFIX_CACHE_MB = 256


class LocalEngine(Engine):
    """Generation in this process with a Hugging Face model.

    `model` is a reference (`demo`, a directory, a hub id, a .gguf file) or an already loaded
    `sealion.models.LoadedModel`. `max_batch_size` bounds rows decoded together; `max_batch_tokens` bounds the
    padded prompt tokens of one prefill. `logits_processors` are applied (HF-style callables
    `(input_ids, scores) -> scores`) before sampling, e.g. to constrain or script output. `share_prefix`: prompts
    admitted together that start alike compute that prefix once. `fast_greedy`: "auto" uses a screened LM head
    for all-greedy batches (per batch size bf16 or int8, whichever this CPU runs fastest, and only if faster than
    the plain head: `greedy_head.py`); "bf16" / "int8" (True = "bf16") force that screen where it applies, False
    never. `group_prefill`: prompts are prefilled in length groups rather than all padded to the longest
    (`prefill.py`). `prefix_cache_mb`: the budget of the automatic prefix cache across requests (0: off).
    `max_model_len`: a context window below the model's (prompt + generated never exceed it).
    """

    def __init__(
        self,
        model,
        *,
        max_batch_size: int = 16,
        max_batch_tokens: int = 16384,
        logits_processors: Seq[Any] | None = None,
        dtype=None,
        device: str | None = None,
        text_only: bool = False,
        share_prefix: bool = True,
        fast_greedy="auto",
        group_prefill: bool = True,
        prefix_cache_mb: float = DEFAULT_PREFIX_CACHE_MB,
        max_model_len: int | None = None,
        quantize: str | None = None,
    ):
        from ..models import LoadedModel, load

        self.loaded: LoadedModel = model if isinstance(model, LoadedModel) else load(
            model, dtype=dtype, device=device, text_only=text_only, quantize=quantize
        )
        self.model = self.loaded.model
        self.model.eval()
        self.tokenizer = self.loaded.tokenizer
        self.name = str(self.loaded.ref)
        gen_config = getattr(self.model, "generation_config", None)
        self.defaults = model_defaults(gen_config)
        self.eos_ids = self._eos_ids(gen_config)
        self.context_length = int(
            getattr(getattr(self.model.config, "text_config", self.model.config), "max_position_embeddings", 0) or 0
        )
        if max_model_len:
            self.context_length = min(self.context_length or int(max_model_len), int(max_model_len))
        self.chat_stop_ids = set(prompting.chat_stop_ids(self.tokenizer))
        self._gemma4_ids = prompting.has_gemma4_ids(self.tokenizer)
        cache = PrefixCache(int(prefix_cache_mb * 2**20)) if prefix_cache_mb and prefix_cache_mb > 0 else None
        self.core = EngineCore(self.model, self.tokenizer, max_batch_size=max_batch_size,
                               max_batch_tokens=max_batch_tokens, logits_processors=logits_processors or (),
                               share_prefix=share_prefix, fast_greedy=fast_greedy, group_prefill=group_prefill,
                               prefix_cache=cache)

    @classmethod
    def from_model(cls, model, tokenizer, *, processor=None, name: str = "model", **kw) -> "LocalEngine":
        """An engine over an already loaded transformers model and tokenizer."""
        from ..models import LoadedModel

        path = Path(getattr(model.config, "_name_or_path", "") or ".")
        return cls(LoadedModel(model=model, tokenizer=tokenizer, processor=processor, path=path, ref=name), **kw)

    def _eos_ids(self, gen_config) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(gen_config, "eos_token_id", None), getattr(self.model.config, "eos_token_id", None),
                       self.tokenizer.eos_token_id):
            if source is None:
                continue
            ids.update(source if isinstance(source, (list, tuple)) else [source])
        return {int(i) for i in ids}

    # the core's knobs, settable as before
    def _knob(name):  # noqa: N805 - a property factory
        return property(lambda self: getattr(self.core, name), lambda self, v: setattr(self.core, name, v))

    logits_processors = _knob("logits_processors")
    share_prefix = _knob("share_prefix")
    group_prefill = _knob("group_prefill")
    fast_greedy = _knob("fast_greedy")
    max_batch_size = _knob("max_batch_size")
    max_batch_tokens = _knob("max_batch_tokens")
    prefill_chunk = _knob("prefill_chunk")
    del _knob

    @property
    def _screen(self):
        return self.core.screen

    @property
    def prefix_cache(self) -> PrefixCache | None:
        return self.core.prefix_cache

    # ---- request preparation -------------------------------------------------------------------------------

    def encode_text(self, text: str) -> list[int]:
        """A piece of text (a continuation), no special tokens added."""
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def chat_prompt_ids(self, messages: list[dict]) -> list[int]:
        """The ids a chat prompt is fed as, through the one renderer (with its generation prompt)."""
        from . import prompting

        return list(prompting.chat_prompt(self.tokenizer, messages).ids)

    def encode(self, prompt: str) -> list[int]:
        bos = self.tokenizer.bos_token
        # A rendered chat already starts with <bos>; a raw prompt gets the tokenizer's usual specials.
        add_special = not (bos and prompt.startswith(bos))
        ids = self.tokenizer(prompt, add_special_tokens=add_special).input_ids
        if add_special and bos and (not ids or ids[0] != self.tokenizer.bos_token_id):
            ids = [self.tokenizer.bos_token_id] + ids  # Gemma needs <bos>; some tokenizer configs omit it
        return ids

    def sequence(self, prompt_ids: list[int], params: SamplingParams, *, chat: bool = False,
                 emit: Callable[[Event], None] | None = None, stream: bool = False, extra_inputs=None,
                 timeout: float | None = None, check: bool = True) -> Sequence:
        """A core sequence for a tokenised prompt under the one set of rules: sampling parameters checked
        (`params.py`), stop ids = the model's EOS ids + the request's (+ the turn end for chats), prompt plus
        generated never beyond the model's context, the thinking budget for chats."""
        if check:
            params.check()
        if not prompt_ids:
            raise SealionError("empty prompt")
        room = self.context_length - len(prompt_ids) if self.context_length else None
        if room is not None and room < (0 if params.prompt_logprobs is not None else 1):
            raise SealionError(
                f"prompt has {len(prompt_ids)} tokens; the model's context is {self.context_length} tokens"
            )
        max_new = params.max_new_tokens
        thinking = None
        if chat and self._gemma4_ids:
            thinking = ThoughtBudget(params.thinking_budget, max_new, prompt_ids)
            if params.thinking_budget is not None:
                max_new = params.thinking_budget + max_new + 1  # thought, its forced end, then the answer
        if room is not None:
            max_new = min(max_new, room)
        stop_ids = self.eos_ids | set(params.stop_token_ids) | (self.chat_stop_ids if chat else set())
        tracker = TextTracker(self.tokenizer, params.stop, skip_special_tokens=params.skip_special_tokens,
                              include_stop=params.include_stop_str_in_output)
        return Sequence(prompt_ids, resolve(params, self.defaults), max_new_tokens=max_new, tracker=tracker,
                        stop_ids=stop_ids, emit=emit, stream=stream, extra_inputs=extra_inputs, timeout=timeout,
                        logprobs=params.logprobs, prompt_logprobs=params.prompt_logprobs, thinking_budget=thinking)

    def _completion_seq(self, req: CompletionRequest, **kw) -> Sequence:
        ids = list(req.prompt_ids) if req.prompt_ids is not None else self.encode(req.prompt)
        return self.sequence(ids, req.params, **kw)

    def media_prompt(self, messages: list[dict], *, tools=None, enable_thinking: bool = False,
                     add_generation_prompt: bool = True) -> tuple[list[int], str, dict[str, Any]]:
        """(prompt ids with each image/audio/video part's soft-token span, the prompt as text, the encoders'
        inputs on the model's device) for a conversation with media: the one path for this API and the server."""
        if self.loaded.processor is None:
            raise SealionError(f"{self.name}: this model has no processor; it cannot take images, audio or video")
        from ..chat.multimodal import prepare_inputs

        inputs = prepare_inputs(self.loaded.processor, self.tokenizer, messages, tools=tools,
                                enable_thinking=enable_thinking, add_generation_prompt=add_generation_prompt)
        ids = inputs.pop("input_ids")[0].tolist()
        inputs.pop("attention_mask", None)
        device = self.core.device
        extra = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
        # the text tells the reply parser how the prompt ends (e.g. inside an open thought channel)
        return ids, self.tokenizer.decode(ids[-64:]), extra

    def _chat_seq(self, req: ChatRequest, **kw) -> Sequence:
        extra: dict[str, Any] = {}
        if _has_media(req.messages):
            ids, text, extra = self.media_prompt(req.messages, tools=req.tools, enable_thinking=req.enable_thinking)
        else:
            prompt = prompting.chat_prompt(
                self.tokenizer, req.messages, tools=req.tools, enable_thinking=req.enable_thinking
            )
            text, ids = prompt.text, prompt.ids  # ids from the renderer: message text never becomes a control id
        params = req.params
        if params.thinking_budget is None and req.enable_thinking and budget_for_effort(req.reasoning_effort):
            from dataclasses import replace

            params = replace(params, thinking_budget=budget_for_effort(req.reasoning_effort))
        seq = self.sequence(ids, params, chat=True, extra_inputs=extra, **kw)
        seq.meta.update(chat=req, prompt_text=text)
        return seq

    # ---- results -------------------------------------------------------------------------------------------

    def completion(self, seq: Sequence) -> Completion:
        """The Completion of a finished sequence (chat sequences parsed into content, reasoning, tool calls)."""
        if seq.code == "internal":
            raise SealionError(f"generation failed: {seq.error}")
        text = seq.tracker.final_text
        c = Completion(
            text=text,
            finish_reason=seq.finish_reason or "length",
            prompt_tokens=len(seq.prompt_ids),
            completion_tokens=seq.completion_tokens,
            token_ids=list(seq.generated),
            error=seq.error,
            reasoning_tokens=seq.thinking.reasoning if seq.thinking is not None else None,
            cached_tokens=seq.cached_prefix,
            logprobs=list(seq.token_logprobs) if seq.logprobs is not None else None,
            prompt_logprobs=seq.prompt_token_logprobs,
            stop_token_id=seq.stop_token,
        )
        if seq.meta.get("chat") is not None and c.finish_reason != "error":
            reply = prompting.parse_reply(self.tokenizer, text, seq.meta.get("prompt_text"))
            c.content, c.reasoning, c.tool_calls = reply["content"], reply["reasoning"], reply["tool_calls"]
            if c.tool_calls and c.finish_reason == "stop":
                c.finish_reason = "tool_calls"
        return c

    def _run_all(self, seqs: list[Sequence], progress: ProgressFn | None) -> list[Completion]:
        finished: queue.Queue = queue.Queue()
        for s in seqs:
            s.emit = lambda e, s=s: finished.put(s) if e.kind != "delta" else None
        # similar lengths admitted together pad less; results still come back in request order
        self.core.submit(sorted(seqs, key=lambda s: len(s.prompt_ids)))
        for _ in seqs:
            finished.get()
            if progress:
                progress(1)
        return [self.completion(s) for s in seqs]

    # ---- the Engine interface ------------------------------------------------------------------------------

    def complete(self, requests: Seq[CompletionRequest], *, progress: ProgressFn | None = None) -> list[Completion]:
        seqs = [self._completion_seq(r) for r in requests]
        out = self._run_all(seqs, progress)
        for c, r in zip(out, requests):
            c.id = r.id
        return out

    def chat(self, requests: Seq[ChatRequest], *, progress: ProgressFn | None = None) -> list[Completion]:
        seqs = [self._chat_seq(r) for r in requests]
        out = self._run_all(seqs, progress)
        for c, r in zip(out, requests):
            c.id = r.id
        return out

    def stream(self, request: CompletionRequest | ChatRequest) -> Iterator[StreamDelta]:
        events: queue.Queue = queue.Queue()
        make = self._chat_seq if isinstance(request, ChatRequest) else self._completion_seq
        seq = make(request, emit=events.put, stream=True)
        self.core.submit([seq])
        try:
            while True:
                event = events.get()
                if event.kind == "delta":
                    if event.text:
                        yield StreamDelta(text=event.text)
                    continue
                final = self.completion(seq)
                final.id = request.id
                yield StreamDelta(text=event.text, final=final)
                return
        finally:
            seq.cancel()  # a no-op once finished; frees the row when the caller stops reading

    def close(self) -> None:
        self.core.close()


def _has_media(messages: list[dict]) -> bool:
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") not in (None, "text"):
                    return True
    return False

"""The llama.cpp backend: a `.gguf` file run in this process by llama.cpp (llama-cpp-python), behind the Engine
interface, with sealion's own conversation layer on top.

llama.cpp does the forward passes only. Rendering (system prompt, thinking switch, tools) goes through
`sealion.engine.prompting` / `sealion.chat`, token choice through `sealion.engine.sampling` (greedy is a plain
argmax), stop strings and streaming through `sealion.engine.detok`, and replies are parsed by `sealion.chat.parse`
— so a GGUF answers exactly as the same conversation would through `LocalEngine`, at llama.cpp's speed.

Weight repacking (llama.cpp's "extra buffer types") is off by default: with it on, llama-cpp-python 0.3.36's CPU
build crashes (SIGSEGV in llama_decode) on quantised files on this project's AVX2 machines; `repack=True` turns it
back on where it works.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import ModelLoadError, SealionError
from . import prompting
from .base import Engine, ProgressFn
from .detok import TextTracker
from .types import ChatRequest, Completion, CompletionRequest, SamplingParams, StreamDelta


def _llama_cpp():
    try:
        import llama_cpp
        import llama_cpp._internals  # noqa: F401
    except ImportError:
        raise SealionError("the llama.cpp backend needs llama-cpp-python (pip install 'llama-cpp-python>=0.3.36')") \
            from None
    return llama_cpp


class LlamaCppModel:
    """One GGUF file loaded by llama.cpp with one context: tokenize, detokenize, logits, next-token steps."""

    def __init__(self, path: str | os.PathLike, *, n_ctx: int = 4096, n_threads: int | None = None,
                 n_batch: int = 512, repack: bool = False, verbose: bool = False):
        llama_cpp = _llama_cpp()
        from llama_cpp import _internals, _logger

        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"{path}: GGUF file does not exist")
        _logger.set_verbose(verbose)
        mp = llama_cpp.llama_model_default_params()
        mp.use_extra_bufts = repack
        try:
            self._model = _internals.LlamaModel(path_model=str(path), params=mp, verbose=verbose)
        except ValueError as e:
            raise ModelLoadError(f"{path}: llama.cpp cannot load it ({e})") from None
        threads = n_threads or max(1, os.cpu_count() or 1)
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = min(n_ctx, self._model.n_ctx_train()) if n_ctx else self._model.n_ctx_train()
        cp.n_batch = cp.n_ubatch = n_batch
        cp.n_threads = cp.n_threads_batch = threads
        cp.no_perf = True
        try:
            self._ctx = _internals.LlamaContext(model=self._model, params=cp, verbose=verbose)
        except ValueError as e:
            raise ModelLoadError(f"{path}: llama.cpp cannot create a context ({e})") from None
        self._batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=verbose)
        self.path = path
        self.n_ctx = self._ctx.n_ctx()
        self.n_batch = n_batch
        self.n_vocab = self._model.n_vocab()
        self.metadata = self._model.metadata()
        self._pos = 0
        self._llama_cpp = llama_cpp

    # ---- vocabulary -------------------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        """Text -> ids; with `special`, control tokens written as text (`<start_of_turn>`, `<|turn>`) become their
        ids, else they stay text (what message content needs)."""
        return self._model.tokenize(text.encode("utf-8"), add_bos, special)

    def detokenize(self, ids: Sequence[int]) -> str:
        out = bytearray()
        buf = ctypes.create_string_buffer(256)
        for t in ids:
            n = self._llama_cpp.llama_token_to_piece(self._model.vocab, int(t), buf, 256, 0, True)
            out += buf.raw[:n]
        return out.decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        return self._model.token_get_text(token)

    def bos_id(self) -> int:
        return self._model.token_bos()

    def eog_ids(self) -> set[int]:
        """End-of-generation ids llama.cpp knows (eos, eot), as far as the vocabulary has them."""
        ids = {self._model.token_eos(), self._model.token_eot()}
        return {i for i in ids if i is not None and i >= 0}

    # ---- forward passes ---------------------------------------------------------------------------------------

    def reset(self) -> None:
        self._ctx.kv_cache_clear()
        self._pos = 0

    def feed(self, ids: Sequence[int], *, all_logits: bool = False):
        """Append ids to the sequence; returns the last position's logits (numpy, [vocab]) or, with
        `all_logits`, one row per fed id ([len(ids), vocab])."""
        import numpy as np

        if self._pos + len(ids) > self.n_ctx:
            raise SealionError(f"{self.path.name}: {self._pos + len(ids)} tokens do not fit the context of "
                               f"{self.n_ctx} tokens")
        rows = []
        for start in range(0, len(ids), self.n_batch):
            chunk = list(ids[start:start + self.n_batch])
            self._batch.set_batch(chunk, n_past=self._pos, logits_all=all_logits)
            self._ctx.decode(self._batch)
            self._pos += len(chunk)
            if all_logits:
                for i in range(len(chunk)):
                    rows.append(np.ctypeslib.as_array(self._ctx.get_logits_ith(i), shape=(self.n_vocab,)).copy())
        if all_logits:
            return np.stack(rows)
        return np.ctypeslib.as_array(self._ctx.get_logits_ith(-1), shape=(self.n_vocab,))

    def close(self) -> None:
        for part in ("_batch", "_ctx", "_model"):
            obj = getattr(self, part, None)
            if obj is not None:
                obj.close()
                setattr(self, part, None)


class GGUFTokenizer:
    """The parts of a Hugging Face tokenizer that `prompting`, `detok` and `chat` use, read from a GGUF vocabulary,
    so the one conversation layer serves both backends."""

    def __init__(self, model: LlamaCppModel):
        self._m = model
        self._size = model.n_vocab
        bos = model.bos_id()
        self.bos_token_id = bos if bos >= 0 else None
        self.bos_token = model.token_text(bos) if bos >= 0 else None
        eos = model._model.token_eos()
        self.eos_token_id = eos if eos >= 0 else None
        self.pad_token_id = 0
        template = model.metadata.get("tokenizer.chat_template")
        # the file's template is written in its own token names; the chat layer reads Gemma 4 names
        self.chat_template = prompting.to_gemma4_names(template, self._aliases()) if template else None

    def _aliases(self) -> dict[str, str]:
        from ..models.tokenizers import GEMMA4_SPECIAL_TOKENS

        if self._size < max(GEMMA4_SPECIAL_TOKENS):
            return {}
        return {g4: own for i, g4 in GEMMA4_SPECIAL_TOKENS.items() if (own := self._m.token_text(i)) != g4}

    def __len__(self) -> int:
        return self._size

    @property
    def all_special_tokens(self) -> list[str]:
        """The vocabulary's control tokens (what Hugging Face lists as special), read once from the token
        attributes: the renderer matches them in its structure and refuses them in message text."""
        if getattr(self, "_specials", None) is None:
            lib, model = self._m._llama_cpp, self._m._model
            flags = lib.LLAMA_TOKEN_ATTR_CONTROL | lib.LLAMA_TOKEN_ATTR_USER_DEFINED
            self._specials = [model.token_get_text(i) for i in range(self._size)
                              if model.token_get_attr(i) & flags]
        return self._specials

    def __call__(self, text, add_special_tokens: bool = False, split_special_tokens: bool = False):
        """Hugging Face's call shape: {"input_ids": ids} (a list of lists for a list of texts). The renderer passes
        message text with `split_special_tokens=True`, so control names typed in it stay text."""
        one = isinstance(text, str)
        ids = [self._m.tokenize(t, add_bos=add_special_tokens, special=not split_special_tokens)
               for t in ([text] if one else text)]
        return {"input_ids": ids[0] if one else ids}

    def convert_tokens_to_ids(self, token):
        if not isinstance(token, str):
            return [self.convert_tokens_to_ids(t) for t in token]
        ids = self._m.tokenize(token, add_bos=False, special=True)
        return ids[0] if len(ids) == 1 else None

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self._m.token_text(ids)
        return [self._m.token_text(int(i)) for i in ids]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._m.detokenize(ids)


class LlamaCppEngine(Engine):
    """`Engine` over a GGUF file run by llama.cpp. Requests run one after another (one llama.cpp context).

    Sampling defaults come from the file's `general.sampling.*` keys (sealion's export writes the checkpoint's
    generation_config there); without them decoding is greedy.
    """

    def __init__(self, model: str | os.PathLike, *, n_ctx: int = 4096, n_threads: int | None = None,
                 n_batch: int = 512, repack: bool = False, verbose: bool = False):
        self.runtime = LlamaCppModel(model, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, repack=repack,
                                     verbose=verbose)
        self.tokenizer = GGUFTokenizer(self.runtime)
        self.name = str(model)
        meta = self.runtime.metadata
        temp = float(meta.get("general.sampling.temp", 0) or 0)
        self.defaults = {
            "do_sample": temp > 0,
            "temperature": temp or 1.0,
            "top_k": int(meta.get("general.sampling.top_k", 0) or 0),
            "top_p": float(meta.get("general.sampling.top_p", 1.0) or 1.0),
        }
        self.eos_ids = self.runtime.eog_ids()
        self._lock = threading.Lock()

    # ---- one request ------------------------------------------------------------------------------------------

    def _prompt_ids(self, prompt: str) -> list[int]:
        bos = self.tokenizer.bos_token
        ids = self.runtime.tokenize(prompt, add_bos=not (bos and prompt.startswith(bos)))
        if not ids:
            raise SealionError("empty prompt")
        return ids

    def _run(self, ids: list[int], params: SamplingParams, stop_ids: set[int], tracker: TextTracker,
             generated: list[int], state: dict) -> Iterator[str]:
        """Generate into `generated` / `tracker`, yielding after each token; sets state["finish"]."""
        import numpy as np
        import torch

        from .sampling import draw_token, resolve

        sampling = resolve(params, self.defaults)
        if len(ids) >= self.runtime.n_ctx:
            raise SealionError(f"prompt has {len(ids)} tokens; the context is {self.runtime.n_ctx} tokens")
        budget = min(params.max_new_tokens, self.runtime.n_ctx - len(ids))
        self.runtime.reset()
        logits = self.runtime.feed(ids)
        state["finish"] = "length"
        for _ in range(budget):
            if sampling.greedy:
                token = int(np.argmax(logits))
            else:
                token = draw_token(torch.from_numpy(np.array(logits, dtype=np.float32)), sampling.temperature,
                                   sampling.top_k, sampling.top_p, sampling.generator)
            if token in stop_ids:
                state["finish"] = "stop"
                break
            generated.append(token)
            tracker.add(token)
            yield "token"
            if tracker.stopped_at is not None:
                state["finish"] = "stop"
                break
            if len(generated) < budget:
                logits = self.runtime.feed([token])

    def _prepare(self, request: CompletionRequest | ChatRequest):
        if isinstance(request, ChatRequest):
            if any(isinstance(m.get("content"), list) and any(isinstance(p, dict) and p.get("type") not in
                   (None, "text") for p in m["content"]) for m in request.messages):
                raise SealionError(f"{self.name}: the llama.cpp backend takes text only (no images, audio or video)")
            # the one renderer's ids: re-tokenizing its text would turn control names typed in messages into ids
            prompt = prompting.chat_prompt(self.tokenizer, request.messages, tools=request.tools,
                                           enable_thinking=request.enable_thinking)
            text, ids = prompt.text, prompt.ids
            stop = self.eos_ids | set(prompting.chat_stop_ids(self.tokenizer))
        else:
            text = None
            ids = list(request.prompt_ids) if request.prompt_ids is not None else self._prompt_ids(request.prompt)
            stop = set(self.eos_ids)
        stop |= set(request.params.stop_token_ids)
        return ids, text, stop

    def _completion(self, request, ids, prompt_text, tracker, generated, state) -> Completion:
        c = Completion(text=tracker.final_text, finish_reason=state["finish"], prompt_tokens=len(ids),
                       completion_tokens=len(generated), token_ids=list(generated), id=request.id)
        if isinstance(request, ChatRequest):
            reply = prompting.parse_reply(self.tokenizer, c.text, prompt_text)
            c.content, c.reasoning, c.tool_calls = reply["content"], reply["reasoning"], reply["tool_calls"]
            if c.tool_calls and c.finish_reason == "stop":
                c.finish_reason = "tool_calls"
        return c

    def _one(self, request) -> Completion:
        ids, prompt_text, stop = self._prepare(request)
        tracker, generated, state = TextTracker(self.tokenizer, request.params.stop), [], {}
        for _ in self._run(ids, request.params, stop, tracker, generated, state):
            pass
        return self._completion(request, ids, prompt_text, tracker, generated, state)

    # ---- the Engine interface ---------------------------------------------------------------------------------

    def _many(self, requests, progress) -> list[Completion]:
        out = []
        with self._lock:
            for r in requests:
                out.append(self._one(r))
                if progress:
                    progress(1)
        return out

    def complete(self, requests: Sequence[CompletionRequest], *, progress: ProgressFn | None = None) -> list[Completion]:
        return self._many(list(requests), progress)

    def chat(self, requests: Sequence[ChatRequest], *, progress: ProgressFn | None = None) -> list[Completion]:
        return self._many(list(requests), progress)

    def stream(self, request: CompletionRequest | ChatRequest) -> Iterator[StreamDelta]:
        ids, prompt_text, stop = self._prepare(request)
        tracker, generated, state = TextTracker(self.tokenizer, request.params.stop), [], {}
        with self._lock:
            for _ in self._run(ids, request.params, stop, tracker, generated, state):
                piece = tracker.delta()
                if piece:
                    yield StreamDelta(text=piece)
            final = self._completion(request, ids, prompt_text, tracker, generated, state)
        yield StreamDelta(text=tracker.delta(final=True), final=final)

    def close(self) -> None:
        self.runtime.close()


def open_llamacpp(ref, *, n_ctx: int = 4096, n_threads: int | None = None, repack: bool = False,
                  **engine_kwargs) -> LlamaCppEngine:
    """`open_engine(ref, backend="llama.cpp")`: `ref` must be a .gguf file. Flags meant for the transformers
    backend (dtype, batch sizes, device) do not apply and are ignored."""
    from ..errors import ConfigError

    path = Path(str(ref)).expanduser()
    if path.suffix != ".gguf":
        raise ConfigError(f"--backend llama.cpp: {ref} is not a .gguf file (export one with `sealion export`)")
    return LlamaCppEngine(path, n_ctx=n_ctx, n_threads=n_threads, repack=repack)

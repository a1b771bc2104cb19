"""LLM-as-judge calls with a persistent cache, retries and per-request failure records.

A `Judge` wraps any `sealion.engine` engine (an OpenAI-compatible endpoint through `HTTPEngine`, or an in-process
model through `LocalEngine`). Every verdict is cached in a JSONL file keyed by a hash of everything that decides it
(judge reference, messages - which contain the judged answer - and sampling settings), so a rerun re-judges exactly
the answers that changed. Failures (an engine error after retries, an exception, a timeout) come back as a
`JudgeReply` with `error` set; they are not cached, so a later rerun tries them again. Nothing here raises for a
failed call: the scorer decides how a failure counts.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..engine.types import ChatRequest, SamplingParams
from ..io import append_jsonl, read_jsonl


@dataclass
class JudgeCall:
    """One judge request: OpenAI-shaped messages (system + user)."""

    messages: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)  # caller's bookkeeping (item, turn, order ...)


@dataclass
class JudgeReply:
    text: str | None  # the judge's raw output; None when the call failed
    error: str | None = None
    cached: bool = False
    attempts: int = 0


def cache_key(judge_ref: str, messages: list[dict[str, str]], params: SamplingParams) -> str:
    blob = json.dumps({
        "judge": judge_ref, "messages": messages, "max_new_tokens": params.max_new_tokens,
        "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed,
    }, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """Append-only JSONL of {key, text}; the last line for a key wins; a torn last line is ignored."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._data: dict[str, str] = {}
        for row in read_jsonl(self.path):
            if isinstance(row, dict) and "key" in row and isinstance(row.get("text"), str):
                self._data[row["key"]] = row["text"]

    def get(self, key: str) -> str | None:
        return self._data.get(key)

    def put_many(self, rows: list[tuple[str, str]]) -> None:
        if not rows:
            return
        with self._lock:
            append_jsonl(self.path, [{"key": k, "text": t} for k, t in rows])
            for k, t in rows:
                self._data[k] = t

    def __len__(self) -> int:
        return len(self._data)


class Judge:
    """Runs judge calls through an engine, with a cache and retries.

    `engine` is anything with `chat(list[ChatRequest]) -> list[Completion]`. A completion with finish_reason
    "error" (HTTP failure after the engine's own retries, timeout) or an exception from `chat` is retried
    `retries` more times with exponential backoff, then reported as a failure for that call only.
    """

    def __init__(self, engine, *, ref: str, cache_path: str | Path | None = None, max_new_tokens: int = 1024,
                 temperature: float = 0.0, seed: int | None = None, retries: int = 2, backoff_s: float = 1.0,
                 batch_size: int = 64, progress: Callable[[int], None] | None = None):
        self.engine = engine
        self.ref = ref
        self.cache = JudgeCache(cache_path) if cache_path else None
        self.params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        self.retries = retries
        self.backoff_s = backoff_s
        self.batch_size = batch_size
        self.progress = progress

    def run(self, calls: Sequence[JudgeCall]) -> list[JudgeReply]:
        replies: list[JudgeReply | None] = [None] * len(calls)
        keys = [cache_key(self.ref, c.messages, self.params) for c in calls]
        todo: list[int] = []
        for i, k in enumerate(keys):
            hit = self.cache.get(k) if self.cache is not None else None
            if hit is not None:
                replies[i] = JudgeReply(text=hit, cached=True)
            else:
                todo.append(i)
        if self.progress and len(calls) - len(todo):
            self.progress(len(calls) - len(todo))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            got = self._run_with_retries([calls[i] for i in chunk])
            fresh = []
            for i, reply in zip(chunk, got):
                replies[i] = reply
                if reply.error is None and reply.text is not None:
                    fresh.append((keys[i], reply.text))
            if self.cache is not None:
                self.cache.put_many(fresh)  # saved per batch: an interrupted run resumes from here
            if self.progress:
                self.progress(len(chunk))
        return [r for r in replies if r is not None]

    def _run_with_retries(self, calls: list[JudgeCall]) -> list[JudgeReply]:
        out: list[JudgeReply | None] = [None] * len(calls)
        pending = list(range(len(calls)))
        last_error: dict[int, str] = {}
        for attempt in range(1, self.retries + 2):
            if not pending:
                break
            if attempt > 1:
                time.sleep(self.backoff_s * 2 ** (attempt - 2))
            results = self._chat([calls[i] for i in pending])
            still = []
            for j, i in enumerate(pending):
                c = results[j]
                if isinstance(c, Exception):
                    last_error[i] = f"{type(c).__name__}: {c}"
                    still.append(i)
                    continue
                if c.finish_reason == "error" or c.error:
                    last_error[i] = c.error or "engine error"
                    still.append(i)
                else:
                    text = c.content if c.content is not None else c.text
                    out[i] = JudgeReply(text=text or "", attempts=attempt)
            pending = still
        for i in pending:
            out[i] = JudgeReply(text=None, error=last_error.get(i, "failed"), attempts=self.retries + 1)
        return [r for r in out if r is not None]

    def _chat(self, calls: list[JudgeCall]) -> list:
        """Completions, or the exception for each call. When a batch raises (one prompt too long for an
        in-process judge, a dropped connection), the calls are tried one by one so one bad call fails alone."""
        reqs = [ChatRequest(messages=c.messages, params=self.params) for c in calls]
        try:
            return list(self.engine.chat(reqs))
        except KeyboardInterrupt:
            raise
        except Exception as e:
            if len(reqs) == 1:
                return [e]
        out: list = []
        for r in reqs:
            try:
                out.extend(self.engine.chat([r]))
            except KeyboardInterrupt:
                raise
            except Exception as e:
                out.append(e)
        return out

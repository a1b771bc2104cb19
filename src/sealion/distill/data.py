"""Instruction data -> token ids with a loss mask on assistant tokens only.

Rows come from JSONL, parquet (a file or a directory of them) or a Hugging Face hub dataset, in either shape:
* SEA-Instruct: a `conversations` column holding a list of {role, content, ...} dicts, or the same list as a
  JSON string or a Python-literal string (what the parquet files actually store); ShareGPT's from/value works too;
* OpenAI: a `messages` column; an optional `tools` column (list or JSON string) for tool-calling rows;
* already tokenised: `input_ids` with `completion_mask`, `labels` (-100 = not learned) or `prompt_length`.
The language comes from a `language` / `lang` column (else `prompt_primary_language`, else "und").

Rendering is the chat layer's one renderer (`sealion.chat.render_training`, the same ids the engine and the server
feed the model: the checkpoint's Gemma 4 template or the package's, control names mapped to this tokenizer's ids).
The assistant mask is found by rendering growing prefixes of the conversation: the ids between "prefix up to the
turn, with the generation prompt" and "prefix including the turn" are what the model writes for that turn (its
content, tool calls and end-of-turn token 106, not the role header). A turn whose rendering is rewritten later in
the conversation (templates drop earlier thoughts) is not trained on, and counted.

A bad row is skipped and reported as `file:row: reason`; the summary counts them.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name", "reasoning_content", "reasoning", "thinking",
                "tool_responses")
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "tool": "tool", "function": "tool",
                  "user": "user", "assistant": "assistant", "model": "assistant"}
LANG_COLUMNS = ("language", "lang", "prompt_primary_language")


@dataclass
class Example:
    """One tokenised conversation. target_mask[t] is True when token t is an assistant token to learn."""

    input_ids: np.ndarray  # int64 [n]
    target_mask: np.ndarray  # bool [n]; target_mask[0] is always False
    language: str = "und"
    source: str = ""

    @property
    def num_targets(self) -> int:
        return int(self.target_mask.sum())


@dataclass
class DataReport:
    rows: int = 0
    skipped: list[str] = field(default_factory=list)  # "file:row: reason"
    truncated: int = 0
    untrained_turns: int = 0
    languages: Counter = field(default_factory=Counter)  # examples per language
    tokens: Counter = field(default_factory=Counter)
    target_tokens: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "examples": sum(self.languages.values()),
            "skipped": len(self.skipped),
            "skipped_rows": self.skipped[:100],
            "truncated": self.truncated,
            "untrained_assistant_turns": self.untrained_turns,
            "per_language": {
                lang: {"examples": self.languages[lang], "tokens": self.tokens[lang],
                       "target_tokens": self.target_tokens[lang]}
                for lang in sorted(self.languages)
            },
        }


# ---------------------------------------------------------------------------------------------- reading rows


def _iter_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{i}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                yield where, ValueError(f"invalid JSON ({e.msg})")


def _iter_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield f"{path}:row {n}", row
            n += 1


def _iter_hub(ref: str, split: str, config: str | None) -> Iterator[tuple[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(ref, config, split=split)
    except Exception as e:  # offline, gated, missing: say which dataset
        raise DataError(f"{ref}: cannot load hub dataset ({type(e).__name__}: {e})") from None
    for i, row in enumerate(ds):
        yield f"{ref}[{split}]:row {i}", row


def iter_rows(spec: str, *, split: str = "train", config: str | None = None) -> Iterator[tuple[str, Any]]:
    """(where, row) pairs from a file, a directory of files, or a hub dataset id. A row may be an exception."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet"))
        if not files:
            raise DataError(f"{spec}: directory holds no .jsonl or .parquet files")
        for f in files:
            yield from iter_rows(str(f))
        return
    if path.exists():
        if path.suffix == ".parquet":
            yield from _iter_parquet(path)
        else:
            yield from _iter_jsonl(path)
        return
    if spec.startswith(("/", ".")) or spec.endswith((".jsonl", ".json", ".parquet")):
        raise DataError(f"{spec}: no such file")
    yield from _iter_hub(spec.removeprefix("hf:"), split, config)


def _parse_listish(value: Any, what: str) -> Any:
    if isinstance(value, str):
        text = value.strip()
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            try:
                return ast.literal_eval(text)  # SEA-Instruct stores Python-literal lists
            except (ValueError, SyntaxError):
                raise ValueError(f"{what}: neither JSON nor a Python literal") from None
    return value


def row_to_conversation(row: Any) -> tuple[list[dict], list[dict] | None, str]:
    """(messages, tools, language) from a row in SEA-Instruct or OpenAI shape. Raises ValueError."""
    if isinstance(row, Exception):
        raise ValueError(str(row))
    if not isinstance(row, dict):
        raise ValueError(f"row is a {type(row).__name__}, not an object")
    key = "conversations" if "conversations" in row else "messages" if "messages" in row else None
    if key is None:
        raise ValueError("no 'conversations' or 'messages' column")
    raw = _parse_listish(row[key], key)
    if hasattr(raw, "tolist"):
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ValueError(f"{key}: must be a non-empty list of messages")
    messages = []
    for j, m in enumerate(raw):
        if not isinstance(m, dict):
            raise ValueError(f"{key}[{j}]: not an object")
        if "role" not in m and "from" in m:  # ShareGPT
            role = SHAREGPT_ROLES.get(str(m["from"]).lower())
            m = {"role": role, "content": m.get("value")}
        msg = {k: m[k] for k in MESSAGE_KEYS if k in m and m[k] is not None}
        role = msg.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise ValueError(f"{key}[{j}].role: {role!r} is not system/user/assistant/tool")
        if "tool_calls" in msg:
            msg["tool_calls"] = _parse_listish(msg["tool_calls"], f"{key}[{j}].tool_calls")
        messages.append(msg)
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError(f"{key}: no assistant turn to learn from")
    tools = row.get("tools")
    if tools is not None:
        tools = _parse_listish(tools, "tools")
        if hasattr(tools, "tolist"):
            tools = tools.tolist()
        tools = list(tools) or None
    lang = next((str(row[c]) for c in LANG_COLUMNS if row.get(c)), "und")
    return messages, tools, lang


def pretokenized(row: dict, vocab_size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """A row that is already tokens: `input_ids` plus `completion_mask` (1 = learn), `labels` (-100 = skip) or
    `prompt_length` (everything after it is learned)."""
    ids = np.asarray(row["input_ids"], dtype=np.int64)
    if ids.ndim != 1 or len(ids) < 2:
        raise ValueError("input_ids: must be a list of at least 2 token ids")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"input_ids: ids must be in [0, {vocab_size})")
    if "completion_mask" in row:
        mask = np.asarray(row["completion_mask"], dtype=bool)
    elif "labels" in row:
        mask = np.asarray(row["labels"]) != -100
    elif "prompt_length" in row:
        mask = np.arange(len(ids)) >= int(row["prompt_length"])
    else:
        raise ValueError("input_ids rows need completion_mask, labels or prompt_length")
    if mask.shape != ids.shape:
        raise ValueError(f"mask length {mask.shape[0]} != input_ids length {ids.shape[0]}")
    mask = mask.copy()
    mask[0] = False
    lang = next((str(row[c]) for c in LANG_COLUMNS if row.get(c)), "und")
    return ids, mask, lang


# ---------------------------------------------------------------------------------------------- rendering


def render_conversation(tokenizer, messages: list[dict], tools=None) -> tuple[np.ndarray, np.ndarray, int]:
    """(ids, assistant mask, assistant turns left untrained) through the chat layer's one renderer
    (`sealion.chat.render_training`): the ids the engine would feed the model, with the turn-end id learned."""
    from ..chat import render_training

    out = render_training(tokenizer, messages, tools=tools)
    return np.asarray(out.ids, dtype=np.int64), np.asarray(out.mask, dtype=bool), out.untrained_turns


# ---------------------------------------------------------------------------------------------- loading


def load_examples(
    specs: Iterable[str],
    tokenizer,
    *,
    max_length: int = 2048,
    split: str = "train",
    config: str | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> tuple[list[Example], DataReport]:
    """Read, render and tokenise every row; bad rows are skipped and listed in the report."""
    report = DataReport()
    examples: list[Example] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="tokenising", unit="row")
    for spec in specs:
        for where, row in iter_rows(spec, split=split, config=config):
            if limit is not None and report.rows >= limit:
                break
            report.rows += 1
            if bar is not None:
                bar.update(1)
            try:
                if isinstance(row, dict) and "input_ids" in row:
                    ids, mask, lang = pretokenized(row, len(tokenizer))
                    untrained = 0
                else:
                    messages, tools, lang = row_to_conversation(row)
                    ids, mask, untrained = render_conversation(tokenizer, messages, tools)
            except (ValueError, TypeError, KeyError) as e:
                report.skipped.append(f"{where}: {e}")
                continue
            except Exception as e:  # a renderer's own error type (e.g. ChatFormatError) is still a bad row
                report.skipped.append(f"{where}: {type(e).__name__}: {e}")
                continue
            report.untrained_turns += untrained
            if len(ids) > max_length:
                ids, mask = ids[:max_length], mask[:max_length]
                report.truncated += 1
            if not mask.any():
                report.skipped.append(f"{where}: no assistant tokens within max_length={max_length}")
                continue
            ex = Example(ids, mask, lang, where)
            examples.append(ex)
            report.languages[lang] += 1
            report.tokens[lang] += len(ids)
            report.target_tokens[lang] += ex.num_targets
    if bar is not None:
        bar.close()
    return examples, report


def data_fingerprint(examples: Iterable[Example]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(np.asarray(ex.input_ids, dtype="<i8").tobytes())
        h.update(np.packbits(ex.target_mask).tobytes())
        h.update(ex.language.encode() + b"\0")
    return h.hexdigest()[:16]


_FINGERPRINTS: dict[int, tuple[object, str]] = {}


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the vocabulary and special tokens: two tokenizers with the same fingerprint encode alike."""
    cached = _FINGERPRINTS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    h = hashlib.sha256()
    vocab = tokenizer.get_vocab()
    for tok, idx in sorted(vocab.items(), key=lambda kv: kv[1]):
        h.update(f"{idx}\t{tok}\n".encode("utf-8", "surrogatepass"))
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        h.update(f"{name}={getattr(tokenizer, name, None)}\n".encode())
    _FINGERPRINTS[id(tokenizer)] = (tokenizer, h.hexdigest()[:16])
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- batching


def pack(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """First-fit-decreasing packing of example indices into rows of at most max_tokens tokens (deterministic)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = min(lengths[i], max_tokens)
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(max_tokens - n)
    for r in rows:
        r.sort()
    rows.sort(key=lambda r: r[0])
    return rows


@dataclass
class Batch:
    input_ids: Any  # LongTensor [B, L]
    position_ids: Any  # LongTensor [B, L]; restarts at 0 for every packed example (and for the padding)
    score_rows: Any  # LongTensor [n]: row of each scored position (row-major order)
    score_cols: Any  # LongTensor [n]: column of each scored position
    targets: Any  # LongTensor [n]: the token each scored position predicts
    languages: list[str]  # per scored position
    example_spans: list[tuple[int, int]]  # per example, its slice of the scored positions
    pad_id: int = 0


def collate(rows: list[list[Example]], *, pad_id: int = 0) -> Batch:
    """Concatenate each row's examples, pad rows to equal length, and list the scored positions.

    Position t of an example is scored when token t+1 is a target; within a row, positions never cross examples
    (position_ids restart, and transformers builds a block-diagonal causal mask from them).
    """
    import torch

    length = max(sum(len(ex.input_ids) for ex in row) for row in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), length), dtype=torch.long)
    r_idx, c_idx, targets, langs, spans = [], [], [], [], []
    for r, row in enumerate(rows):
        off = 0
        for ex in row:
            n = len(ex.input_ids)
            ids[r, off : off + n] = torch.as_tensor(ex.input_ids)
            pos[r, off : off + n] = torch.arange(n)
            t = np.nonzero(ex.target_mask[1:])[0]
            start = len(r_idx)
            r_idx.extend([r] * len(t))
            c_idx.extend((off + t).tolist())
            targets.extend(ex.input_ids[t + 1].tolist())
            langs.extend([ex.language] * len(t))
            spans.append((start, len(r_idx)))
            off += n
        if off < length:
            pos[r, off:] = torch.arange(length - off)
    return Batch(ids, pos, torch.tensor(r_idx, dtype=torch.long), torch.tensor(c_idx, dtype=torch.long),
                 torch.tensor(targets, dtype=torch.long), langs, spans, pad_id)


def batches_of(examples: list[Example], *, batch_size: int, max_tokens: int, pack_rows: bool) -> list[list[list[int]]]:
    """Group example indices into batches of rows: packed (rows of up to max_tokens) or one example per row."""
    if pack_rows:
        rows = pack([len(e.input_ids) for e in examples], max_tokens)
    else:
        rows = [[i] for i in range(len(examples))]
    return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]

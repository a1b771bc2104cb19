"""A capture on disk: `manifest.json` plus `shard-00000.npz`, ... (plain numpy zip archives).

Each shard holds a run of consecutive examples:
  input_ids   uint32 [total tokens]    the examples' tokens, concatenated
  seq_lens    int32  [examples]
  target_mask uint8  packbits of the concatenated per-token target masks
  languages   str    [examples]
  topk        uint8  one codec block (see codec.py) with a row for every scored position, in example order
                     (position t of an example is scored when token t+1 is a target)
A shard file appears in one rename, so a shard that exists is complete.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io as sio
from ..errors import DataError
from .codec import CodecConfig, decode, encode
from .data import Example

FORMAT = "sealion-capture/1"
MANIFEST = "manifest.json"


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.npz"


@dataclass
class CapturedExample:
    example: Example
    ids: np.ndarray  # int64 [n_scored, k]
    logprobs: np.ndarray  # float32 [n_scored, k]
    tail: np.ndarray  # float32 [n_scored]


def write_shard(path: Path, examples: list[Example], ids, logprobs, tail, codec: CodecConfig) -> int:
    """Write one shard atomically; returns its size in bytes."""
    tokens = np.concatenate([e.input_ids for e in examples]).astype(np.uint32)
    masks = np.concatenate([e.target_mask for e in examples])
    buf = io.BytesIO()
    np.savez(
        buf,
        input_ids=tokens,
        seq_lens=np.array([len(e.input_ids) for e in examples], dtype=np.int32),
        target_mask=np.packbits(masks),
        languages=np.array([e.language for e in examples]),
        topk=np.frombuffer(encode(ids, logprobs, tail, codec), dtype=np.uint8),
    )
    data = buf.getvalue()
    sio.write_bytes(path, data)
    return len(data)


def read_shard(path: Path, codec: CodecConfig) -> list[CapturedExample]:
    try:
        with np.load(path, allow_pickle=False) as z:
            tokens = z["input_ids"].astype(np.int64)
            lens = z["seq_lens"]
            masks = np.unpackbits(z["target_mask"])[: len(tokens)].astype(bool)
            langs = [str(s) for s in z["languages"]]
            ids, lps, tail = decode(z["topk"].tobytes(), codec)
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: unreadable capture shard ({e})") from None
    out, tok_off, row_off = [], 0, 0
    for n, lang in zip(lens.tolist(), langs):
        ex = Example(tokens[tok_off : tok_off + n], masks[tok_off : tok_off + n], lang, f"{path.name}")
        m = int(ex.target_mask[1:].sum())
        out.append(CapturedExample(ex, ids[row_off : row_off + m], lps[row_off : row_off + m], tail[row_off : row_off + m]))
        tok_off += n
        row_off += m
    if row_off != len(ids):
        raise DataError(f"{path}: {len(ids)} top-k rows for {row_off} scored positions")
    return out


class Capture:
    """Read access to a finished capture directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        mf = self.path / MANIFEST
        if not mf.exists():
            raise DataError(f"{self.path}: not a capture (no {MANIFEST})")
        self.manifest = json.loads(mf.read_text())
        if self.manifest.get("format") != FORMAT:
            raise DataError(f"{mf}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        if not self.manifest.get("complete"):
            raise DataError(f"{self.path}: capture is incomplete; rerun `sealion distill capture` to finish it")
        self.codec = CodecConfig.from_dict(self.manifest["codec"])

    @property
    def k(self) -> int:
        return int(self.manifest["k"])

    @property
    def temperature(self) -> float:
        return float(self.manifest["temperature"])

    @property
    def tokenizer_fingerprint(self) -> str:
        return self.manifest["tokenizer_fingerprint"]

    def examples(self) -> list[CapturedExample]:
        out: list[CapturedExample] = []
        for shard in self.manifest["shards"]:
            out.extend(read_shard(self.path / shard["file"], self.codec))
        return out

"""A capture on disk: `manifest.json` plus `shard-00000.npz`, ... (plain numpy zip archives).

Each shard holds a run of consecutive examples:
  input_ids   uint32 [total tokens]    the examples' tokens, concatenated
  seq_lens    int32  [examples]
  target_mask uint8  packbits of the concatenated per-token target masks
  languages   str    [examples]
  topk        uint8  one codec block (see codec.py) with a row for every scored position, in example order
                     (position t of an example is scored when token t+1 is a target)
  tails       float32 [m, positions]  (optional) the log-mass outside the top-k at each of the manifest's
                     `tail_temperatures` other than the capture temperature (whose tail is in the codec block)
A shard file appears in one rename, so a shard that exists is complete.

Reading is lazy: `shard_meta` reads only the per-example lengths and target counts (for planning batches), and
`check_shard` only the zip directory and the codec header, so a capture is validated before any model loads.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass, field
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
    tail: np.ndarray  # float32 [n_scored], at the capture temperature
    tails: dict[float, np.ndarray] = field(default_factory=dict)  # temperature -> tail log-mass [n_scored]

    def tail_at(self, temperature: float) -> np.ndarray:
        return self.tails[float(temperature)]


@dataclass
class ShardMeta:
    """What batch planning needs from a shard, without decoding its teacher rows."""

    lengths: np.ndarray  # int64 [examples] tokens per example
    scored: np.ndarray  # int64 [examples] scored positions per example


def write_shard(path: Path, examples: list[Example], ids, logprobs, tail, codec: CodecConfig,
                extra_tails: np.ndarray | None = None) -> int:
    """Write one shard atomically; returns its size in bytes. extra_tails: [m, positions] (see module doc)."""
    tokens = np.concatenate([e.input_ids for e in examples]).astype(np.uint32)
    masks = np.concatenate([e.target_mask for e in examples])
    arrays = {}
    if extra_tails is not None and len(extra_tails):
        arrays["tails"] = np.asarray(extra_tails, dtype=np.float32).reshape(len(extra_tails), len(ids))
    buf = io.BytesIO()
    np.savez(
        buf,
        input_ids=tokens,
        seq_lens=np.array([len(e.input_ids) for e in examples], dtype=np.int32),
        target_mask=np.packbits(masks),
        languages=np.array([e.language for e in examples]),
        topk=np.frombuffer(encode(ids, logprobs, tail, codec), dtype=np.uint8),
        **arrays,
    )
    data = buf.getvalue()
    sio.write_bytes(path, data)
    return len(data)


def read_shard(path: Path, codec: CodecConfig, temperature: float = 1.0,
               tail_temperatures: tuple[float, ...] = ()) -> list[CapturedExample]:
    """Decode a shard. `temperature` is the capture's; `tail_temperatures` the others stored in `tails`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            tokens = z["input_ids"].astype(np.int64)
            lens = z["seq_lens"]
            masks = np.unpackbits(z["target_mask"])[: len(tokens)].astype(bool)
            langs = [str(s) for s in z["languages"]]
            ids, lps, tail = decode(z["topk"].tobytes(), codec)
            extra = z["tails"] if tail_temperatures else np.zeros((0, len(ids)), np.float32)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: unreadable capture shard ({e})") from None
    if extra.shape != (len(tail_temperatures), len(ids)):
        raise DataError(f"{path}: tails has shape {extra.shape}, expected {(len(tail_temperatures), len(ids))}")
    out, tok_off, row_off = [], 0, 0
    for n, lang in zip(lens.tolist(), langs):
        ex = Example(tokens[tok_off : tok_off + n], masks[tok_off : tok_off + n], lang, f"{path.name}")
        m = int(ex.target_mask[1:].sum())
        sl = slice(row_off, row_off + m)
        tails = {float(temperature): tail[sl], **{float(t): extra[j, sl] for j, t in enumerate(tail_temperatures)}}
        out.append(CapturedExample(ex, ids[sl], lps[sl], tail[sl], tails))
        tok_off += n
        row_off += m
    if row_off != len(ids):
        raise DataError(f"{path}: {len(ids)} top-k rows for {row_off} scored positions")
    return out


def shard_meta(path: Path) -> ShardMeta:
    """Per-example lengths and scored-position counts, read from the two small members only."""
    try:
        with np.load(path, allow_pickle=False) as z:
            lens = z["seq_lens"].astype(np.int64)
            masks = np.unpackbits(z["target_mask"])[: int(lens.sum())].astype(bool)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: unreadable capture shard ({e})") from None
    if len(masks) != int(lens.sum()):
        raise DataError(f"{path}: target_mask covers {len(masks)} tokens, seq_lens {int(lens.sum())}")
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    cum = np.concatenate([[0], np.cumsum(masks)])
    # position t of an example is scored when token t+1 is a target: the example's targets after its first token
    scored = cum[starts + lens] - cum[np.minimum(starts + 1, starts + lens)]
    return ShardMeta(lens, scored.astype(np.int64))


_MEMBERS = ("input_ids", "seq_lens", "target_mask", "languages", "topk")


def check_shard(path: Path, *, examples: int, k: int, extra_tails: int) -> None:
    """Cheap structural check (zip directory, members, codec header); raises DataError naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: capture shard missing")
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n.removesuffix(".npy") for n in zf.namelist()}
            missing = [m for m in _MEMBERS if m not in names] + (["tails"] if extra_tails and "tails" not in names
                                                                 else [])
            if missing:
                raise DataError(f"{path}: not a capture shard (no {', '.join(missing)})")
            with zf.open("topk.npy") as f:
                major, _ = np.lib.format.read_magic(f)
                (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(f)
                head = f.read(17)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: unreadable capture shard ({e})") from None
    if len(head) < 17 or head[:4] != b"SLC1":
        raise DataError(f"{path}: topk is not an slc1 block")
    _, kk, _, _ = struct.unpack("<IIIB", head[4:17])
    if kk != k and examples:
        raise DataError(f"{path}: top-k block has k={kk}, the manifest says k={k}")


class Capture:
    """Read access to a finished capture directory. Opening it checks the manifest and every shard's structure
    (cheaply: no teacher rows are decoded), so bad input fails before any model is loaded."""

    def __init__(self, path: str | Path, *, check_shards: bool = True):
        self.path = Path(path)
        mf = self.path / MANIFEST
        if not mf.exists():
            raise DataError(f"{self.path}: not a capture (no {MANIFEST})")
        try:
            self.manifest = json.loads(mf.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{mf}: invalid JSON ({getattr(e, 'msg', e)})") from None
        if not isinstance(self.manifest, dict):
            raise DataError(f"{mf}: expected a JSON object")
        if self.manifest.get("format") != FORMAT:
            raise DataError(f"{mf}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        if not self.manifest.get("complete"):
            raise DataError(f"{self.path}: capture is incomplete; rerun `sealion distill capture` to finish it")
        try:
            self.codec = CodecConfig.from_dict(self.manifest["codec"])
            int(self.manifest["k"]), float(self.manifest["temperature"]), str(self.manifest["tokenizer_fingerprint"])
            self.shards = [(str(s["file"]), int(s["examples"])) for s in self.manifest["shards"]]
            temps = [float(t) for t in self.manifest.get("tail_temperatures", [self.manifest["temperature"]])]
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{mf}: missing or malformed field ({type(e).__name__}: {e})") from None
        for name, _ in self.shards:
            if Path(name).name != name:
                raise DataError(f"{mf}: shard file {name!r} is not a plain file name")
        self.tail_temperatures = tuple(sorted(set(temps) | {self.temperature}))
        self.extra_temperatures = tuple(t for t in temps if t != self.temperature)
        if check_shards:
            for name, n in self.shards:
                check_shard(self.path / name, examples=n, k=self.k, extra_tails=len(self.extra_temperatures))

    @property
    def k(self) -> int:
        return int(self.manifest["k"])

    @property
    def temperature(self) -> float:
        return float(self.manifest["temperature"])

    @property
    def tokenizer_fingerprint(self) -> str:
        return self.manifest["tokenizer_fingerprint"]

    def read(self, i: int) -> list[CapturedExample]:
        """Decode shard i."""
        path = self.path / self.shards[i][0]
        out = read_shard(path, self.codec, self.temperature, self.extra_temperatures)
        if len(out) != self.shards[i][1]:
            raise DataError(f"{path}: {len(out)} examples, the manifest says {self.shards[i][1]}")
        return out

    def meta(self, i: int) -> ShardMeta:
        path = self.path / self.shards[i][0]
        m = shard_meta(path)
        if len(m.lengths) != self.shards[i][1]:
            raise DataError(f"{path}: {len(m.lengths)} examples, the manifest says {self.shards[i][1]}")
        return m

    def examples(self) -> list[CapturedExample]:
        """Every example, decoded (small captures and tests; training streams shard by shard instead)."""
        out: list[CapturedExample] = []
        for i in range(len(self.shards)):
            out.extend(self.read(i))
        return out

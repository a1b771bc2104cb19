"""Compact storage for a teacher's sparse distribution: per position, the top-k token ids, their
log-probabilities and the log of the probability mass left outside them.

Layout of one encoded block (N positions, k entries each), all integers little-endian:

* log-probabilities on a uniform grid of `step` nats: Q = round(-logprob / step), which is monotone
  non-decreasing along the (probability-sorted) row, so each row is stored as its first value followed by
  the row's deltas, which are mostly 0-3 and compress to a few bits;
* the tail mass log(1 - sum p_topk) on the same grid;
* token ids replaced by their rank in a per-block frequency dictionary (frequent tokens, which turn up in the
  top-k of most positions, get small numbers), split into byte planes so the high planes are almost all zero;
* every plane is written column-major (rank j of every position together, where statistics are alike) and the
  whole thing goes through a general-purpose compressor (lzma by default, zlib for speed).

The grid error is at most step/2 nats per log-probability, with no accumulation along the row (the deltas are
between grid indices, not between rounded values). DistillKit stores 18-bit ids plus a polynomial fit of the
log-probabilities; see docs/benchmarks/distill.md for bytes per token and fidelity side by side.
"""

from __future__ import annotations

import lzma
import struct
import zlib
from dataclasses import dataclass

import numpy as np

_MAGIC = b"SLC1"
_QMAX = 65535
COMPRESSORS = ("lzma", "zlib", "none")


@dataclass(frozen=True)
class CodecConfig:
    """How logprobs are quantised and blocks compressed. Travels with the data in the capture manifest."""

    step: float = 1.0 / 64  # grid spacing in nats; max error step/2
    compressor: str = "lzma"

    def __post_init__(self):
        if not (0 < self.step <= 1):
            raise ValueError(f"codec step must be in (0, 1] nats, got {self.step}")
        if self.compressor not in COMPRESSORS:
            raise ValueError(f"codec compressor must be one of {COMPRESSORS}, got {self.compressor!r}")

    def to_dict(self) -> dict:
        return {"name": "slc1", "step": self.step, "compressor": self.compressor}

    @classmethod
    def from_dict(cls, d: dict) -> "CodecConfig":
        if d.get("name", "slc1") != "slc1":
            raise ValueError(f"unknown codec {d.get('name')!r}")
        return cls(step=float(d["step"]), compressor=str(d["compressor"]))


def _compress(data: bytes, how: str) -> bytes:
    if how == "lzma":
        return lzma.compress(data, preset=6)
    if how == "zlib":
        return zlib.compress(data, 6)
    return data


def _decompress(data: bytes, how: str) -> bytes:
    if how == "lzma":
        return lzma.decompress(data)
    if how == "zlib":
        return zlib.decompress(data)
    return data


def _byte_planes(a: np.ndarray, nbytes: int) -> bytes:
    """Column-major byte planes of an unsigned integer matrix: all low bytes first, then the next, ..."""
    a = np.ascontiguousarray(a.T).astype("<u4", copy=False)
    raw = a.view(np.uint8).reshape(-1, 4)
    return b"".join(raw[:, b].tobytes() for b in range(nbytes))


def _from_planes(buf: memoryview, shape_t: tuple[int, int], nbytes: int) -> np.ndarray:
    n = shape_t[0] * shape_t[1]
    out = np.zeros(n, dtype=np.uint32)
    for b in range(nbytes):
        plane = np.frombuffer(buf[b * n : (b + 1) * n], dtype=np.uint8)
        out |= plane.astype(np.uint32) << (8 * b)
    return out.reshape(shape_t).T


def encode(ids: np.ndarray, logprobs: np.ndarray, tail_logmass: np.ndarray, cfg: CodecConfig = CodecConfig()) -> bytes:
    """Encode N rows of k (id, logprob) pairs sorted by logprob descending, plus each row's tail log-mass."""
    ids = np.asarray(ids)
    lp = np.asarray(logprobs, dtype=np.float64)
    n, k = lp.shape if lp.ndim == 2 else (0, 0)
    if ids.shape != (n, k) or np.asarray(tail_logmass).shape != (n,):
        raise ValueError(f"shapes disagree: ids {ids.shape}, logprobs {lp.shape}, tail {np.shape(tail_logmass)}")
    if n == 0:
        return _MAGIC + struct.pack("<IIIB", 0, k, 0, 0)
    q = np.clip(np.rint(-np.nan_to_num(lp, neginf=-1e9) / cfg.step), 0, _QMAX)
    q = np.maximum.accumulate(q, axis=1).astype(np.uint32)  # guard against unsorted input
    dq = np.diff(q, axis=1, prepend=0).astype(np.uint32)
    tail = np.asarray(tail_logmass, dtype=np.float64)
    qt = np.clip(np.rint(-np.nan_to_num(tail, neginf=-1e9) / cfg.step), 0, _QMAX).astype(np.uint32)

    # frequency dictionary: rank 0 = the id most often present in this block
    uniq, inverse, counts = np.unique(ids.ravel(), return_inverse=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(len(order))
    ranks = rank_of[inverse].reshape(n, k).astype(np.uint32)
    dictionary = uniq[order].astype("<u4")
    id_bytes = 1 if len(uniq) <= 256 else 2 if len(uniq) <= 65536 else 3

    body = b"".join(
        [
            dictionary.tobytes(),
            _byte_planes(ranks, id_bytes),
            _byte_planes(dq, 2),
            _byte_planes(qt[:, None], 2),
        ]
    )
    header = _MAGIC + struct.pack("<IIIB", n, k, len(uniq), id_bytes)
    return header + _compress(body, cfg.compressor)


def decode(blob: bytes, cfg: CodecConfig = CodecConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of `encode`: (ids int64 [N,k], logprobs float32 [N,k], tail_logmass float32 [N])."""
    if blob[:4] != _MAGIC:
        raise ValueError("not an slc1 block (bad magic)")
    n, k, n_uniq, id_bytes = struct.unpack("<IIIB", blob[4:17])
    if n == 0:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32), np.zeros((0,), np.float32)
    body = memoryview(_decompress(blob[17:], cfg.compressor))
    off = 0
    dictionary = np.frombuffer(body[off : off + 4 * n_uniq], dtype="<u4").astype(np.int64)
    off += 4 * n_uniq
    ranks = _from_planes(body[off : off + id_bytes * n * k], (k, n), id_bytes)
    off += id_bytes * n * k
    dq = _from_planes(body[off : off + 2 * n * k], (k, n), 2)
    off += 2 * n * k
    qt = _from_planes(body[off : off + 2 * n], (1, n), 2)[:, 0]
    ids = dictionary[ranks]
    q = np.cumsum(dq.astype(np.int64), axis=1)
    logprobs = (-q * cfg.step).astype(np.float32)
    tail = (-qt.astype(np.float64) * cfg.step).astype(np.float32)
    tail[qt == _QMAX] = -np.inf  # nothing (measurable) left outside the top-k
    return ids, logprobs, tail


def tail_logmass(logprobs_topk: np.ndarray) -> np.ndarray:
    """log(1 - sum(exp(topk))) computed stably; -inf when the top-k hold all the mass."""
    lp = np.asarray(logprobs_topk, dtype=np.float64)
    m = np.logaddexp.reduce(lp, axis=-1)
    with np.errstate(divide="ignore"):
        return np.where(m >= 0, -np.inf, np.log(-np.expm1(np.minimum(m, 0))))


def fidelity_kl(
    dense_logprobs: np.ndarray, ids: np.ndarray, stored_logprobs: np.ndarray, stored_tail: np.ndarray | None = None
) -> np.ndarray:
    """Per-row KL(stored || teacher) in nats.

    Without a tail: the stored top-k renormalised, against the teacher's full distribution.
    With a tail: the (k+1)-bucket distribution (top-k + remaining mass), against the teacher's same buckets.
    """
    dense = np.asarray(dense_logprobs, dtype=np.float64)
    s = np.asarray(stored_logprobs, dtype=np.float64)
    t = np.take_along_axis(dense, np.asarray(ids), axis=-1)
    if stored_tail is None:
        s = s - np.logaddexp.reduce(s, axis=-1, keepdims=True)
        return np.sum(np.exp(s) * (s - t), axis=-1)
    tail_s = np.asarray(stored_tail, dtype=np.float64)
    tail_t = tail_logmass(t)
    s_all = np.concatenate([s, tail_s[:, None]], axis=1)
    s_all = s_all - np.logaddexp.reduce(s_all, axis=-1, keepdims=True)
    t_all = np.concatenate([t, tail_t[:, None]], axis=1)
    p = np.exp(s_all)
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0, p * (s_all - t_all), 0.0)
    return terms.sum(axis=-1)

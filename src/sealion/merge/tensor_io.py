"""Safetensors read and written a tensor (or a block of rows) at a time.

Reads use plain positioned file reads into fresh buffers rather than mmap, so pages of the input checkpoints never
count toward this process's resident memory; the peak is what the merge itself holds. Writes stream: a shard's
header is computed from the plan before any data, then each tensor's bytes are appended in order.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelLoadError

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
INDEX_NAME = "model.safetensors.index.json"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int  # absolute byte offset of the data in `file`
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def row_bytes(self) -> int:
        return self.nbytes // self.rows if self.rows else 0


def read_header(path: Path) -> tuple[dict, int]:
    """(header dict, byte offset where the data starts)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ModelLoadError(f"{path}: not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw)
        if n > 100_000_000:
            raise ModelLoadError(f"{path}: not a safetensors file (header size {n})")
        header = json.loads(f.read(n))
    return header, 8 + n


def shard_tensors(path: Path) -> dict[str, TensorInfo]:
    header, start = read_header(path)
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in DTYPES:
            raise ModelLoadError(f"{path}: tensor {name} has unsupported dtype {meta['dtype']}")
        b, e = meta["data_offsets"]
        out[name] = TensorInfo(name, path, DTYPES[meta["dtype"]], tuple(meta["shape"]), start + b, e - b)
    return out


class CheckpointReader:
    """All tensors of a (sharded) safetensors checkpoint directory, read on demand."""

    def __init__(self, model_dir: str | os.PathLike):
        self.dir = Path(model_dir)
        index = self.dir / INDEX_NAME
        single = self.dir / "model.safetensors"
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = sorted(set(weight_map.values()))
        elif single.exists():
            files = ["model.safetensors"]
        else:
            found = sorted(p.name for p in self.dir.glob("*.safetensors"))
            if not found:
                bins = list(self.dir.glob("*.bin"))
                hint = " (only PyTorch .bin files: convert to safetensors first)" if bins else ""
                raise ModelLoadError(f"{self.dir}: no safetensors weights found{hint}")
            files = found
        self.tensors: dict[str, TensorInfo] = {}
        for fname in files:
            path = self.dir / fname
            if not path.exists():
                raise ModelLoadError(f"{index}: shard {fname} is missing")
            self.tensors.update(shard_tensors(path))
        self._handles: dict[Path, object] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def names(self) -> list[str]:
        return list(self.tensors)

    def _handle(self, path: Path):
        h = self._handles.get(path)
        if h is None:
            if len(self._handles) >= 4:  # keep few descriptors open
                self.close()
            h = open(path, "rb", buffering=0)
            self._handles[path] = h
        return h

    def read(self, name: str, row_start: int = 0, row_end: int | None = None) -> torch.Tensor:
        """Rows [row_start, row_end) of a tensor (the whole tensor by default), in its stored dtype."""
        info = self.tensors[name]
        rows = info.rows
        row_end = rows if row_end is None else row_end
        nbytes = (row_end - row_start) * info.row_bytes
        buf = torch.empty(nbytes, dtype=torch.uint8)
        f = self._handle(info.file)
        f.seek(info.offset + row_start * info.row_bytes)
        view = memoryview(buf.numpy())
        got = 0
        while got < nbytes:
            n = f.readinto(view[got:])
            if not n:
                raise ModelLoadError(f"{info.file}: truncated while reading {name}")
            got += n
        shape = (row_end - row_start, *info.shape[1:]) if info.shape else ()
        return buf.view(info.dtype).reshape(shape)

    def close(self) -> None:
        for h in self._handles.values():
            h.close()
        self._handles.clear()


def shard_header(entries: list[tuple[str, torch.dtype, tuple[int, ...]]], metadata: dict | None = None) -> bytes:
    """The header bytes (length prefix included) of a shard holding `entries` in this order."""
    header: dict = {"__metadata__": {"format": "pt", **(metadata or {})}}
    pos = 0
    for name, dtype, shape in entries:
        n = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [pos, pos + n]}
        pos += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # align the data start to 8 bytes, as safetensors does
    return struct.pack("<Q", len(raw)) + raw


class ShardWriter:
    """Writes one shard whose layout is fixed up front; `write` must follow the entry order, in row blocks."""

    def __init__(self, path: Path, entries: list[tuple[str, torch.dtype, tuple[int, ...]]], *, durable: bool = True):
        self.path = path
        self.durable = durable  # fsync on finish (a merge's shards); scratch files may skip it
        self.entries = entries
        self.f = open(path, "wb")
        self.f.write(shard_header(entries))
        self._i = 0
        self._left = self._size(0) if entries else 0

    def _size(self, i: int) -> int:
        _, dtype, shape = self.entries[i]
        return math.prod(shape) * torch.empty((), dtype=dtype).element_size()

    def write(self, name: str, block: torch.Tensor) -> None:
        while self._left == 0 and self._i < len(self.entries) - 1:  # empty tensors need no write
            self._i += 1
            self._left = self._size(self._i)
        exp_name, dtype, _ = self.entries[self._i]
        if name != exp_name or block.dtype != dtype:
            raise RuntimeError(f"shard writer: got {name}/{block.dtype}, expected {exp_name}/{dtype}")
        data = block.contiguous().reshape(-1).view(torch.uint8).numpy()
        if data.nbytes > self._left:
            raise RuntimeError(f"shard writer: {name} overflows its planned size")
        self.f.write(memoryview(data))
        self._left -= data.nbytes
        while self._left == 0 and self._i < len(self.entries) - 1:
            self._i += 1
            self._left = self._size(self._i)

    def finish(self) -> None:
        while self._left == 0 and self._i < len(self.entries) - 1:
            self._i += 1
            self._left = self._size(self._i)
        if self._left != 0 or self._i != len(self.entries) - 1:
            raise RuntimeError(f"shard writer: {self.path.name} incomplete")
        self.f.flush()
        if self.durable:
            os.fsync(self.f.fileno())
        self.f.close()

    def abort(self) -> None:
        self.f.close()

"""Cheap checks on a checkpoint directory before transformers touches it, so errors are one clear line."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ..errors import ModelLoadError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def check_safetensors_file(path: Path) -> None:
    """Validate a safetensors header and that the file holds every byte the header promises."""
    size = path.stat().st_size
    if size < 8:
        raise ModelLoadError(f"{path}: truncated safetensors file ({size} bytes)")
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > size - 8 or header_len > 100_000_000:
            raise ModelLoadError(f"{path}: corrupt safetensors header (claims {header_len} bytes, file has {size})")
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelLoadError(f"{path}: corrupt safetensors header (not valid JSON)") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end != size:
        raise ModelLoadError(
            f"{path}: truncated or corrupt safetensors file (expected {8 + header_len + end} bytes, found {size})"
        )


def weight_files(path: Path, *, allow_pickle: bool) -> list[Path]:
    """The checkpoint's weight files, safetensors only unless the user opted into pickle."""
    safetensors = sorted(path.glob("*.safetensors"))
    if safetensors:
        index = path / "model.safetensors.index.json"
        if index.exists():
            try:
                names = set(json.loads(index.read_text())["weight_map"].values())
            except (json.JSONDecodeError, KeyError):
                raise ModelLoadError(f"{index}: corrupt safetensors index") from None
            missing = sorted(n for n in names if not (path / n).exists())
            if missing:
                raise ModelLoadError(f"{path}: shard(s) listed in the index are missing: {', '.join(missing)}")
        return safetensors
    pickles = sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        if not allow_pickle:
            raise ModelLoadError(
                f"{path}: only pickle weights ({pickles[0].name}); refusing to load them because unpickling can run "
                "arbitrary code. Convert to safetensors, or pass --allow-pickle if you trust the source"
            )
        return pickles
    raise ModelLoadError(f"{path}: config.json found but no weights (*.safetensors)")


def check_model_dir(path: Path, *, allow_pickle: bool = False, need_tokenizer: bool = True) -> None:
    if not (path / "config.json").exists():
        raise ModelLoadError(f"{path}: not a model directory (no config.json)")
    try:
        json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{path / 'config.json'}: invalid JSON (line {e.lineno}: {e.msg})") from None
    for f in weight_files(path, allow_pickle=allow_pickle):
        if f.suffix == ".safetensors":
            check_safetensors_file(f)
    if need_tokenizer and not any((path / name).exists() for name in TOKENIZER_FILES):
        raise ModelLoadError(f"{path}: no tokenizer (expected one of {', '.join(TOKENIZER_FILES)})")

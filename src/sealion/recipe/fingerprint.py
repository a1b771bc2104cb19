"""Fingerprints: a stable hash of a stage's config and of the identity of the files it reads."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

SMALL_FILE = 32 * 1024 * 1024  # files up to this size are hashed by content; larger ones by size + mtime


def digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _file_identity(p: Path) -> str:
    st = p.stat()
    if st.st_size <= SMALL_FILE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return "sha256:" + h.hexdigest()
    return f"size:{st.st_size}:mtime:{st.st_mtime_ns}"


def path_identity(path: str | os.PathLike) -> str:
    """Content identity of a file or directory (hidden files and temp files ignored); 'absent' if missing."""
    p = Path(path)
    if p.is_file():
        return _file_identity(p)
    if not p.is_dir():
        return "absent"
    entries = []
    for f in sorted(p.rglob("*")):
        rel = f.relative_to(p)
        if any(part.startswith(".") for part in rel.parts) or not f.is_file():
            continue
        entries.append((str(rel), _file_identity(f)))
    return "dir:" + digest(entries)


def dir_size(path: str | os.PathLike) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else 0

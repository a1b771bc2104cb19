"""Where sealion keeps converted models: $SEALION_CACHE, else ~/.cache/sealion."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("SEALION_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sealion")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path

"""Model references: what a user may name, and how each becomes a local Hugging Face directory.

A reference is one of
- an alias: `demo` (the embedded google/gemma-3-270m);
- a local Hugging Face directory (config.json + safetensors + tokenizer);
- a `.gguf` file (dequantised once into a cached safetensors directory);
- a hub id `org/name[@revision]` (downloaded through huggingface_hub; honours HF_HUB_OFFLINE).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..errors import ModelLoadError
from .cache import cache_dir
from .demo import DEMO_ALIAS, DEMO_DESCRIPTION, demo_path

ALIASES = {DEMO_ALIAS: DEMO_DESCRIPTION}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+(@[\w.\-/]+)?$")
# Only what loading needs: safetensors weights, configs, tokenizer and template files.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "tokenizer.model", "*.txt"]


def looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or os.sep in ref and not HUB_ID.match(ref) or ref.endswith(".gguf")


def gguf_cache_dir(gguf_file: Path) -> Path:
    digest = hashlib.sha256(str(gguf_file.resolve()).encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"gguf-{gguf_file.stem}-{digest}"


def resolve(ref: str | os.PathLike) -> Path:
    """The local directory for a model reference (downloading or converting when needed)."""
    ref_str = str(ref)
    if ref_str in ALIASES:
        return demo_path()
    path = Path(ref_str).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix != ".gguf":
                raise ModelLoadError(f"{path}: a model reference must be a directory or a .gguf file")
            from .convert import gguf_to_hf_dir

            return gguf_to_hf_dir(path, gguf_cache_dir(path))
        return path
    if looks_like_path(ref_str):
        raise ModelLoadError(f"{ref_str}: no such file or directory")
    if HUB_ID.match(ref_str):
        return _hub_snapshot(ref_str)
    known = ", ".join(sorted(ALIASES))
    raise ModelLoadError(f"unknown model '{ref_str}': not a path, a hub id (org/name) or an alias ({known})")


def _hub_snapshot(ref: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id, _, revision = ref.partition("@")
    try:
        return Path(snapshot_download(repo_id, revision=revision or None, allow_patterns=HUB_PATTERNS))
    except LocalEntryNotFoundError:
        raise ModelLoadError(
            f"{repo_id}: not in the local Hugging Face cache and the hub is unreachable (HF_HUB_OFFLINE or no network)"
        ) from None
    except Exception as e:  # RepositoryNotFoundError, GatedRepoError, HTTP errors
        raise ModelLoadError(f"{repo_id}: cannot download from the Hugging Face hub ({type(e).__name__}: {e})") from None

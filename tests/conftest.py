"""Shared fixtures: tiny random models (real structure), the real demo model, and ../shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist each worker (and the servers and trainers it starts) gets its share of the cores, not all of
# them: on 2 cores, four heavy files took 368 s with two OpenMP threads per worker and 254 s with one (the whole
# suite's wall time is bounded by its slowest files, so it gained less). Set before anything imports torch.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEALION_SHARED", REPO.parent / "shared"))


def _tiny(kind: str) -> Path:
    """Tiny models are deterministic (seeded), so they are built once per version of their builder and kept in
    the sealion cache; tests must treat them as read-only (copy before changing)."""
    import hashlib
    import os
    import shutil
    import tempfile

    import importlib

    import sealion.models.tiny as tiny
    import sealion.models.tokenizers as tokenizers
    from sealion.models.cache import cache_dir

    key = hashlib.sha256()
    template_module = importlib.import_module("sealion.chat.render")
    for module in (tiny, tokenizers, template_module):
        key.update(Path(module.__file__).read_bytes())
    key.update(template_module.gemma4_template().encode())
    target = cache_dir() / "test-models" / f"{kind}-{key.hexdigest()[:12]}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}.", dir=target.parent))
    try:
        if kind == "gemma3":
            tiny.make_tiny_gemma3(tmp)
        else:
            tiny.make_tiny_gemma4(tmp, multimodal=(kind == "gemma4-mm"))
        if not target.exists():
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def tiny_text_dir() -> Path:
    return _tiny("gemma4-text")


@pytest.fixture(scope="session")
def tiny_mm_dir() -> Path:
    return _tiny("gemma4-mm")


@pytest.fixture(scope="session")
def tiny_gemma3_dir() -> Path:
    return _tiny("gemma3")


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The real demo model directory (converted once into the cache, ~1-2 minutes the first time)."""
    from sealion.models import demo_path

    return demo_path()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared data is absent")
    return SHARED


# Longest files first: pytest-xdist (`--dist loadfile`) hands whole files to workers in collection order, and a long
# file collected last can leave the other core idle for minutes at the end. Slowest first, from the suite's measured
# durations on 2 cores; a file not listed keeps its place after these. (A scheduling hint only: on the AVX2 machine
# of 2026-12-06 the full suite took 23:11 before it and 23:59 with it, within that machine's run-to-run drift.)
HEAVY_FILES_FIRST = [
    "tests/recipe/test_recipe.py",
    "tests/distill/test_pipeline.py",
    "tests/export/test_quantised_exports.py",
    "tests/models/test_quantize.py",
    "tests/distill/test_demo.py",
    "tests/engine/test_prefix_cache.py",
    "tests/distill/test_fsdp.py",
    "tests/merge/test_demo_merge.py",
    "tests/engine/test_demo.py",
    "tests/distill/test_stream.py",
    "tests/serve/test_cli.py",
    "tests/test_first_hour.py",
    "tests/export/test_gguf_llamacpp.py",
    "tests/merge/test_memory.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(HEAVY_FILES_FIRST)}

    def key(item) -> int:
        try:
            return rank.get(Path(str(item.fspath)).resolve().relative_to(REPO).as_posix(), len(rank))
        except ValueError:
            return len(rank)

    items.sort(key=key)  # stable: tests keep their order within a file

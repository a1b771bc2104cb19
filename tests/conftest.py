"""Shared fixtures: tiny random models (real structure), the real demo model, and ../shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEALION_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory) -> Path:
    from sealion.models.tiny import make_tiny_gemma4

    return make_tiny_gemma4(tmp_path_factory.mktemp("tiny-gemma4-text"), multimodal=False)


@pytest.fixture(scope="session")
def tiny_mm_dir(tmp_path_factory) -> Path:
    from sealion.models.tiny import make_tiny_gemma4

    return make_tiny_gemma4(tmp_path_factory.mktemp("tiny-gemma4-mm"), multimodal=True)


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory) -> Path:
    from sealion.models.tiny import make_tiny_gemma3

    return make_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"))


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

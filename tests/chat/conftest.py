"""Chat-test fixtures: the tiny Gemma 4 text model loaded once for all chat tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_loaded(tiny_text_dir):
    from sealion.models import load

    return load(str(tiny_text_dir))

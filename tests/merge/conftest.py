from __future__ import annotations

from pathlib import Path

import pytest

from .merge_testutil import perturbed_copy


@pytest.fixture(scope="session")
def tiny_mm_pair(tiny_mm_dir, tmp_path_factory):
    """Two tiny multimodal Gemma 4 checkpoints: the fixture model and a perturbed copy."""
    other = perturbed_copy(Path(tiny_mm_dir), tmp_path_factory.mktemp("tiny-mm-b"), scale=0.05, seed=1)
    return Path(tiny_mm_dir), other


@pytest.fixture(scope="session")
def tiny_text_pair(tiny_text_dir, tmp_path_factory):
    other = perturbed_copy(Path(tiny_text_dir), tmp_path_factory.mktemp("tiny-text-b"), scale=0.05, seed=2)
    return Path(tiny_text_dir), other

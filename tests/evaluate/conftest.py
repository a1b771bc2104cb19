"""Fixtures for the SEA-HELM tree tests: the tree under ../shared (skipped when absent) and its raw task blocks,
read with yaml here, independently of sealion's loader."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="module")
def tree_dir(shared_dir) -> Path:
    d = shared_dir / "data" / "seahelm-head"
    if not (d / "seahelm_tasks" / "task_config.yaml").is_file():
        pytest.skip("../shared/data/seahelm-head is absent")
    return d


@pytest.fixture(scope="module")
def raw_blocks(tree_dir) -> dict[str, dict]:
    """Every task block (a mapping with `languages`) of the tree's config.yaml files, by key."""
    blocks = {}
    for f in glob.glob(f"{tree_dir}/seahelm_tasks/**/config.yaml", recursive=True):
        for key, block in (yaml.safe_load(open(f, encoding="utf-8")) or {}).items():
            if isinstance(block, dict) and isinstance(block.get("languages"), dict):
                blocks[key] = block
    return blocks

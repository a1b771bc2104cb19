"""Integration tests on the real demo model (google/gemma-3-270m)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sealion.engine import CompletionRequest, SamplingParams

pytestmark = pytest.mark.demo

# A natural opening in each of the eight languages; the pretrained model continues it.
OPENINGS = {
    "en": "The capital city of Singapore is",
    "id": "Ibu kota Indonesia adalah",
    "vi": "Thủ đô của Việt Nam là",
    "th": "กรุงเทพมหานครเป็นเมืองหลวงของ",
    "ta": "தமிழ்நாட்டின் தலைநகரம்",
    "tl": "Ang kabisera ng Pilipinas ay",
    "ms": "Ibu negara Malaysia ialah",
    "my": "မြန်မာနိုင်ငံ၏ မြို့တော်မှာ",
}


@pytest.fixture(scope="module")
def demo_engine(demo_dir):
    from sealion.engine.local import LocalEngine

    return LocalEngine(demo_dir)


def test_demo_writes_in_every_language(demo_engine):
    reqs = [CompletionRequest(p, SamplingParams(max_new_tokens=12, temperature=0), id=lang)
            for lang, p in OPENINGS.items()]
    out = demo_engine.complete(reqs)
    for c in out:
        assert c.text.strip(), f"{c.id}: empty output"
        assert c.completion_tokens > 0


def test_demo_batched_equals_single(demo_engine):
    params = SamplingParams(max_new_tokens=8, temperature=0)
    prompts = list(OPENINGS.values())[:4]
    batch = demo_engine.complete([CompletionRequest(p, params) for p in prompts])
    for p, b in zip(prompts, batch):
        assert demo_engine.complete([CompletionRequest(p, params)])[0].token_ids == b.token_ids


def test_generate_cli_same_text_twice(demo_dir):
    cmd = [sys.executable, "-m", "sealion", "generate", "demo", "--prompt", "Ibu kota Indonesia adalah",
           "--max-new-tokens", "8", "--seed", "0", "--temperature", "0.8"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() and first.stdout == second.stdout

"""Language identification: script rules, lingua for Latin script, accuracy on the SEA-HELM Belebele questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealion.evaluate.langid import accepted_languages, detect_language, detect_languages, dominant_script, is_language

from ..conftest import SHARED  # ../shared beside the repo (or $SEALION_SHARED)

BELEBELE = Path("seahelm-v1/nlu/belebele_mcqa/data/eval")


@pytest.fixture(scope="module")
def shared_root() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared data absent")
    return SHARED


def test_script_rules_are_certain():
    assert detect_language("ภาษาไทยเป็นภาษาที่สวยงาม") == "th"
    assert detect_language("မြန်မာဘာသာစကား") == "my"
    assert detect_language("தமிழ் ஒரு அழகான மொழி") == "ta"
    assert detect_language("ភាសាខ្មែរ") == "km"
    assert detect_language("ພາສາລາວ") == "lo"
    assert detect_language("中文是一种语言") == "zh"
    # a Thai answer with some English terms is still Thai
    assert detect_language("โปรแกรม Python ใช้ฟังก์ชัน print เพื่อแสดงผลลัพธ์ออกทางหน้าจอ") == "th"


def test_no_letters_is_undetermined():
    assert detect_language("") is None
    assert detect_language("12345 !!! ***") is None
    assert dominant_script("...") is None
    assert not is_language("", "id")
    assert not is_language("123", "th")


def test_id_and_ms_accepted_for_each_other():
    assert accepted_languages("id") == accepted_languages("ms") == {"id", "ms"}
    assert is_language("Saya amat suka makan nasi lemak pada waktu pagi bersama keluarga saya.", "id")
    assert is_language("Pemerintah Indonesia mengumumkan kebijakan baru untuk meningkatkan ekonomi nasional.", "ms")
    assert not is_language("Tôi rất thích ăn phở bò vào buổi sáng.", "id")
    assert not is_language("I like to eat fried rice with my family.", "ms")


def test_batch_matches_single():
    texts = ["Magandang umaga sa inyong lahat, kumain na ba kayo?", "สวัสดีครับ", "", "Hello there, how are you today?"]
    assert detect_languages(texts) == [detect_language(t) for t in texts]


def _questions(shared_root: Path, lang: str) -> list[str]:
    path = shared_root / "data" / BELEBELE / f"{lang}_belebele.jsonl"
    if not path.exists():
        pytest.skip(f"{path} absent")
    return [json.loads(line)["prompts"][0]["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def belebele_accuracy(shared_root):
    """Exact and id/ms-merged accuracy on every Belebele question, per language (printed for the report)."""
    out = {}
    for lang in ("en", "vi", "th", "ta", "tl", "my", "id", "ms"):
        qs = _questions(shared_root, lang)
        pred = detect_languages(qs)
        exact = sum(p == lang for p in pred) / len(pred)
        merged = sum(p in accepted_languages(lang) for p in pred) / len(pred)
        out[lang] = (exact, merged, len(pred))
    print("\nBelebele question LID accuracy (exact, id/ms merged, n):")
    for lang, (e, m, n) in out.items():
        print(f"  {lang}: {100 * e:.1f}% {100 * m:.1f}% n={n}")
    return out


@pytest.mark.parametrize("lang", ["en", "vi", "th", "ta", "tl", "my"])
def test_belebele_exact_accuracy(belebele_accuracy, lang):
    exact, _, _ = belebele_accuracy[lang]
    assert exact >= 0.95, f"{lang}: {exact:.3f}"


@pytest.mark.parametrize("lang", ["id", "ms"])
def test_belebele_id_ms_one_class(belebele_accuracy, lang):
    _, merged, _ = belebele_accuracy[lang]
    assert merged >= 0.95, f"{lang}: {merged:.3f}"

"""Metric values against hand-computed cases."""

import math

import pytest

from sealion.evaluate.metrics import (balanced_accuracy, burmese_syllables, chrf_pp, lcs_length, normalized_accuracy,
                                      qa_f1, rouge_l_f1, rouge_tokenize, squad_f1)
from sealion.evaluate.metrics.tokenize import thai_words


def test_balanced_accuracy_hand_cases():
    # class A recall 2/3, class B recall 1/1 -> (2/3 + 1) / 2 = 5/6
    assert balanced_accuracy(list("AAAB"), list("AABB")) == pytest.approx(5 / 6)
    # null predictions count as misses of their gold class
    assert balanced_accuracy(list("AABB"), ["A", None, "B", None]) == pytest.approx(0.5)


def test_normalized_accuracy_chance_and_clip():
    # 5/6 with 2 gold labels: (5/6 - 1/2) / (1/2) = 2/3
    assert normalized_accuracy(list("AAAB"), list("AABB")) == pytest.approx(200 / 3)
    # below chance clips to 0, never negative
    assert normalized_accuracy(list("ABC"), list("BCA")) == 0.0
    assert normalized_accuracy(list("ABC"), list("ABC")) == pytest.approx(100.0)
    # chance override (SEA-HELM's per-run pragmatics uses 0.5 whatever the label count)
    assert normalized_accuracy(list("ABCD"), list("ABXX"), chance=0.5) == pytest.approx(0.0)
    assert normalized_accuracy(list("ABCD"), list("ABCX"), chance=0.5) == pytest.approx(50.0)


def test_squad_f1_english_and_punctuation():
    assert squad_f1("the cat sat", "cat sat down") == pytest.approx(2 / 3)
    assert squad_f1("Jakarta.", "jakarta") == 1.0
    # "-" is deleted (ke-7 -> ke7): vs gold 1 F1 = 0.4, vs gold 2 F1 = 0.5; the max wins
    assert qa_f1("abad ke-7", ["abad ke 7", "abad ketujuh"]) == pytest.approx(0.5)
    assert qa_f1(None, ["x"]) == 0.0


def test_thai_f1_uses_newmm_segmentation():
    assert thai_words("พรรคแรงงานออสเตรเลีย") == ["พรรค", "แรงงาน", "ออสเตรเลีย"]
    # 2 shared words: P = 2/3, R = 2/2 -> F1 = 0.8 (whitespace split would give 0)
    assert qa_f1("พรรคแรงงานออสเตรเลีย", ["พรรคแรงงาน"], "th") == pytest.approx(0.8)
    assert squad_f1("พรรคแรงงานออสเตรเลีย", "พรรคแรงงาน") == 0.0


def test_tamil_f1_nonzero():
    # 2 of 3 words shared both ways
    assert qa_f1("நான் வீட்டுக்கு சென்றேன்", ["நான் பள்ளிக்கு சென்றேன்"], "ta") == pytest.approx(2 / 3)


def test_lcs():
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4
    assert lcs_length([], ["a"]) == 0


def test_rouge_l_thai():
    assert thai_words("แมวกินข้าว") == ["แมว", "กินข้าว"]
    # LCS = [แมว]: P = 1/2, R = 1/3 -> F = 0.4
    assert rouge_l_f1("แมวกินข้าว", "แมวกินปลา", "th") == pytest.approx(0.4)


def test_rouge_l_burmese_syllables():
    assert burmese_syllables("မြန်မာစာ") == ["မြန်", "မာ", "စာ"]
    assert burmese_syllables("ကျောင်းသား") == ["ကျောင်း", "သား"]
    # whitespace is removed and every Latin letter is a unit of its own (SEA-HELM's BurmeseTokenizer)
    assert rouge_tokenize("မြန်မာ စာ။ Hi, Yo!", "my") == ["မြန်", "မာ", "စာ", "h", "i", "y", "o"]
    # LCS 2: P = 2/2, R = 2/3 -> F = 0.8
    assert rouge_l_f1("မြန်မာ", "မြန်မာစာ", "my") == pytest.approx(0.8)


def test_rouge_tokenisation_issue_examples():
    """The issue's examples, with the values SEA-HELM's own scorer (HEAD 6844e6c) gives."""
    # letter/digit boundaries split for id/vi/ta/tl (OpenNMT aggressive)
    assert rouge_tokenize("MH17", "id") == ["mh", "17"]
    assert rouge_l_f1("MH17", "mh 17", "id") == pytest.approx(1.0)
    assert rouge_l_f1("Covid19 2020an", "covid 19 2020 an", "tl") == pytest.approx(1.0)
    # ZWJ / ZWNJ dropped
    assert rouge_l_f1("தமிழ்\u200cநாடு அரசு", "தமிழ்நாடு அரசு", "ta") == pytest.approx(1.0)
    # Thai whitespace tokens kept: ["ไป", " ", "ตลาด"] vs ["ไป", "ตลาด"] -> P 2/3, R 1 -> 0.8
    assert rouge_tokenize("ไป ตลาด", "th") == ["ไป", " ", "ตลาด"]
    assert rouge_l_f1("ไป ตลาด", "ไปตลาด", "th") == pytest.approx(0.8)
    # Burmese: Latin runs are characters, ဖြင့် one syllable
    tokens = rouge_tokenize("ABC ဖြင့်", "my")
    assert tokens[:3] == ["a", "b", "c"] and len(tokens) == 4
    assert len(rouge_tokenize("ဖြင့်", "my")) == 1
    assert rouge_l_f1("abc ဖြင့်", "a b c ဖြင့်", "my") == pytest.approx(1.0)


def test_aggressive_split_rules():
    from sealion.evaluate.metrics.tokenize import aggressive_split

    assert aggressive_split("abc12def 3") == ["abc", "12", "def", "3"]
    assert aggressive_split("50€ x²") == ["50", "€", "x", "²"]
    assert aggressive_split("tiếng việt2") == ["tiếng", "việt", "2"]  # marks stay on their letter
    assert aggressive_split("a \u0301b") == ["a", "\uff050020\u0301", "b"]  # OpenNMT's protected space


def test_aggressive_split_matches_pyonmttok():
    pyonmttok = pytest.importorskip("pyonmttok")
    import random

    from sealion.evaluate.metrics.tokenize import aggressive_split, basic_split

    tok = pyonmttok.Tokenizer("aggressive")
    rng = random.Random(20240601)
    pool = list("abXZ09 ") + ["\u0301", "\u0bcd", "\u0b95", "€", "²", "Ⅻ", "中", "ก", "็", "\u1000", "١", "ʰ", "🙂",
                               "\ufe0f", "ậ", "ß", "\u0640", "\u0bbe", "\u20e3"]
    for _ in range(3000):
        text = " ".join(basic_split("".join(rng.choice(pool) for _ in range(rng.randint(1, 10)))))
        assert aggressive_split(text) == tok.tokenize(text)[0], text


def test_rouge_l_tamil_and_punctuation():
    assert rouge_tokenize("நான் பள்ளிக்கு, சென்றேன்.", "ta") == ["நான்", "பள்ளிக்கு", "சென்றேன்"]
    assert rouge_l_f1("நான் வீட்டுக்கு சென்றேன்", "நான் பள்ளிக்கு சென்றேன்", "ta") == pytest.approx(2 / 3)
    # lowercase, Unicode punctuation split, no stemming
    assert rouge_tokenize("«Hà Nội» — Việt Nam!", "vi") == ["hà", "nội", "việt", "nam"]
    assert rouge_l_f1("running", "run", "id") == 0.0


def test_chrf_pp_corpus_level():
    assert chrf_pp(["hello world"], ["hello world"]) == pytest.approx(100.0)
    assert chrf_pp([None], ["hello"]) == 0.0
    corpus = chrf_pp(["the cat sat on the mat", "hello"], ["the cat sat on a mat", "hello world"])
    sentence_mean = (chrf_pp(["the cat sat on the mat"], ["the cat sat on a mat"]) + chrf_pp(["hello"], ["hello world"])) / 2
    assert 0 < corpus < 100
    assert not math.isclose(corpus, sentence_mean)  # statistics are pooled over the corpus, not averaged

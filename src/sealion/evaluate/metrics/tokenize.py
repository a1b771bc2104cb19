"""Multilingual tokenisation for ROUGE-L (never the stock rouge-score tokenizer, which deletes non-ASCII text).

lowercase -> drop control characters -> split on whitespace and on every Unicode punctuation (P*) or ASCII symbol
character, dropping them -> a language segmenter: Thai words (PyThaiNLP newmm), Burmese syllables (rule-based);
other languages keep the whitespace tokens.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

_ASCII_SYMBOLS = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_SYMBOLS or unicodedata.category(ch).startswith("P")


def basic_split(text: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if ch.isspace() or _is_punct(ch):
            if cur:
                out.append("".join(cur))
                cur = []
        elif cat in ("Cc", "Cf") and ch not in ("\u200c", "\u200d"):
            continue  # control / format characters vanish (ZWJ/ZWNJ kept: they shape Indic script)
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


# Burmese: a syllable starts at a consonant unless it is killed (asat U+103A) or stacked (virama U+1039) --
# i.e. the consonant is followed by asat/virama, or preceded by virama. Independent vowels, digits and
# Burmese punctuation also start a syllable.
_MY_CONSONANT = range(0x1000, 0x1022)
_MY_ASAT, _MY_VIRAMA = "\u103a", "\u1039"
_MY_INDEPENDENT = set("\u1023\u1024\u1025\u1026\u1027\u1029\u102a\u103f\u104c\u104d\u104f") | {
    chr(c) for c in range(0x1040, 0x104A)}


def _is_myanmar(ch: str) -> bool:
    return bool(ch) and ("\u1000" <= ch <= "\u109f" or "\uaa60" <= ch <= "\uaa7f" or "\ua9e0" <= ch <= "\ua9ff")


def burmese_syllables(word: str) -> list[str]:
    syll: list[str] = []
    cur = ""
    n = len(word)
    for i, ch in enumerate(word):
        prev = word[i - 1] if i > 0 else ""
        if not _is_myanmar(ch):  # a run of other script (Latin, digits) stays one token
            starts = _is_myanmar(prev)
        elif ord(ch) in _MY_CONSONANT:
            nxt = word[i + 1] if i + 1 < n else ""
            starts = nxt not in (_MY_ASAT, _MY_VIRAMA) and prev != _MY_VIRAMA
        else:
            starts = ch in _MY_INDEPENDENT or (bool(prev) and not _is_myanmar(prev))
        if starts and cur:
            syll.append(cur)
            cur = ""
        cur += ch
    if cur:
        syll.append(cur)
    return syll


@lru_cache(maxsize=1)
def _thai_tokenizer():
    from pythainlp.tokenize import word_tokenize

    return word_tokenize


def thai_words(text: str) -> list[str]:
    return [t for t in _thai_tokenizer()(text, engine="newmm", keep_whitespace=False) if t.strip()]


def rouge_tokenize(text: str, lang: str | None = None) -> list[str]:
    tokens = basic_split(text or "")
    if lang == "th":
        out = []
        for t in tokens:
            out.extend(x for x in thai_words(t) if x.strip())
        return out
    if lang == "my":
        out = []
        for t in tokens:
            out.extend(burmese_syllables(t))
        return out
    return tokens

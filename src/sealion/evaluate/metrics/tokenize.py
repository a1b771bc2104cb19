"""Multilingual tokenisation for ROUGE-L, as SEA-HELM's vendored XL-Sum `rouge_score` does it (``MultiTokenizer``;
never the stock rouge-score tokenizer, which deletes non-ASCII text).

1. lowercase;
2. clean: drop NUL, U+FFFD and every category-C character except tab/newline/CR (so ZWJ/ZWNJ vanish), whitespace
   (incl. Zs) becomes a space;
3. split on whitespace and on punctuation (Unicode P* and every non-alphanumeric ASCII character), dropping it;
4. the tokens joined by spaces go to the language's segmenter: Thai PyThaiNLP newmm with its whitespace tokens
   kept (``"ไป ตลาด"`` is 3 tokens), Burmese the rule-based syllable segmenter of doi:10.1145/3325885 (whitespace
   removed, every non-Burmese character its own unit);
5. other languages, or when the segmenter returns nothing: OpenNMT's "aggressive" pre-tokenisation (letter and
   number runs split from each other, ``MH17`` -> ``mh 17``; other symbols alone; marks stay with what precedes
   them), then CJK ideographs one token each.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# ------------------------------------------------------------------------------------------ basic split


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _clean(text: str) -> str:
    out = []
    for ch in text:
        if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif ch == "\x00" or ch == "\ufffd" or unicodedata.category(ch).startswith("C"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def basic_split(text: str) -> list[str]:
    """Clean, split on whitespace, split on punctuation (dropped). Case is kept."""
    out: list[str] = []
    for word in _clean(text).split():
        cur: list[str] = []
        for ch in word:
            if _is_punct(ch):
                if cur:
                    out.append("".join(cur))
                    cur = []
            else:
                cur.append(ch)
        if cur:
            out.append("".join(cur))
    return out


# ------------------------------------------------------------------------------------------ aggressive


def _char_class(ch: str) -> str:
    cat = unicodedata.category(ch)
    if cat[0] == "L":
        return "letter"
    if cat[0] == "N":
        return "number"
    if cat[0] == "M":
        return "mark"
    return "other"


_SPACE_MARK = "\uff050020"  # how OpenNMT writes a space that a combining mark would otherwise attach to


def aggressive_split(text: str) -> list[str]:
    """OpenNMT Tokenizer's mode "aggressive" without joiners (pyonmttok, which SEA-HELM calls; not a dependency
    here): runs of letters and runs of numbers are tokens, any other character is a token of its own, a combining
    mark joins the token before it. A word that starts with a mark after a space keeps that space as OpenNMT's
    protected sequence ``％0020``."""
    out: list[str] = []
    for w, word in enumerate(text.split()):
        cur, kind = "", None
        for j, ch in enumerate(word):
            c = _char_class(ch)
            if c == "mark" and cur:
                cur += ch
                continue
            if cur and (c == "other" or c == "mark" or c != kind or kind == "other"):
                out.append(cur)
                cur = ""
            cur += _SPACE_MARK + ch if (c == "mark" and j == 0 and w > 0) else ch
            kind = "other" if c == "mark" else c
        if cur:
            out.append(cur)
    return out


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)


def _split_cjk(text: str) -> str:
    return "".join(f" {ch} " if _is_cjk(ord(ch)) else ch for ch in text)


# ------------------------------------------------------------------------------------------ Burmese

_MY_ASAT, _MY_DOT_BELOW, _MY_VIRAMA = "\u103a", "\u1037", "\u1039"
# dependent signs that belong to the unit before them: vowel signs, anusvara/dot below/visarga, medials, asat
_MY_DEPENDENT = ({chr(c) for c in range(0x102B, 0x1033)} | {chr(c) for c in range(0x1036, 0x1039)}
                 | {chr(c) for c in range(0x103B, 0x103F)} | {_MY_ASAT})


def burmese_syllables(text: str) -> list[str]:
    """Rule-based Burmese syllables (doi:10.1145/3325885). Whitespace is removed first; each character starts a
    unit unless it is a dependent sign; a unit holding an asat and shorter than 4 characters (a killed final
    consonant) joins the unit before it; units around a virama (stacked consonants) are glued."""
    text = text.replace("\u200c", " ").replace(_MY_DOT_BELOW + _MY_ASAT, _MY_ASAT + _MY_DOT_BELOW)
    units: list[str] = []
    for ch in "".join(text.lower().split()):
        if ch in _MY_DEPENDENT and units:
            units[-1] += ch
        else:
            units.append(ch)
    # the reference merges in place and lets a later asat unit land in an emptied slot; kept as is
    for i in range(1, len(units)):
        if _MY_ASAT in units[i] and len(units[i]) < 4:
            units[i - 1] += units[i]
            units[i] = ""
    joined = " ".join(u for u in units if u).replace(" " + _MY_VIRAMA + " ", _MY_VIRAMA)
    return joined.split()


# ------------------------------------------------------------------------------------------ segmenters


@lru_cache(maxsize=1)
def _thai_tokenizer():
    from pythainlp.tokenize import word_tokenize

    return word_tokenize


def thai_words(text: str) -> list[str]:
    """newmm words without whitespace tokens (QA F1)."""
    return [t for t in _thai_tokenizer()(text, engine="newmm", keep_whitespace=False) if t.strip()]


def rouge_tokenize(text: str, lang: str | None = None) -> list[str]:
    sanitized = " ".join(basic_split((text or "").lower().strip()))
    tokens: list[str] = []
    if lang == "th":
        tokens = _thai_tokenizer()(sanitized, engine="newmm")  # whitespace tokens kept, as SEA-HELM
    elif lang == "my":
        tokens = burmese_syllables(sanitized)
    if not tokens and sanitized:
        tokens = _split_cjk(" ".join(aggressive_split(sanitized))).split()
    return [t for t in tokens if t]

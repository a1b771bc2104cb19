"""Offline language identification for SEA languages: Unicode script first, then lingua for Latin script.

Why this design:
* Thai, Burmese, Tamil, Khmer and Lao each own a Unicode block, so the script decides them with certainty
  (no model, no Burmese gap: lingua has no Burmese model at all).
* Latin-script text (en, id, ms, tl, vi) goes to lingua-language-detector, whose models are compiled into its
  wheel (no download at run time). It is restricted to those five languages: measured on the SEA-HELM Belebele
  questions it is 100 % en / 100 % tl / 99.7 % vi and 99.6-99.8 % for id+ms as one class (see
  docs/evaluate-ifeval-mtbench.md). fastText lid.176 (SEA-HELM's choice) almost never says "ms"; py3langid is
  weaker on id/ms sentences.
* Indonesian and Malay are accepted for each other; Javanese and Sundanese (no lingua model) are accepted when the
  text reads as id/ms, their closest modelled relatives.
"""

from __future__ import annotations

import threading
import unicodedata
from functools import lru_cache

# Unicode blocks that settle the language by themselves.
_SCRIPT_BLOCKS: tuple[tuple[int, int, str], ...] = (
    (0x0E00, 0x0E7F, "th"),
    (0x1000, 0x109F, "my"),
    (0xA9E0, 0xA9FF, "my"),
    (0xAA60, 0xAA7F, "my"),
    (0x0B80, 0x0BFF, "ta"),
    (0x1780, 0x17FF, "km"),
    (0x19E0, 0x19FF, "km"),
    (0x0E80, 0x0EFF, "lo"),
)
# Other scripts we only need to tell apart from the SEA ones (a Chinese answer is never "id").
_OTHER_SCRIPTS: tuple[tuple[int, int, str], ...] = (
    (0x4E00, 0x9FFF, "zh"),
    (0x3400, 0x4DBF, "zh"),
    (0x3040, 0x30FF, "ja"),
    (0xAC00, 0xD7AF, "ko"),
    (0x0400, 0x04FF, "ru"),
    (0x0600, 0x06FF, "ar"),
    (0x0900, 0x097F, "hi"),
)
SCRIPT_LANGUAGES = frozenset(lang for _, _, lang in _SCRIPT_BLOCKS)
LATIN_LANGUAGES = ("en", "id", "ms", "tl", "vi")
# Languages a response may be checked against, with what else counts as that language.
ACCEPTED: dict[str, frozenset[str]] = {
    "id": frozenset({"id", "ms"}),
    "ms": frozenset({"id", "ms"}),
    "jv": frozenset({"id", "ms", "jv"}),
    "su": frozenset({"id", "ms", "su"}),
}
# Languages whose words are not separated by spaces (word counts are meaningless there).
NON_SPACE_DELIMITED = frozenset({"th", "my", "km", "lo", "zh", "ja"})

_lock = threading.Lock()


def script_of(ch: str) -> str | None:
    """The script label of one character: a SEA language code, another script code, 'latin', or None."""
    cp = ord(ch)
    for lo, hi, lang in _SCRIPT_BLOCKS:
        if lo <= cp <= hi:
            return lang
    for lo, hi, lang in _OTHER_SCRIPTS:
        if lo <= cp <= hi:
            return lang
    if ch.isalpha() and "LATIN" in unicodedata.name(ch, ""):
        return "latin"
    return None


def dominant_script(text: str) -> str | None:
    """The script of most letters in `text` (None when it has no letters)."""
    counts: dict[str, int] = {}
    for ch in text:
        s = script_of(ch)
        if s is not None:
            counts[s] = counts.get(s, 0) + 1
    if not counts:
        return None
    return max(counts.items(), key=lambda kv: kv[1])[0]


@lru_cache(maxsize=1)
def _latin_detector():
    from lingua import Language, LanguageDetectorBuilder

    langs = [Language.ENGLISH, Language.INDONESIAN, Language.MALAY, Language.TAGALOG, Language.VIETNAMESE]
    return LanguageDetectorBuilder.from_languages(*langs).build()


def _lingua_code(lang) -> str:
    return lang.iso_code_639_1.name.lower()


def detect_language(text: str) -> str | None:
    """An ISO 639-1 code for `text`, or None when it has no letters or lingua cannot decide."""
    script = dominant_script(text)
    if script is None:
        return None
    if script != "latin":
        return script
    with _lock:  # the lingua detector is not documented as thread-safe
        lang = _latin_detector().detect_language_of(" ".join(text.split()))
    return _lingua_code(lang) if lang is not None else None


def detect_languages(texts: list[str]) -> list[str | None]:
    """Batch version of `detect_language` (lingua runs the Latin-script texts in parallel)."""
    out: list[str | None] = [None] * len(texts)
    latin_idx: list[int] = []
    for i, t in enumerate(texts):
        s = dominant_script(t)
        if s == "latin":
            latin_idx.append(i)
        else:
            out[i] = s
    if latin_idx:
        with _lock:
            res = _latin_detector().detect_languages_in_parallel_of([" ".join(texts[i].split()) for i in latin_idx])
        for i, lang in zip(latin_idx, res):
            out[i] = _lingua_code(lang) if lang is not None else None
    return out


def accepted_languages(expected: str) -> frozenset[str]:
    return ACCEPTED.get(expected, frozenset({expected}))


def is_language(text: str, expected: str, detected: str | None = None) -> bool:
    """True when `text` is in `expected` (id and ms count for each other). Empty text is never right."""
    if detected is None:
        detected = detect_language(text)
    return detected is not None and detected in accepted_languages(expected)

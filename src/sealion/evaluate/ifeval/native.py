"""Language-specific constants of SEA-IFEval: the native yes/no/maybe answers and keyword-matching rules.

The options are the exact phrases the SEA-IFEval prompts ask for (checked against the v1 data for en, id, vi, th,
tl, jv, su). For a language not listed here the options are read from the prompt itself (the quoted phrases).
"""

from __future__ import annotations

import re

CONSTRAINED_OPTIONS: dict[str, tuple[str, ...]] = {
    "en": ("My answer is yes.", "My answer is no.", "My answer is maybe."),
    "id": ("Jawaban saya adalah ya.", "Jawaban saya adalah tidak.", "Jawaban saya adalah mungkin."),
    "vi": ("Câu trả lời của tôi là có.", "Câu trả lời của tôi là không.", "Câu trả lời của tôi là có thể."),
    "th": ("คำตอบของฉันคือใช่", "คำตอบของฉันคือไม่", "คำตอบของฉันคืออาจจะ"),
    "tl": ("Ang sagot ko ay oo.", "Ang sagot ko ay hindi.", "Ang sagot ko ay siguro."),
    "jv": ("Jawabanku ya.", "Jawabanku ora.", "Jawabanku mungkin."),
    "su": ("Jawapan abdi enya.", "Jawapan abdi henteu.", "Jawapan abdi meureun."),
}

# Keywords match on word boundaries (case-insensitive) where words are space-delimited and affixes are rare;
# elsewhere a plain (case-insensitive) substring match, as SEA-HELM does (Tagalog infixes, Thai/Burmese/Tamil/
# Khmer/Lao without word boundaries or with agglutinated suffixes).
WORD_BOUNDARY_LANGS = frozenset({"en", "id", "vi", "jv", "su", "ms"})

_QUOTED = re.compile(r"[\"“”„]([^\"“”„\n]{2,80})[\"“”„]")


def constrained_options(lang: str, prompt: str = "") -> tuple[str, ...]:
    """The accepted answer phrases for `detectable_format:constrained_response` in `lang`."""
    if lang in CONSTRAINED_OPTIONS:
        return CONSTRAINED_OPTIONS[lang]
    quoted = tuple(dict.fromkeys(q.strip() for q in _QUOTED.findall(prompt) if q.strip()))
    return quoted if len(quoted) >= 2 else CONSTRAINED_OPTIONS["en"]

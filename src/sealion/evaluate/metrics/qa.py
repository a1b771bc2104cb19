"""SQuAD-style token F1 for extractive QA; Thai is segmented with PyThaiNLP newmm first."""

from __future__ import annotations

import string
from collections import Counter
from typing import Sequence

_PUNCT = set(string.punctuation)


def _normalize(s: str) -> list[str]:
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return s.split()


def squad_f1(prediction: str, gold: str) -> float:
    p, g = _normalize(prediction or ""), _normalize(gold or "")
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def qa_f1(prediction: str | None, golds: str | Sequence[str], lang: str | None = None) -> float:
    """Max F1 over gold answers (0..1). Thai: both sides newmm-segmented and joined by spaces, first gold only."""
    if isinstance(golds, str):
        golds = [golds]
    golds = [str(g) for g in golds]
    if not golds:
        return 0.0
    prediction = prediction or ""
    if lang == "th":
        from .tokenize import thai_words

        seg = lambda s: " ".join(thai_words(s))  # noqa: E731
        return squad_f1(seg(prediction), seg(golds[0]))
    return max(squad_f1(prediction, g) for g in golds)

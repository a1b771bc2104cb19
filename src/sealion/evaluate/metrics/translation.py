"""chrF++ (sacrebleu CHRF with word_order=2), corpus level, 0..100."""

from __future__ import annotations

from typing import Sequence


def chrf_pp(predictions: Sequence[str | None], references: Sequence[str]) -> float:
    from sacrebleu.metrics import CHRF

    preds = [p or "" for p in predictions]
    return float(CHRF(word_order=2).corpus_score(preds, [list(references)]).score)

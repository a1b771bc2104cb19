"""Balanced accuracy normalised by chance (SEA-HELM's `normalized_accuracy`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence


def balanced_accuracy(golds: Sequence[Any], preds: Sequence[Any]) -> float:
    """Mean per-gold-class recall (sklearn's balanced_accuracy_score; predicted classes absent from the golds,
    such as null, only count as misses)."""
    if len(golds) != len(preds):
        raise ValueError("golds and preds differ in length")
    if not golds:
        return 0.0
    hit: dict[Any, int] = defaultdict(int)
    tot: dict[Any, int] = defaultdict(int)
    for g, p in zip(golds, preds):
        tot[g] += 1
        hit[g] += int(p == g)
    return sum(hit[c] / tot[c] for c in tot) / len(tot)


def normalize_score(score: float, minimum: float, maximum: float) -> float:
    """(score - min) / (max - min), clipped at 0 from below only (as SEA-HELM)."""
    return max((score - minimum) / (maximum - minimum), 0.0)


def normalized_accuracy(golds: Sequence[Any], preds: Sequence[Any], chance: float | None = None) -> float:
    """100 * max((balanced_acc - chance) / (1 - chance), 0); chance = 1 / #distinct gold labels by default."""
    n = len(set(golds))
    if chance is None:
        chance = 1.0 / n if n else 0.0
    ba = balanced_accuracy(golds, preds)
    if chance >= 1.0:
        return 100.0 * ba
    return 100.0 * normalize_score(ba, chance, 1.0)

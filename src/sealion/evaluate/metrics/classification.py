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


# SEA-HELM's per-run pragmatics floor (constants.yaml `pragmatics_min_score`; src/aggregate_metrics.py)
PRAGMATICS_MIN_SCORE = 0.5
PRAGMATICS_PHENOMENA = ("scalar_implicatures", "presuppositions")


def pragmatics_per_run(task_metrics: Sequence[dict], phenomena: Sequence[str] = PRAGMATICS_PHENOMENA) -> float:
    """SEA-HELM's per-run pragmatics score: correct/total pooled over pragmatic-single and -pair per phenomenon,
    the mean over phenomena, normalised with chance 0.5 (100 * max((acc - 0.5) / 0.5, 0)). `task_metrics` are
    the metrics dicts of kind ``pragmatics`` (their ``correct:<p>`` / ``total:<p>`` counts); a phenomenon absent
    from every task is skipped (SEA-HELM would divide by zero)."""
    accs = []
    for p in phenomena:
        correct = sum(m.get(f"correct:{p}", 0.0) for m in task_metrics)
        total = sum(m.get(f"total:{p}", 0.0) for m in task_metrics)
        if total:
            accs.append(correct / total)
    if not accs:
        return float("nan")
    return 100.0 * normalize_score(sum(accs) / len(accs), PRAGMATICS_MIN_SCORE, 1.0)

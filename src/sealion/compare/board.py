"""A leaderboard of your own runs with tie groups instead of a false total order.

Per level (SEA average, each language, each language's competencies) the models are ordered by score; the leader
and every model not separable from it (paired bootstrap, BH-adjusted over the leader's comparisons, q > alpha) form
tier 1; the best of the rest leads tier 2, and so on.
"""

from __future__ import annotations

import numpy as np

from . import stats
from .load import EvalRun
from .table import Level

BOARD_LEVELS = ("sea", "language", "competency")


def tiers(points: np.ndarray, reps: np.ndarray, *, alpha: float = stats.ALPHA) -> tuple[list[int], list[float | None]]:
    """-> (tier per model, 1 = with the leader; q-value against its tier's leader, None for leaders)."""
    n = len(points)
    tier: list[int] = [0] * n
    q_of: list[float | None] = [None] * n
    left = sorted(range(n), key=lambda i: -points[i])
    k = 0
    while left:
        k += 1
        lead, rest = left[0], left[1:]
        ps = [stats.difference(float(points[lead] - points[i]), reps[lead] - reps[i], alpha=alpha).p for i in rest]
        qs = stats.benjamini_hochberg(ps) if rest else np.array([])
        tier[lead] = k
        tied = [i for i, q in zip(rest, qs) if not (q <= alpha)]  # NaN (no variability) counts as not separable
        for i, q in zip(rest, qs):
            if i in tied:
                tier[i] = k
                q_of[i] = None if np.isnan(q) else float(q)
        left = [i for i in rest if i not in tied]
    return tier, q_of


def board(runs: list[EvalRun], lv: list[Level], *, alpha: float = stats.ALPHA) -> dict:
    """{"models": [...], "columns": [{name, level, lang, competency, rows: [{model, score, se, tier, q}] best first}]}"""
    columns = []
    for x in lv:
        if x.level not in BOARD_LEVELS:
            continue
        tier, q = tiers(x.points, x.reps, alpha=alpha)
        se = np.std(x.reps, axis=1, ddof=1)
        order = sorted(range(len(runs)), key=lambda i: (tier[i], -x.points[i]))
        columns.append({"name": x.name, "level": x.level, "lang": x.lang, "competency": x.competency,
                        "rows": [{"model": runs[i].label, "score": float(x.points[i]), "se": float(se[i]),
                                  "tier": tier[i], "q_vs_leader": q[i]} for i in order]})
    return {"models": [r.label for r in runs], "alpha": alpha, "columns": columns}

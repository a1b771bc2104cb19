"""SEA-MT-Bench verdict parsing and aggregation (pure functions).

Pairwise (SEA-HELM's `mt-bench`): each turn is judged twice, model as A then model as B; the two verdicts are
mapped to the model's point of view (win/lose/tie/error). Both agree -> that verdict; they disagree -> tie;
both failed -> error. Points: win 1, tie 0.5, lose and error 0. Category win rate = mean points over the
category's turn verdicts; `weighted_win_rate` = 100 x mean of category win rates (each category weighs the same).

Criteria (SEA-HELM's `mt-bench-judge`): each criterion gets one of five classes (0, .25, .5, .75, 1; a missing or
unknown class scores 0); a turn's score is the mean over its criteria, a question's score the mean of its turns;
`average_criteria_score` = 100 x mean over questions.

Severity-weighted criteria (SEA-HELM's `syntax-criteria`, its LindseaJudgeMetric): each criterion is met (1) or
unmet (0) and carries a severity; the generic criteria's weighted mean times the other criteria's weighted mean
(high 10, medium 5, low 1, generic 1) is the item's score, 0 when either group is empty.
"""

from __future__ import annotations

import re
from typing import Any

from .prompts import CRITERIA_CLASSES

WIN, LOSE, TIE, ERROR = "win", "lose", "tie", "error"
POINTS = {WIN: 1.0, TIE: 0.5, LOSE: 0.0, ERROR: 0.0}
_LABELS = ("[[A]]", "[[B]]", "[[C]]")


def parse_pairwise(text: str | None) -> str | None:
    """'A', 'B' or 'C' when exactly one of the labels [[A]], [[B]], [[C]] occurs; None otherwise."""
    if not text:
        return None
    found = [lab for lab in _LABELS if lab in text]
    return found[0][2] if len(found) == 1 else None


def model_view(label: str | None, model_is: str) -> str:
    """A judge label from the model's point of view (the model was assistant `model_is`)."""
    if label is None:
        return ERROR
    if label == "C":
        return TIE
    return WIN if label == model_is else LOSE


def combine_orders(first: str, second: str) -> str:
    """Two position-swapped verdicts (model's view) -> one: agreement keeps it, disagreement is a tie."""
    if first == second:
        return first
    return TIE


def pairwise_metrics(details: list[dict[str, Any]]) -> dict[str, float]:
    """Win rates from per-item details {"category", "turns": [{"verdict": ...}, ...]} (0..100)."""
    by_cat: dict[str, list[str]] = {}
    for d in details:
        if not d:
            continue
        for t in d.get("turns", []):
            by_cat.setdefault(d.get("category") or "other", []).append(t["verdict"])
    all_v = [v for vs in by_cat.values() for v in vs]
    if not all_v:
        return {"weighted_win_rate": 0.0, "win_rate": 0.0}
    cat_rates = {c: sum(POINTS[v] for v in vs) / len(vs) for c, vs in by_cat.items()}
    out = {
        "weighted_win_rate": 100.0 * sum(cat_rates.values()) / len(cat_rates),
        "win_rate": 100.0 * sum(POINTS[v] for v in all_v) / len(all_v),
        "wins": float(sum(v == WIN for v in all_v)),
        "ties": float(sum(v == TIE for v in all_v)),
        "losses": float(sum(v == LOSE for v in all_v)),
        "judge_errors": float(sum(v == ERROR for v in all_v)),
    }
    for c, r in sorted(cat_rates.items()):
        out[f"category:{c}"] = 100.0 * r
    return out


_CLASS_RE = re.compile(r"<classification>\s*(\w+)\s*</classification>", re.IGNORECASE)


def parse_criteria(text: str | None) -> tuple[float, str | None]:
    """(score, class) from the last <classification> tag; (0.0, None) when missing or unknown."""
    if not text:
        return 0.0, None
    found = _CLASS_RE.findall(text)
    if not found:
        return 0.0, None
    cls = found[-1].upper()
    if cls not in CRITERIA_CLASSES:
        return 0.0, None
    return CRITERIA_CLASSES[cls], cls


def criteria_item_score(turn_scores: list[list[float]]) -> float:
    """Mean over criteria within each turn, then mean over turns."""
    per_turn = [sum(s) / len(s) for s in turn_scores if s]
    return sum(per_turn) / len(per_turn) if per_turn else 0.0


SEVERITY_WEIGHTS = {"high": 10.0, "medium": 5.0, "low": 1.0, "generic": 1.0}


def severity_scores(severities: list[str], scores: list[float]) -> tuple[float, float, float]:
    """(overall, criteria_score, generic_score) of one answer, as SEA-HELM computes them.

    `scores[k]` is the judge's score for criterion k. SEA-HELM sorts the judge replies by their ids `criteria{k}`
    as strings (criteria0, criteria1, criteria10, criteria2, ...) and pairs them in that order with the criteria
    in row order, so past ten criteria a reply is weighed with another criterion's severity; done the same here,
    so the numbers are SEA-HELM's. An unknown severity weighs 1 among the specific criteria."""
    replies = [scores[k] for k in sorted(range(len(scores)), key=lambda k: f"criteria{k}")]
    generic = weight_g = specific = weight_s = 0.0
    for severity, score in zip(severities, replies, strict=True):
        severity = str(severity or "").lower()
        w = SEVERITY_WEIGHTS.get(severity, 1.0)
        if severity == "generic":
            generic, weight_g = generic + score * w, weight_g + w
        else:
            specific, weight_s = specific + score * w, weight_s + w
    generic_score = generic / weight_g if weight_g else 0.0
    criteria_score = specific / weight_s if weight_s else 0.0
    return criteria_score * generic_score, criteria_score, generic_score


def _weighted(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The turns of a severity-weighted item whose every turn's criteria name severities, else none: rows without
    severities (where SEA-HELM's metric would fail) keep the plain mean."""
    turns = d["turns"] if d.get("weighting") == "severity" else []
    return turns if turns and all(any(t.get("severities") or []) for t in turns) else []


def detail_score(d: dict[str, Any]) -> float:
    """One item's score from its details: the severity-weighted product, or the mean over criteria and turns."""
    weighted = _weighted(d)
    if weighted:
        per_turn = [severity_scores(t["severities"], t["scores"])[0] for t in weighted]
        return sum(per_turn) / len(per_turn)
    return criteria_item_score([t["scores"] for t in d["turns"]])


def criteria_metrics(details: list[dict[str, Any]]) -> dict[str, float]:
    """`average_criteria_score` and per-category means (0..100) from per-item details."""
    rows = [d for d in details if d]
    if not rows:
        return {"average_criteria_score": 0.0}
    scores = [detail_score(d) for d in rows]
    out = {"average_criteria_score": 100.0 * sum(scores) / len(scores)}
    weighted = [t for d in rows for t in _weighted(d)]
    if weighted:  # SEA-HELM's two factors, averaged over answers
        parts = [severity_scores(t["severities"], t["scores"]) for t in weighted]
        out["criteria_score"] = 100.0 * sum(p[1] for p in parts) / len(parts)
        out["generic_score"] = 100.0 * sum(p[2] for p in parts) / len(parts)
    n_turns = max(len(d["turns"]) for d in rows)
    for t in range(n_turns):
        ts = [sum(d["turns"][t]["scores"]) / len(d["turns"][t]["scores"]) for d in rows
              if len(d["turns"]) > t and d["turns"][t]["scores"]]
        if ts:
            out[f"turn{t + 1}_score"] = 100.0 * sum(ts) / len(ts)
    out["judge_errors"] = float(sum(t.get("errors", 0) for d in rows for t in d["turns"]))
    by_cat: dict[str, list[float]] = {}
    for d, s in zip(rows, scores):
        by_cat.setdefault(d.get("category") or "other", []).append(s)
    for c, vs in sorted(by_cat.items()):
        out[f"category:{c}"] = 100.0 * sum(vs) / len(vs)
    return out


_SEAHELM_CLASS_RE = re.compile(r"<classification>\s*(\w+)\s*</classification>")  # case-sensitive, as SEA-HELM's


def parse_seahelm_criteria(text: str | None, classes: dict[str, float]) -> tuple[float, str | None]:
    """SEA-HELM's criteria parsing: the last <classification> tag, looked up in the task's `classifications`;
    missing or unknown scores 0."""
    found = _SEAHELM_CLASS_RE.findall(text or "")
    if not found or found[-1] not in classes:
        return 0.0, None
    return float(classes[found[-1]]), found[-1]

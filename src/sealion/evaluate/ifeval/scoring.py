"""Scoring SEA-IFEval responses: strict and loose accuracy, language normalisation, per-category breakdown.

Pure functions over plain data, so the task kind, the tests and the bootstrap all use the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..langid import detect_languages, is_language
from .checkers import CheckContext, check, skips


@dataclass
class IFEvalItem:
    prompt: str
    instruction_ids: list[str]
    kwargs: list[dict[str, Any]]
    lang: str  # the task language
    category: str = ""


@dataclass
class IFEvalResult:
    strict: list[bool]
    loose: list[bool]
    expected_language: str
    detected_language: str | None
    language_ok: bool
    skipped: bool = False
    category: str = ""
    subcategories: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # checker failures on malformed rows

    @property
    def strict_pass(self) -> bool:
        return bool(self.strict) and all(self.strict)

    @property
    def loose_pass(self) -> bool:
        return bool(self.loose) and all(self.loose)

    def to_details(self) -> dict[str, Any]:
        return {
            "category": self.category, "subcategories": self.subcategories, "strict": self.strict,
            "loose": self.loose, "expected_language": self.expected_language,
            "detected_language": self.detected_language, "language_ok": self.language_ok, "skipped": self.skipped,
            **({"errors": self.errors} if self.errors else {}),
        }


def expected_language(item: IFEvalItem) -> str:
    """The task language, or the language an instruction asks for (`language:response_language`)."""
    for iid, kw in zip(item.instruction_ids, item.kwargs):
        if iid == "language:response_language" and kw and kw.get("response_language"):
            return str(kw["response_language"])
    return item.lang


def score_items(items: list[IFEvalItem], responses: list[str]) -> list[IFEvalResult]:
    """Check every instruction of every item (strict and loose) and the response language."""
    detected = detect_languages([r or "" for r in responses])
    results = []
    for item, response, det in zip(items, responses, detected):
        response = response or ""
        expected = expected_language(item)
        lang_ok = bool(response.strip()) and is_language(response, expected, det)
        skipped = any(skips(iid, item.lang) for iid in item.instruction_ids)
        ctx = CheckContext(lang=item.lang, prompt=item.prompt)
        strict, loose, errors = [], [], []
        if not skipped:
            for iid, kw in zip(item.instruction_ids, item.kwargs):
                try:
                    strict.append(check(iid, response, kw or {}, ctx))
                    loose.append(check(iid, response, kw or {}, ctx, loose=True))
                except (KeyError, ValueError, TypeError) as e:  # a malformed row fails its item, not the run
                    strict.append(False)
                    loose.append(False)
                    errors.append(f"{iid}: {type(e).__name__}: {e}")
        results.append(IFEvalResult(
            strict=strict, loose=loose, expected_language=expected, detected_language=det, language_ok=lang_ok,
            skipped=skipped, category=item.category, subcategories=list(item.instruction_ids), errors=errors,
        ))
    return results


def _pct(xs: list[bool]) -> float:
    return 100.0 * sum(xs) / len(xs) if xs else 0.0


def metrics_from_details(details: list[dict[str, Any]]) -> dict[str, float]:
    """Task metrics (0..100) from per-item details (`IFEvalResult.to_details()`); skipped items excluded.

    `overall_lang_normalized_acc` (SEA-HELM's headline): strict prompt-level pass AND response in the expected
    language. Also strict/loose prompt- and instruction-level accuracy, the correct-language rate, and the
    language-normalised accuracy of each category.
    """
    rows = [d for d in details if d and not d.get("skipped")]
    strict = [bool(d["strict"]) and all(d["strict"]) for d in rows]
    loose = [bool(d["loose"]) and all(d["loose"]) for d in rows]
    lang = [bool(d["language_ok"]) for d in rows]
    out = {
        "overall_lang_normalized_acc": _pct([s and ok for s, ok in zip(strict, lang)]),
        "loose_lang_normalized_acc": _pct([s and ok for s, ok in zip(loose, lang)]),
        "strict_prompt_acc": _pct(strict),
        "loose_prompt_acc": _pct(loose),
        "strict_instruction_acc": _pct([x for d in rows for x in d["strict"]]),
        "loose_instruction_acc": _pct([x for d in rows for x in d["loose"]]),
        "correct_language_rate": _pct(lang),
        "n_scored": float(len(rows)),
        "n_skipped": float(len(details) - len(rows)),
    }
    by_cat: dict[str, list[bool]] = {}
    for d, s, ok in zip(rows, strict, lang):
        by_cat.setdefault(d.get("category") or "other", []).append(s and ok)
    for cat, xs in sorted(by_cat.items()):
        out[f"category:{cat}"] = _pct(xs)
    return out


def subcategory_metrics(details: list[dict[str, Any]]) -> dict[str, float]:
    """Language-normalised strict accuracy per instruction id (one instruction per SEA-IFEval prompt)."""
    by: dict[str, list[bool]] = {}
    for d in details:
        if not d or d.get("skipped"):
            continue
        for iid, s in zip(d["subcategories"], d["strict"]):
            by.setdefault(iid, []).append(bool(s) and bool(d["language_ok"]))
    return {f"instruction:{k}": _pct(v) for k, v in sorted(by.items())}

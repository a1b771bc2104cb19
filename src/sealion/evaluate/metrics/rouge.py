"""ROUGE-L F1 (LCS-based), over the multilingual tokens of `tokenize.rouge_tokenize`, no stemming."""

from __future__ import annotations

from .tokenize import rouge_tokenize


def lcs_length(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l_f1(prediction: str, reference: str, lang: str | None = None) -> float:
    """F-measure of ROUGE-L on a 0..1 scale."""
    pred = rouge_tokenize(prediction, lang)
    ref = rouge_tokenize(reference, lang)
    lcs = lcs_length(ref, pred)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(pred), lcs / len(ref)
    return 2 * p * r / (p + r)

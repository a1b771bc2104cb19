"""Answer extraction, as SEA-HELM does it (seahelm.md §4).

* Choice tasks (SEA-HELM's ``F1AccMetric``): ``<tag>[\\s*]*(label1|label2|...)+`` searched case-insensitively, first
  match; no match -> the whole response; then normalised and looked up in ``{label.lower(): label}``; anything else
  is ``None`` ("null", scored wrong). The labels are the distinct gold labels of the items scored, as SEA-HELM
  builds them from its data frame (`gold_labels`).
* LINDSEA (mp-r, pragmatic-single/pair; ``MinimalPairsMetric`` / ``PragmaticReasoningMetric``): the same, except
  the search is case-sensitive and the group is ``(labels)*``: a tag followed by something other than a label
  matches with an empty group, which falls back to the whole response (so ``"Jawaban: Kalimat B ...\\nJawaban: B"``
  is null), while the lookup stays lower-cased (a bare ``"b"`` is ``B``).
* Free text (QA, translation, summary): ``<tag>[\\s\\r\\n`*]*(.*)`` -- the rest of the tag's line; no tag -> the
  whole response; stripped. An empty answer is ``None``.

Reasoning must already be removed (`sealion.evaluate.reasoning.split_reasoning`).
"""

from __future__ import annotations

import re
import string
from typing import Any, Iterable

_PUNCT_WS = string.punctuation + " \n"


def normalize_answer(s: str) -> str:
    """lowercase, strip ASCII punctuation and spaces at both ends, collapse inner whitespace."""
    s = s.lower().strip(_PUNCT_WS)
    return " ".join(s.split())


def gold_labels(golds: Iterable[Any], preferred: list[str] | None = None) -> list[str]:
    """The distinct gold labels (as strings): those of `preferred` that occur first, in its order, then the rest in
    order of appearance. SEA-HELM builds its regex and lookup table from exactly this set."""
    seen = {str(g) for g in golds if g is not None and not isinstance(g, list)}
    out = [x for x in (preferred or []) if x in seen]
    for g in golds:
        g = str(g) if g is not None and not isinstance(g, list) else None
        if g is not None and g not in out:
            out.append(g)
    return out


def choice_pattern(answer_tag: str, labels: list[str], *, lindsea: bool = False) -> re.Pattern:
    # longest labels first so a label that prefixes another cannot shadow it (SEA-HELM joins a set, whose order
    # varies between processes; for labels that do not prefix each other the order is irrelevant)
    alts = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
    if lindsea:
        return re.compile(re.escape(answer_tag) + r"[\s\*]*(" + alts + r")*")
    return re.compile(re.escape(answer_tag) + r"[\s\*]*(" + alts + r")+", re.IGNORECASE)


def extract_choice(response: str | None, answer_tag: str | None, labels: list[str], *,
                   lindsea: bool = False) -> str | None:
    """-> the matched label (as spelled in `labels`) or None."""
    output = response or ""
    if answer_tag and labels:
        m = choice_pattern(answer_tag, labels, lindsea=lindsea).search(output)
        if m and m.group(1) is not None:
            output = m.group(1)
    table = {x.lower(): x for x in labels}
    return table.get(normalize_answer(output.strip()))


def extract_text(response: str, answer_tag: str | None) -> str | None:
    """-> the free-text answer (rest of the tag's line, else the whole response), or None when empty."""
    response = response or ""
    out = response
    if answer_tag:
        m = re.search(re.escape(answer_tag) + r"[\s\r\n`*]*(.*)", response)
        if m:
            out = m.group(1)
    out = out.strip()
    return out or None

"""Answer extraction, as SEA-HELM does it (seahelm.md §4).

* Choice tasks: ``<tag>[\\s*]*(label1|label2|...)+`` searched case-insensitively (case-sensitively for LINDSEA),
  first match; no match -> the whole response; then normalised and looked up in the label set; anything else is
  ``None`` ("null", scored wrong).
* Free text (QA, translation, summary): ``<tag>[\\s\\r\\n`*]*(.*)`` -- the rest of the tag's line; no tag -> the
  whole response; stripped. An empty answer is ``None``.

Reasoning must already be removed (`sealion.evaluate.reasoning.split_reasoning`).
"""

from __future__ import annotations

import re
import string

_PUNCT_WS = string.punctuation + " \n"


def normalize_answer(s: str) -> str:
    """lowercase, strip ASCII punctuation and spaces at both ends, collapse inner whitespace."""
    s = s.lower().strip(_PUNCT_WS)
    return " ".join(s.split())


def choice_pattern(answer_tag: str, labels: list[str], *, ignore_case: bool = True) -> re.Pattern:
    # longest labels first so a label that prefixes another cannot shadow it; both escaped so any label is literal
    alts = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
    return re.compile(re.escape(answer_tag) + r"[\s\*]*(" + alts + r")+", re.IGNORECASE if ignore_case else 0)


def extract_choice(response: str, answer_tag: str | None, labels: list[str], *, ignore_case: bool = True) -> str | None:
    """-> the matched label (as spelled in `labels`) or None."""
    response = response or ""
    output = response
    if answer_tag:
        m = choice_pattern(answer_tag, labels, ignore_case=ignore_case).search(response)
        if m and m.group(1) is not None:
            output = m.group(1)
    key = normalize_answer(output.strip())
    if ignore_case:
        table = {normalize_answer(x): x for x in labels}
    else:
        table = {" ".join(x.strip(_PUNCT_WS).split()): x for x in labels}
        key = " ".join(output.strip().strip(_PUNCT_WS).split())
    return table.get(key)


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

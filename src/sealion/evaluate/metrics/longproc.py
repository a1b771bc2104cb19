"""LongProc scoring rules (Ye et al. 2025, as SEA-HELM's ``long_context/longproc`` metric classes apply them),
written from the task definitions. Every function is pure: text in, numbers out (0..1).

* countdown: the ``<Solution>`` equations are exact arithmetic, each uses two numbers of the current multiset
  (the given numbers, then the results so far), and the last result is the target.
* path traversal: the ``<Route>`` block equals the gold route (the graph is one-way with one exit per city, so the
  valid route is unique); partial credit counts lines from the top.
* ToM tracking: the ``-`` bullet lines (one belief state per story step), normalised, equal the gold's in order.
* HTML to TSV: row-level precision / recall / F1 of the ```` ```tsv ```` block against the gold table.
* travel planning: the ``<Plan>``'s (city, days) sequence, derived from its flight days, equals the gold's.

Partial accuracies of the procedures (countdown, travel planning) follow LongProc's line counter: the number of
leading lines that agree, where an agreement that runs to the end of the shorter text counts one line fewer.
"""

from __future__ import annotations

import csv
import re
import string
from fractions import Fraction
from typing import Any

_PUNCT = set(string.punctuation)


def tag_span(text: str | None, open_tag: str, close_tag: str) -> str | None:
    """What lies between the first `open_tag` and the last `close_tag` after it, stripped; None when absent."""
    text = text or ""
    start = text.find(open_tag)
    if start < 0:
        return None
    end = text.rfind(close_tag)
    if end < start + len(open_tag):
        return None
    return text[start + len(open_tag):end].strip()


def _leading_agreement(pred: list[str], gold: list[str], same) -> float:
    """LongProc's counter: lines agreeing before the first disagreement, over the gold lines; when the shorter
    side runs out without a disagreement, its last line is not counted."""
    if not gold:
        return 0.0
    for i, (p, g) in enumerate(zip(pred, gold)):
        if not same(p, g):
            return i / len(gold)
    return max(min(len(pred), len(gold)) - 1, 0) / len(gold)


# --------------------------------------------------------------------------------------------------- countdown

_EQUATION = re.compile(r"^\s*(\d+)\s*([-+*/])\s*(\d+)\s*=\s*(-?\d+)\s*$")


def countdown_solution_ok(nums: list[int], target: int, solution: str | None) -> bool:
    """One equation per line, ``a op b = c``; c must be exactly a op b, a and b must be in the multiset (the given
    numbers, then each result added back), and the one number left must be the target. The prompt's other rules
    (positive, integer, at most 2000) are not checked, as in LongProc: an exact equation with an integer result
    already reaches the target or fails."""
    if solution is None:
        return False
    pool = [int(n) for n in nums]
    lines = solution.split("\n")
    if len(lines) != len(pool) - 1:
        return False
    for line in lines:
        m = _EQUATION.match(line)
        if not m:
            return False
        a, op, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
        if op == "/" and b == 0:
            return False
        value = {"+": Fraction(a + b), "-": Fraction(a - b), "*": Fraction(a * b),
                 "/": Fraction(a, b) if b else None}[op]
        if value != c:
            return False
        for operand in (a, b):
            if operand not in pool:
                return False
            pool.remove(operand)
        pool.append(c)
    return pool == [int(target)]


def _inner(text: str, tag: str) -> str:
    """The text after the first ``<tag>`` and before the following ``</tag>`` (either may be missing)."""
    if f"<{tag}>" in text:
        text = text.split(f"<{tag}>")[1]
    if f"</{tag}>" in text:
        text = text.split(f"</{tag}>")[0]
    return text


def _same_search_step(pred: str, gold: str) -> bool:
    if pred == gold:
        return True
    if "|- Try" in gold and "Pick two numbers" not in gold:  # same operands and the same verdict (drop or keep)
        return pred.split("=")[0] == gold.split("=")[0] and ("drop this branch" in pred) == ("drop this branch" in gold)
    return False  # a pick (or any other line) must be identical


def countdown_procedure_partial(response: str, gold_procedure: str) -> float:
    """Share of the gold search procedure followed: the initial state line must be identical, then picks must be
    identical and tries must try the same operation with the same verdict."""
    pred = _inner(response or "", "Search Procedure").strip().split("\n")
    gold = _inner(gold_procedure or "", "Search Procedure").strip().split("\n")
    if not gold or pred[0] != gold[0]:
        return 0.0
    return _leading_agreement(pred[1:], gold[1:], _same_search_step)


# --------------------------------------------------------------------------------------------------- path traversal

_HOP = re.compile(r"^From (.+?), take an? (.+?) to (.+?)\.$")


def route_scores(route: str | None, gold: str) -> dict[str, float]:
    """accuracy: the route equals the gold; partial_accuracy: LongProc's count of lines from the top, the first
    wrong line included (a wrong turn at step k of n scores k/n)."""
    if route is None:
        return {"accuracy": 0.0, "partial_accuracy": 0.0, "extraction_rate": 0.0}
    route, gold = route.strip(), gold.strip()
    if route == gold:
        return {"accuracy": 1.0, "partial_accuracy": 1.0, "extraction_rate": 1.0}
    pred_lines, gold_lines = route.split("\n"), gold.split("\n")
    agreed = next((i for i, (p, g) in enumerate(zip(pred_lines, gold_lines)) if p != g), None)
    reached = agreed + 1 if agreed is not None else min(len(pred_lines), len(gold_lines))
    return {"accuracy": 0.0, "partial_accuracy": reached / len(gold_lines), "extraction_rate": 1.0}


def route_is_valid(route: str | None, edges: list[dict[str, Any]], src: str, dst: str) -> bool:
    """Whether the route's hops are connections of the city graph, from `src` and ending at `dst`."""
    if not route:
        return False
    graph = {(e["src"], e["dst"], e["transit"]) for e in edges}
    at = src
    for line in route.strip().split("\n"):
        m = _HOP.match(line.strip())
        if not m or m.group(1) != at or (m.group(1), m.group(3), m.group(2)) not in graph:
            return False
        at = m.group(3)
    return at == dst


# --------------------------------------------------------------------------------------------------- ToM tracking

_TOM_STOPWORDS = re.compile(r"\b(a|an|the|on|in|at|step|thinks|think|believes|believe|is|are|of|location|know|knows"
                            r"|belief)\b")


def _tom_normal(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT and ch != "’")
    return " ".join(_TOM_STOPWORDS.sub(" ", text).split())


def tom_beliefs(text: str) -> list[str]:
    """The normalised content of every line that starts with ``-`` (SEA-HELM's reading; empty ones dropped)."""
    out = []
    for line in (text or "").strip().split("\n"):
        if line.startswith("-"):
            content = _tom_normal(line[1:].strip())
            if content:
                out.append(content)
    return out


def tom_scores(response: str, gold: str) -> dict[str, float]:
    """accuracy: every step's state equals the gold's; partial_accuracy: steps right before the first wrong one."""
    pred, ref = tom_beliefs(response), tom_beliefs(gold)
    if pred == ref:
        return {"accuracy": 1.0, "partial_accuracy": 1.0}
    if not ref:
        return {"accuracy": 0.0, "partial_accuracy": 0.0}
    wrong = next((i for i, (p, g) in enumerate(zip(pred, ref)) if p != g), None)
    right = wrong if wrong is not None else min(len(pred), len(ref))
    return {"accuracy": 0.0, "partial_accuracy": right / len(ref)}


# --------------------------------------------------------------------------------------------------- HTML to TSV

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def tsv_cell(text: str) -> str:
    """A cell as compared: lower case, ASCII punctuation and articles removed, every space removed."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return "".join(_ARTICLES.sub(" ", text).split())


def tsv_rows(text: str) -> tuple[int, list[tuple[str, ...]]]:
    """-> (number of header columns, normalised data rows). The first line is the header; a last line of the
    wrong width is dropped (trailing remarks), other rows of the wrong width become N/A rows."""
    lines = list(csv.reader(text.strip().split("\n"), delimiter="\t"))
    width = len(lines[0])
    data = lines[1:]
    if data and len(data[-1]) != width:
        data = data[:-1]
    if not data:
        raise ValueError("no data rows")
    return width, [tuple(tsv_cell(c) for c in (row if len(row) == width else ["N/A"] * width)) for row in data]


def tsv_scores(table: str | None, gold: str) -> dict[str, Any]:
    """Row-level precision (predicted rows found in the gold table), recall (gold rows found in the prediction)
    and F1; rows compare cell by cell in column order, unordered across rows. A missing block, a table without
    data rows or with another column count than the gold scores 0 with `error` set."""
    zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    if table is None:
        return {**zero, "error": "no ```tsv block"}
    try:
        gold_width, gold_rows = tsv_rows(gold)
        width, rows = tsv_rows(table)
    except (ValueError, IndexError, csv.Error) as e:
        return {**zero, "error": str(e) or type(e).__name__}
    if width != gold_width:
        return {**zero, "error": f"{width} columns, gold has {gold_width}"}
    gold_set, pred_set = set(gold_rows), set(rows)
    precision = sum(r in gold_set for r in rows) / len(rows)
    recall = sum(r in pred_set for r in gold_rows) / len(gold_rows)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "error": None}


# --------------------------------------------------------------------------------------------------- travel planning

_VISIT = re.compile(r"\d+-\d+")
_FLIGHT = re.compile(r".*Day (\d+).*from (\w+) to (\w+)")
_TOTAL_DAYS = re.compile(r"European cities for (\d+) days")


def parse_plan(plan: str) -> list[tuple[str, int]]:
    """A plan's (city, days) sequence: cities from the flights ("Day 5: Fly from A to B"), each stay from one
    flight day to the next, both days counted (the first stay from day 1, the last to the last visit's end)."""
    visits: list[str] = []
    flights: list[tuple[str, str, str]] = []
    total = None
    for line in plan.split("\n"):
        if m := _TOTAL_DAYS.search(line):
            total = int(m.group(1))
        if m := _VISIT.search(line):
            visits.append(m.group(0))
            if int(m.group(0).split("-")[1]) == total:  # the plan is complete: ignore alternatives after it
                break
        if m := _FLIGHT.match(line):
            flights.append(m.groups())
    if not visits or not flights:
        return []
    cities = [flights[0][1]] + [f[2] for f in flights]
    days = [1] + [int(f[0]) for f in flights] + [int(visits[-1].split("-")[1])]
    return [(city, days[i + 1] - days[i] + 1) for i, city in enumerate(cities)]


def travel_plan_ok(cities: str, durations: str, plan: str | None) -> bool:
    """Gold ``"A**B**C"`` / ``"3**5**2"``: the plan's first stays are exactly these, in order."""
    if plan is None:
        return False
    want = list(zip([c for c in cities.split("**") if c], [int(d) for d in durations.split("**") if d]))
    got = parse_plan(plan)
    return bool(want) and got[: len(want)] == want


def _plain_line(line: str) -> str:
    text = "".join(ch for ch in line.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def travel_procedure_partial(response: str, gold_procedure: str) -> float:
    """Share of the gold solving procedure reproduced, line by line (normalised; a gold line contained in the
    predicted line agrees), from ``<Solving Procedure>`` on."""
    marker, tail = "<Solving Procedure>", "Output the plan in the required format:"
    gold = (gold_procedure or "").replace(tail, "")
    pred = (response or "").replace(tail, "")
    if marker in gold:
        gold = marker + gold.split(marker)[1]
    if marker in pred:
        pred = marker + pred.split(marker)[1]
    gold_lines = [x.rstrip() for x in gold.strip().split("\n") if x.strip()]
    pred_lines = [x.rstrip() for x in pred.strip().split("\n") if x.strip()]
    return _leading_agreement(pred_lines, gold_lines, lambda p, g: _plain_line(g) in _plain_line(p))

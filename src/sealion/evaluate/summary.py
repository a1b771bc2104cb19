"""The lines `sealion eval` ends with: what it cost and where the reports are, and which (language, task) pairs
it left out and why, so a skipped task is seen at the end of the run rather than found missing from the table."""

from __future__ import annotations

import re

# how the runner notes a left-out pair: "th/causal: skipped, <why>" or "id/mt-bench: skipped for base models"
SKIPPED_NOTE = re.compile(r"^(?P<pair>[^\s:]+/[^\s:]+): skipped,? (?P<why>.*)$")


def skipped_pairs(results: dict) -> list[tuple[str, str]]:
    """(lang/task, why) for every pair the run left out, from its notes."""
    found = (SKIPPED_NOTE.match(n) for n in results.get("notes") or [])
    return [(m["pair"], m["why"]) for m in found if m]


def closing_lines(results: dict, out_dir: str, *, shown: int = 4) -> list[str]:
    t = results.get("timing", {})
    lines = [f"{t.get('generated', 0)} generated, {t.get('cached', 0)} from cache, "
             f"{t.get('total_seconds', 0):.1f} s. Reports in {out_dir}/ (results.json, results.md, report.html)"]
    skipped = skipped_pairs(results)
    if skipped:
        pairs = [pair for pair, _ in skipped]
        more = f" and {len(pairs) - shown} more" if len(pairs) > shown else ""
        lines.append(f"skipped {len(pairs)} (language, task) pair{'s' if len(pairs) != 1 else ''}: "
                     f"{', '.join(pairs[:shown])}{more} (first: {skipped[0][1]}; every reason is under Notes in "
                     "results.md)")
    return lines

"""Terminal tables for `sealion compare`: the comparison (significant cells marked) and the leaderboard."""

from __future__ import annotations

import math


def _num(v, fmt: str = "{:.2f}") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def _p(v) -> str:
    if v is None:
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _indent(row: dict) -> str:
    return {"sea": "", "language": "", "competency": "  ", "task": "    "}[row["level"]]


def _label(row: dict) -> str:
    if row["level"] == "sea":
        return "SEA average"
    if row["level"] == "language":
        return row["lang"]
    if row["level"] == "competency":
        return row["competency"]
    return row["task"]


def _table(header: list[str], body: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body]


def comparison_text(result: dict) -> str:
    alpha = result["alpha"]
    out = []
    for c in result["comparisons"]:
        out += [f"{c['b']} - {c['a']}  (paired bootstrap over items, {result['n_replicates']} replicates; "
                f"* = significant at FDR {alpha:g}, Benjamini-Hochberg over the table)", ""]
        body = []
        for r in c["rows"]:
            mark = "*" if r["significant"] else " "
            ci = f"[{_num(r['lo'], '{:+.2f}')}, {_num(r['hi'], '{:+.2f}')}]"
            body.append([_indent(r) + _label(r), _num(r["a"]), _num(r["b"]), _num(r["diff"], "{:+.2f}") + mark, ci,
                         _p(r["p"]), _p(r["q"]), _p(r.get("mcnemar_p")), _num(r["mde"]), str(r["n_items"])])
        header = ["level", c["a"], c["b"], "diff", f"{100 * (1 - alpha):g}% CI", "p", "q (BH)", "McNemar p", "MDE",
                  "items"]
        out += _table(header, body, right={1, 2, 3, 5, 6, 7, 8, 9})
        n_sig = sum(r["significant"] for r in c["rows"])
        out += ["", f"{n_sig} of {len(c['rows'])} cells significant; MDE = smallest true difference detectable "
                    f"with 80% power at alpha {alpha:g} on these items", ""]
    return "\n".join(out)


def board_text(board: dict) -> str:
    models = board["models"]
    body = []
    for col in board["columns"]:
        by = {r["model"]: r for r in col["rows"]}
        label = {"sea": "SEA average", "language": col["lang"], "competency": "  " + str(col["competency"])}[col["level"]]
        body.append([label] + [f"{by[m]['score']:.2f} ({by[m]['tier']})" + ("*" if by[m]["tier"] == 1 else " ")
                               for m in models])
    lines = _table(["level"] + models, body, right=set(range(1, len(models) + 1)))
    return "\n".join([f"leaderboard: score (tier); * = tier 1, not separable from the leader at FDR {board['alpha']:g}",
                      ""] + lines) + "\n"

"""The SEA-MT-Bench task kinds: `mtbench-pairwise` (against stored baseline answers) and `mtbench-criteria`.

The runner generates both turns (turn 2 sees the model's own turn-1 answer); these kinds only judge. The judge is
`--judge URL_OR_MODEL` (`ctx.options["judge"]`), opened once through `ctx.engine` and shared by all tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError, DataError
from ..judge import Judge, JudgeCall, JudgeReply
from ..tasks import Item, ItemScore, ScoreContext, TaskKind, TaskSpec, TurnOutput, register_kind
from .prompts import (DEFAULT_CRITERIA_TURN1, DEFAULT_CRITERIA_TURN2, criteria_messages, pairwise_messages,
                      seahelm_criteria_messages)
from .scoring import (ERROR, POINTS, combine_orders, criteria_metrics, detail_score, model_view,
                      pairwise_metrics, parse_criteria, parse_pairwise, parse_seahelm_criteria)

DEFAULT_REFERENCE_CATEGORIES = ("math", "reasoning", "coding")
_TAIL = 600  # characters of judge output kept per verdict in the per-item records


def _tail(text: str | None) -> str | None:
    return None if text is None else text[-_TAIL:]


class _MTBenchBase(TaskKind):
    base_model_ok = False

    def make_items(self, spec: TaskSpec, lang: str, rows: list[dict]) -> list[Item]:
        items = super().make_items(spec, lang, rows)
        for item, row in zip(items, rows):
            if "question_id" in row:
                item.id = str(row["question_id"])
            turns = int(spec.options.get("turns", 2))  # kalahi-judge, syntax-criteria: one turn
            if len(item.prompts) < turns:
                raise DataError(f"{spec.name} [{lang}] item {item.id}: expected {turns} turns, got {len(item.prompts)}")
        return items

    # ------------------------------------------------------------------ shared helpers
    def judge(self, spec: TaskSpec, lang: str, ctx: ScoreContext) -> Judge:
        ref = ctx.options.get("judge") or spec.options.get("judge")
        if not ref:
            raise ConfigError(f"task {spec.name!r} needs a judge: pass --judge URL_OR_MODEL "
                              "(an OpenAI-compatible base URL or a model reference such as 'demo')")
        max_tokens = int(ctx.options.get("judge_max_tokens") or spec.options.get("judge_max_tokens", 512))
        progress = _progress_bar(f"judge {spec.name} [{lang}]")
        return Judge(
            ctx.engine(str(ref)), ref=str(ref), cache_path=Path(ctx.cache_dir) / "judge" / f"{spec.name}_{lang}.jsonl",
            max_new_tokens=max_tokens, temperature=float(spec.options.get("judge_temperature", 0.0)), seed=ctx.seed,
            retries=int(ctx.options.get("judge_retries", 2)), backoff_s=float(ctx.options.get("judge_backoff_s", 1.0)),
            progress=progress,
        )

    @staticmethod
    def questions(item: Item) -> list[str]:
        return [str(p.get("text", "")) for p in item.prompts]

    @staticmethod
    def answers(turns: list[TurnOutput], n: int) -> list[str]:
        got = [(t.answer or "") if t is not None else "" for t in (turns or [])]
        return (got + [""] * n)[:n]

    def reference(self, spec: TaskSpec, item: Item, turn: int) -> str | None:
        cats = [c.lower() for c in spec.options.get("reference_categories", DEFAULT_REFERENCE_CATEGORIES)]
        refs = item.extra.get("references")
        if not refs or str(item.metadata.get("category", "")).lower() not in cats:
            return None
        return refs[turn - 1] if len(refs) >= turn and refs[turn - 1] else None


def _progress_bar(desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    bar = {"b": None}

    def update(n: int) -> None:
        if bar["b"] is None:
            bar["b"] = tqdm(desc=desc, unit="call", leave=False)
        bar["b"].update(n)

    return update


@register_kind
class MTBenchPairwise(_MTBenchBase):
    """Each turn judged against the stored baseline answer, in both orders."""

    name = "mtbench-pairwise"

    def baseline(self, spec: TaskSpec, lang: str, item: Item) -> list[str]:
        model = spec.lang(lang).extra.get("baseline") or spec.options.get("baseline", "gpt-3.5-turbo-0125")
        got = (item.extra.get("baselines") or {}).get(model)
        if not got or len(got) < len(item.prompts):
            have = ", ".join(item.extra.get("baselines") or {}) or "none"
            raise DataError(f"{spec.name} [{lang}] item {item.id}: no baseline answers from {model!r} (have: {have})")
        return [str(x or "") for x in got]

    def score(self, spec: TaskSpec, lang: str, items: list[Item], outputs: list[list[TurnOutput]],
              ctx: ScoreContext) -> list[ItemScore]:
        calls: list[JudgeCall] = []
        for i, (item, turns) in enumerate(zip(items, outputs)):
            qs = self.questions(item)
            model = self.answers(turns, len(qs))
            base = self.baseline(spec, lang, item)
            for t in range(1, len(qs) + 1):
                ref = self.reference(spec, item, t)
                calls.append(JudgeCall(pairwise_messages(qs, model, base, t, ref), {"i": i, "t": t, "model_is": "A"}))
                calls.append(JudgeCall(pairwise_messages(qs, base, model, t, ref), {"i": i, "t": t, "model_is": "B"}))
        replies = self.judge(spec, lang, ctx).run(calls)
        per_item: list[dict[int, list[tuple[JudgeCall, JudgeReply]]]] = [{} for _ in items]
        for call, reply in zip(calls, replies):
            per_item[call.meta["i"]].setdefault(call.meta["t"], []).append((call, reply))
        scores = []
        for item, turns in zip(items, per_item):
            turn_details = []
            for t in sorted(turns):
                views, orders = [], []
                for call, reply in turns[t]:
                    label = parse_pairwise(reply.text)
                    view = model_view(label, call.meta["model_is"])
                    views.append(view)
                    orders.append({
                        "model_is": call.meta["model_is"], "label": label, "view": view, "cached": reply.cached,
                        "error": reply.error or (None if label else "no single [[A]]/[[B]]/[[C]] verdict"),
                        "judge_tail": _tail(reply.text),
                    })
                verdict = combine_orders(views[0], views[1]) if len(views) == 2 else ERROR
                turn_details.append({"turn": t, "verdict": verdict, "orders": orders})
            points = [POINTS[d["verdict"]] for d in turn_details]
            scores.append(ItemScore(
                score=sum(points) / len(points) if points else 0.0,
                extracted=[d["verdict"] for d in turn_details],
                details={"category": item.metadata.get("category", ""), "turns": turn_details},
            ))
        return scores

    def task_metrics(self, spec: TaskSpec, lang: str, items: list[Item], scores: list[ItemScore]) -> dict[str, float]:
        m = pairwise_metrics([s.details for s in scores])
        m[spec.metric] = m.get(spec.metric, m["weighted_win_rate"])
        return m


@register_kind
class MTBenchCriteria(_MTBenchBase):
    """Each turn rated against criteria (the row's own, or sealion's generic ones), five classes each."""

    name = "mtbench-criteria"

    def criteria(self, item: Item, turn: int) -> list[str]:
        c = item.extra.get("criteria")
        if c:
            if all(isinstance(x, list) for x in c):
                c = c[turn - 1] if len(c) >= turn else []
            # SEA-HELM's criteria rows: {"keyPointText": ...}
            return [str(x.get("keyPointText", "")) if isinstance(x, dict) else str(x) for x in c]
        return list(DEFAULT_CRITERIA_TURN1 if turn == 1 else DEFAULT_CRITERIA_TURN2)

    def severities(self, item: Item, turn: int) -> list[str]:
        """Each criterion's `severity` (SEA-HELM's LINDSEA criteria rows carry one; "" where absent)."""
        c = item.extra.get("criteria") or []
        if c and all(isinstance(x, list) for x in c):
            c = c[turn - 1] if len(c) >= turn else []
        if not c:  # sealion's generic criteria stand in: none has a severity
            return [""] * len(self.criteria(item, turn))
        return [str(x.get("severity") or "") if isinstance(x, dict) else "" for x in c]

    def score(self, spec: TaskSpec, lang: str, items: list[Item], outputs: list[list[TurnOutput]],
              ctx: ScoreContext) -> list[ItemScore]:
        # --seahelm: the task config's own judge prompts and classes (judge.judge_prompts / .classifications)
        tree = spec.options.get("seahelm_judge")
        calls: list[JudgeCall] = []
        for i, (item, turns) in enumerate(zip(items, outputs)):
            qs = self.questions(item)
            answers = self.answers(turns, len(qs))
            for t in range(1, len(qs) + 1):
                ref = self.reference(spec, item, t)
                for k, crit in enumerate(self.criteria(item, t)):
                    msgs = (seahelm_criteria_messages(tree["judge_prompts"], qs, answers, t, crit, spec.path or spec.name)
                            if tree else criteria_messages(qs, answers, t, crit, ref))
                    calls.append(JudgeCall(msgs, {"i": i, "t": t, "k": k, "criterion": crit}))
        replies = self.judge(spec, lang, ctx).run(calls)
        per_item: list[dict[int, list[dict[str, Any]]]] = [{} for _ in items]
        for call, reply in zip(calls, replies):
            value, cls = (parse_seahelm_criteria(reply.text, tree["classifications"]) if tree
                          else parse_criteria(reply.text))
            per_item[call.meta["i"]].setdefault(call.meta["t"], []).append({
                "criterion": call.meta["criterion"], "class": cls, "score": value, "cached": reply.cached,
                "error": reply.error or (None if cls else "no valid <classification> tag"),
                "judge_tail": _tail(reply.text),
            })
        severity = spec.options.get("criteria_weighting") == "severity"
        scores = []
        for item, turns in zip(items, per_item):
            turn_details = [{
                "turn": t, "scores": [r["score"] for r in turns[t]], "errors": sum(1 for r in turns[t] if r["error"]),
                "criteria": turns[t],
            } for t in sorted(turns)]
            details: dict[str, Any] = {"category": item.metadata.get("category", ""), "turns": turn_details}
            if severity:
                details["weighting"] = "severity"
                for d in turn_details:
                    d["severities"] = self.severities(item, d["turn"])
            scores.append(ItemScore(score=detail_score(details), extracted=[d["scores"] for d in turn_details],
                                    details=details))
        return scores

    def task_metrics(self, spec: TaskSpec, lang: str, items: list[Item], scores: list[ItemScore]) -> dict[str, float]:
        m = criteria_metrics([s.details for s in scores])
        m[spec.metric] = m.get(spec.metric, m["average_criteria_score"])
        return m

"""The built-in task kinds: choice (classification / multiple choice), minimal-pairs (LINDSEA syntax),
pragmatics (LINDSEA pragmatics), extractive-qa, summarization, translation."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..extraction import extract_choice, extract_text, gold_labels
from ..metrics import chrf_pp, normalize_score, normalized_accuracy, qa_f1, rouge_l_f1
from . import Item, ItemScore, ScoreContext, TaskKind, TaskSpec, TurnOutput, register_kind


def _answer(turns: list[TurnOutput]) -> str:
    return turns[0].answer if turns else ""


@register_kind
class ChoiceKind(TaskKind):
    """Pick one label; score = chance-normalised balanced accuracy over the gold classes."""

    name = "choice"

    @staticmethod
    def lindsea(spec: TaskSpec) -> bool:
        """LINDSEA's extraction (case-sensitive tag search, `(labels)*`); `case_sensitive: true` is the old name."""
        return spec.options.get("extraction") == "lindsea" or bool(spec.options.get("case_sensitive"))

    def score(self, spec, lang, items, outputs, ctx):
        ls = spec.lang(lang)
        # SEA-HELM's regex and lookup table hold the distinct gold labels of the scored data, not the label set
        # the prompt offers (Tamil pragmatic-pair: 2 labels, so "பொய்ஆம்" is பொய்)
        labels = gold_labels([it.label for it in items], ls.labels) or ls.labels
        lindsea = self.lindsea(spec)
        out = []
        for item, turns in zip(items, outputs):
            pred = extract_choice(_answer(turns), ls.prompt.answer_tag, labels, lindsea=lindsea)
            out.append(ItemScore(score=float(pred is not None and pred == item.label), extracted=pred))
        return out

    def task_metrics(self, spec, lang, items, scores):
        golds = [str(it.label) for it in items]
        # balanced accuracy depends only on per-class recall, so correctness per item is enough
        preds = [g if (s.score or 0) >= 1 else "\x00null" for g, s in zip(golds, scores)]
        m = {spec.metric: normalized_accuracy(golds, preds, spec.chance)}
        m["null_count"] = float(sum(1 for s in scores if s.extracted is None))
        return m

    def fewshot_pool(self, spec: TaskSpec, lang: str, item: Item, pool: list[Item], k: int = 5) -> list[Item]:
        key = spec.options.get("fewshot_same")
        cands = [ex for ex in pool if ex.prompts != item.prompts]  # never the item itself (ThaiExam pools)
        if key:
            same = [ex for ex in cands if ex.metadata.get(key) == item.metadata.get(key)]
            cands = same or cands
        return cands[:k]


def _phenomenon(item: Item) -> Any:
    return item.metadata.get("linguistic_phenomenon", "all")


@register_kind
class MinimalPairsKind(ChoiceKind):
    """LINDSEA syntax (mp-r). Two numbers, because SEA-HELM's leaderboard and its per-run code disagree:

    * ``normalized_accuracy`` (the leaderboard's, aggregated): balanced accuracy over the gold labels (A/B),
      normalised by chance 1/#gold labels -- what every choice task gets;
    * ``phenomenon_normalized_accuracy`` (SEA-HELM's per-run ``MinimalPairsMetric``): plain accuracy per linguistic
      phenomenon, macro-averaged over phenomena, normalised by the same chance.

    A slice with one gold class (``--limit 2``) has chance 1: both are then the unnormalised accuracy and
    ``degenerate_slice`` is 1 (SEA-HELM divides by zero there).
    """

    name = "minimal-pairs"

    def task_metrics(self, spec, lang, items, scores):
        m = super().task_metrics(spec, lang, items, scores)
        by: dict[Any, list[float]] = defaultdict(list)
        for it, s in zip(items, scores):
            by[_phenomenon(it)].append(s.score or 0.0)
        acc = sum(sum(v) / len(v) for v in by.values()) / len(by) if by else 0.0
        n = len({str(it.label) for it in items})
        chance = spec.chance if spec.chance is not None else (1.0 / n if n else 0.0)
        m["phenomenon_normalized_accuracy"] = 100.0 * (acc if chance >= 1.0 else normalize_score(acc, chance, 1.0))
        m["degenerate_slice"] = float(n < 2)
        return m


@register_kind
class PragmaticsKind(ChoiceKind):
    """LINDSEA pragmatics (pragmatic-single / pragmatic-pair). The score is the leaderboard's: chance-normalised
    balanced accuracy with chance 1/#distinct gold labels (1/4 for id pragmatic-single). The metrics also carry
    ``correct:<phenomenon>`` / ``total:<phenomenon>`` so SEA-HELM's per-run number, pooled over the two tasks and
    normalised by 0.5, can be rebuilt with `sealion.evaluate.metrics.pragmatics_per_run`."""

    name = "pragmatics"

    def task_metrics(self, spec, lang, items, scores):
        m = super().task_metrics(spec, lang, items, scores)
        for it, s in zip(items, scores):
            p = _phenomenon(it)
            m[f"correct:{p}"] = m.get(f"correct:{p}", 0.0) + float((s.score or 0) >= 1)
            m[f"total:{p}"] = m.get(f"total:{p}", 0.0) + 1.0
        m["degenerate_slice"] = float(len({str(it.label) for it in items}) < 2)
        return m


@register_kind
class ExtractiveQAKind(TaskKind):
    name = "extractive-qa"

    def score(self, spec, lang, items, outputs, ctx):
        tag = spec.lang(lang).prompt.answer_tag
        out = []
        for item, turns in zip(items, outputs):
            pred = extract_text(_answer(turns), tag)
            golds = item.label if isinstance(item.label, list) else [item.label]
            out.append(ItemScore(score=qa_f1(pred, golds, lang), extracted=pred))
        return out


@register_kind
class SummarizationKind(TaskKind):
    name = "summarization"

    def score(self, spec, lang, items, outputs, ctx):
        tag = spec.lang(lang).prompt.answer_tag
        out = []
        for item, turns in zip(items, outputs):
            pred = extract_text(_answer(turns), tag)
            ref = item.label[0] if isinstance(item.label, list) else str(item.label)
            out.append(ItemScore(score=rouge_l_f1(pred or "", ref, lang), extracted=pred))
        return out


@register_kind
class TranslationKind(TaskKind):
    """MetricX-24 (normalised (25 - s) / 25) when the user supplies the model, else corpus chrF++."""

    name = "translation"

    def score(self, spec, lang, items, outputs, ctx):
        tag = spec.lang(lang).prompt.answer_tag
        preds = [extract_text(_answer(turns), tag) for turns in outputs]
        refs = [it.label[0] if isinstance(it.label, list) else str(it.label) for it in items]
        metricx = None
        if ctx.options.get("metricx"):
            from ..metrics.metricx import metricx_scores

            sources = [str(it.prompts[0].get("text", "")) for it in items]
            metricx = metricx_scores(ctx.options["metricx"], sources, preds, refs, cache_dir=ctx.cache_dir)
        out = []
        for i, pred in enumerate(preds):
            if metricx is not None:
                raw = metricx[i]
                out.append(ItemScore(score=max((25.0 - raw) / 25.0, 0.0), extracted=pred, details={"metricx": raw}))
            else:
                out.append(ItemScore(score=chrf_pp([pred], [refs[i]]) / 100.0, extracted=pred))
        return out

    def task_metrics(self, spec, lang, items, scores):
        refs = [it.label[0] if isinstance(it.label, list) else str(it.label) for it in items]
        chrf = chrf_pp([s.extracted for s in scores], refs)
        if scores and all("metricx" in s.details for s in scores):
            vals = [s.score for s in scores]
            return {"score": 100.0 * sum(vals) / len(vals), spec.metric: 100.0 * sum(vals) / len(vals),
                    "chrf++": chrf, "metric_used": "metricx-24"}
        return {"score": chrf, "chrf++": chrf, "metric_used": "chrf++ (MetricX-24 skipped: no --metricx model)"}

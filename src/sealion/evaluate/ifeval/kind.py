"""The `ifeval` task kind: plugs SEA-IFEval scoring into the `sealion eval` runner."""

from __future__ import annotations

from typing import Any

from ..tasks import Item, ItemScore, ScoreContext, TaskKind, TaskSpec, TurnOutput, register_kind
from .scoring import IFEvalItem, metrics_from_details, score_items, subcategory_metrics


def to_ifeval_item(item: Item, lang: str) -> IFEvalItem:
    """A runner Item (SEA-IFEval row: one instruction in metadata.subcategory; or Google IFEval's
    instruction_id_list) -> the scorer's item."""
    kwargs = item.extra.get("kwargs") or [{}]
    ids = item.extra.get("instruction_id_list") or [item.metadata.get("subcategory")]
    if not ids or ids[0] is None:
        raise ValueError(f"if-eval item {item.id}: no instruction id (metadata.subcategory)")
    if len(kwargs) < len(ids):
        kwargs = list(kwargs) + [{}] * (len(ids) - len(kwargs))
    category = item.metadata.get("category") or ids[0].split(":")[0]
    prompt = str(item.prompts[0].get("text", "")) if item.prompts else ""
    return IFEvalItem(prompt=prompt, instruction_ids=list(ids), kwargs=list(kwargs), lang=lang, category=category)


@register_kind
class IFEvalKind(TaskKind):
    name = "ifeval"
    base_model_ok = False

    def score(self, spec: TaskSpec, lang: str, items: list[Item], outputs: list[list[TurnOutput]],
              ctx: ScoreContext) -> list[ItemScore]:
        if_items = [to_ifeval_item(it, lang) for it in items]
        responses = [turns[0].answer if turns else "" for turns in outputs]
        scores = []
        for res, resp in zip(score_items(if_items, responses), responses):
            value = None if res.skipped else float(res.strict_pass and res.language_ok)
            scores.append(ItemScore(score=value, extracted=res.detected_language, details=res.to_details()))
        return scores

    def task_metrics(self, spec: TaskSpec, lang: str, items: list[Item], scores: list[ItemScore]) -> dict[str, float]:
        m = metrics_from_details([s.details for s in scores])
        m[spec.metric] = m["overall_lang_normalized_acc"]
        return m

    def finalize(self, spec: TaskSpec, lang: str, items: list[Item], scores: list[ItemScore],
                 ctx: ScoreContext) -> dict[str, Any]:
        return subcategory_metrics([s.details for s in scores])

"""SEA-HELM's `-logprobs` task variants (`seahelm_logprobs` set): instead of generating an answer, the model's
prompt log-probabilities score every label. For each item and each label, the continuation the answer template
gives (`{answer_tag} {label}`) is appended to the item's prompt (the chat prompt with its generation prompt, or the
base-model prompt) and its log-probability read through the engine core (`SamplingParams(prompt_logprobs=0,
max_new_tokens=0)`), or over HTTP from a server with vLLM's `prompt_logprobs` and `/tokenize`. The labels' probabilities are renormalised over the label set; an item scores the gold's
probability (`average_cumulative_probabilities` = 100 x the mean), and the most probable label is its extracted
answer (`normalized_accuracy` as for the generative task).

The runner still makes one cheap generation pass (1 token) so the item's prompt is recorded like any task's.
"""

from __future__ import annotations

import math

from ...errors import ConfigError, SealionError
from ..extraction import gold_labels
from ..metrics import normalized_accuracy
from . import ItemScore, TaskKind, register_kind


def continuation(spec, lang: str, label: str) -> str:
    ls = spec.lang(lang)
    tmpl = (ls.extra.get("seahelm_prompt") or {}).get("answer_template") or ls.prompt.answer_template
    fields = {"answer_tag": ls.prompt.answer_tag or "", "label": label, spec.options.get("label_field") or "label": label}
    return tmpl.format(**fields).strip()


def prefix_ids(engine, prompt) -> list[int]:
    """The ids the model is fed for a recorded prompt: chat messages through the one renderer (in-process) or the
    server's own /tokenize (HTTP), text encoded with the model's special tokens."""
    if isinstance(prompt, str):
        return engine.encode(prompt)
    return engine.chat_prompt_ids(prompt)


def label_logprobs(engine, prefix: list[int], conts: list[str]) -> list[float]:
    """Sum of the prompt log-probs of each continuation's tokens after `prefix` (one batch of scoring requests)."""
    from ...engine.types import CompletionRequest, SamplingParams

    reqs, lens = [], []
    for c in conts:
        ids = engine.encode_text(c)
        lens.append(len(ids))
        reqs.append(CompletionRequest(prompt="", prompt_ids=prefix + list(ids),
                                      params=SamplingParams(max_new_tokens=0, prompt_logprobs=0)))
    out = []
    for comp, n in zip(engine.complete(reqs), lens):
        if comp.error:
            raise SealionError(f"log-prob scoring failed: {comp.error}")
        rows = (comp.prompt_logprobs or [])[-n:] if n else []
        out.append(sum(r["logprob"] for r in rows if r) if rows else -math.inf)
    return out


@register_kind
class LogprobChoiceKind(TaskKind):
    name = "logprob-choice"
    graded_scores = True  # item scores are probabilities: the aggregate averages them (no balanced accuracy)

    def max_tokens(self, spec, lang):
        return 1

    def score(self, spec, lang, items, outputs, ctx):
        engine = ctx.engine("self")
        if not all(hasattr(engine, m) for m in ("encode", "encode_text", "chat_prompt_ids")):
            raise ConfigError(f"{spec.name}: log-prob tasks need prompt log-probs: an in-process model or an "
                              "endpoint with vLLM's prompt_logprobs and /tokenize (vLLM, sealion serve)")
        # every label the prompt offers (sealion's spec of the generative task), else the gold labels seen
        labels = list(spec.lang(lang).labels) or gold_labels([it.label for it in items], [])
        conts = [continuation(spec, lang, lab) for lab in labels]
        out = []
        for item in items:
            prompt = (item.extra.get("_prompts") or {}).get(ctx.run, [None])[0]
            if prompt is None:
                raise ConfigError(f"{spec.name} [{lang}] item {item.id}: no recorded prompt to score")
            lps = label_logprobs(engine, prefix_ids(engine, prompt), conts)
            top = max(lps)
            ps = [math.exp(x - top) for x in lps]
            total = sum(ps)
            probs = {lab: p / total for lab, p in zip(labels, ps)}
            best = max(probs, key=probs.get)
            out.append(ItemScore(score=probs.get(str(item.label), 0.0), extracted=best,
                                 details={"probabilities": probs, "logprobs": dict(zip(labels, lps))}))
        return out

    def task_metrics(self, spec, lang, items, scores):
        golds = [str(it.label) for it in items]
        preds = [str(s.extracted) for s in scores]
        return {spec.metric: 100.0 * sum(s.score or 0.0 for s in scores) / max(len(scores), 1),
                "normalized_accuracy": normalized_accuracy(golds, preds, spec.chance)}

"""SEA-HELM's `-logprobs` task variants (`seahelm_logprobs` set), as SEA-HELM's LogprobsInferenceStrategy and
LogProbMetric run them (read in SEA-HELM 6844e6c, `src/inference_strategy/logprobs_inference_strategy.py`,
`src/metrics/logprob_metric.py`):

1. the model generates up to the answer tag, the tag being the only stop and kept in the text; an answer that did
   not stop (ran out of `max_tokens`) is null;
2. the gold label, after the answer template's separator (the text between `{answer_tag}` and `{label}`, else the
   template's `answer_tag_separator`, else a space), is appended to the prompt's ids and the generated text's, and
   the log-probabilities of its tokens are summed: the engine core's prompt log-probs in-process, or over HTTP from a
   server with vLLM's `prompt_logprobs` and `/tokenize`. This is SEA-HELM's token path (vLLM offline: prompt tokens
   + response tokens + the answer's tokens).

Metrics: `average_cumulative_probabilities` = the mean over items of 100 x exp(sum), a null counting 0;
`average_cumulative_logprobs` = the mean of the sums over non-null items (0 when fewer than two); `null_count`.
"""

from __future__ import annotations

import math
import re

from ...errors import ConfigError, SealionError
from . import ItemScore, TaskKind, register_kind


def separator(spec, lang: str) -> str:
    """What SEA-HELM puts between the answer tag and the label: from the answer template, else the template's
    `answer_tag_separator`, else a space."""
    ls = spec.lang(lang)
    tree = ls.extra.get("seahelm_prompt") or {}
    tmpl = tree.get("answer_template") or ls.prompt.answer_template
    found = re.search(r"(?<=\{answer_tag\})(.*)(?=\{label\})", tmpl or "")
    return found.group(1) if found else str(tree.get("answer_tag_separator", " "))


def prefix_ids(engine, prompt) -> list[int]:
    """The ids the model is fed for a recorded prompt: chat messages through the one renderer (in-process) or the
    server's own /tokenize (HTTP), text encoded with the model's special tokens."""
    if isinstance(prompt, str):
        return engine.encode(prompt)
    return engine.chat_prompt_ids(prompt)


def continuation_logprobs(engine, pairs: list[tuple[list[int], str]]) -> list[float]:
    """For each (prefix ids, continuation text): the sum of the prompt log-probs of the continuation's tokens after
    the prefix. One batch of scoring requests (no tokens generated)."""
    from ...engine.types import CompletionRequest, SamplingParams

    reqs, lens = [], []
    for prefix, cont in pairs:
        ids = engine.encode_text(cont)
        lens.append(len(ids))
        reqs.append(CompletionRequest(prompt="", prompt_ids=list(prefix) + list(ids),
                                      params=SamplingParams(max_new_tokens=0, prompt_logprobs=0)))
    out = []
    for comp, n in zip(engine.complete(reqs) if reqs else [], lens):
        if comp.error:
            raise SealionError(f"log-prob scoring failed: {comp.error}")
        rows = (comp.prompt_logprobs or [])[-n:] if n else []
        out.append(sum(r["logprob"] for r in rows if r) if rows else -math.inf)
    return out


@register_kind
class LogprobChoiceKind(TaskKind):
    name = "logprob-choice"
    graded_scores = True  # item scores are probabilities: the aggregate averages them (no balanced accuracy)
    stops_at_answer_tag = True

    def score(self, spec, lang, items, outputs, ctx):
        engine = ctx.engine("self")
        if not all(hasattr(engine, m) for m in ("encode", "encode_text", "chat_prompt_ids")):
            raise ConfigError(f"{spec.name}: log-prob tasks need prompt log-probs: an in-process model or an "
                              "endpoint with vLLM's prompt_logprobs and /tokenize (vLLM, sealion serve)")
        sep = separator(spec, lang)
        golds = [str(it.label[0] if isinstance(it.label, list) else it.label) for it in items]
        pairs, scored = [], []  # one scoring batch for the items that reached the answer tag
        for i, (item, turns) in enumerate(zip(items, outputs)):
            prompt = (item.extra.get("_prompts") or {}).get(ctx.run, [None])[0]
            if prompt is None:
                raise ConfigError(f"{spec.name} [{lang}] item {item.id}: no recorded prompt to score")
            reply = turns[0] if turns else None
            if reply is None or reply.finish_reason != "stop":  # never reached the answer tag: SEA-HELM's null
                continue
            pairs.append((prefix_ids(engine, prompt) + list(engine.encode_text(reply.text)), sep + golds[i]))
            scored.append(i)
        lps = dict(zip(scored, continuation_logprobs(engine, pairs)))
        return [ItemScore(score=math.exp(lps[i]), extracted=gold,
                          details={"null": False, "cumulative_logprob": lps[i], "continuation": sep + gold})
                if i in lps else ItemScore(score=0.0, extracted=None, details={"null": True})
                for i, gold in enumerate(golds)]

    def task_metrics(self, spec, lang, items, scores):
        probs = [100.0 * (s.score or 0.0) for s in scores]
        lps = [s.details["cumulative_logprob"] for s in scores if s.details.get("cumulative_logprob") is not None]
        mean_p = sum(probs) / len(probs) if probs else 0.0
        return {spec.metric: mean_p, "average_cumulative_probabilities": mean_p,
                "average_cumulative_logprobs": sum(lps) / len(lps) if len(lps) > 1 else 0.0,
                "null_count": float(sum(1 for s in scores if s.details.get("null")))}

"""Suites added to SEA-HELM since v1, run from the SEA-HELM tree (../shared/data/seahelm-head): SEA Safeguard,
the criteria judges and the logprob variants. Expected values come from the tree's own files read with yaml/json
here, and from SEA-HELM's formulas written out in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sealion.evaluate import EvalConfig, run_eval
from sealion.evaluate.runner import Runner, Unit
from sealion.evaluate.seahelm_tree import load_tree
from sealion.evaluate.tasks import TurnOutput, get_kind




def _rows(tree_dir: Path, rel: str, n: int) -> list[dict]:
    return [json.loads(x) for x in (tree_dir / rel).read_text(encoding="utf-8").splitlines()[:n]]


def _runner(tree_dir, tmp_path) -> Runner:
    r = Runner(EvalConfig(model="unused", seahelm=str(tree_dir), out=str(tmp_path), temperature=0, progress=False))
    r.base_model = False
    return r


SAFEGUARD = ["safeguard_cultural_content_generation_prompt", "safeguard_cultural_content_generation_response",
             "safeguard_cultural_in_the_wild", "safeguard_general_prompt", "safeguard_general_response"]


def test_safeguard_prompts_and_golds_from_the_tree(tree_dir, tmp_path, raw_blocks):
    """Every sea_safeguard task x language: the prompt is SEA-HELM's assembly of the real first rows, and the gold is
    the field the task's answer template shows (prompt_label / response_label / label)."""
    raw = raw_blocks
    sets = yaml.safe_load(open(tree_dir / "seahelm_tasks" / "task_config.yaml", encoding="utf-8"))["sea_safeguard"]
    tree = load_tree(str(tree_dir))
    runner = _runner(tree_dir, tmp_path)
    checked = 0
    for lang, keys in sets.items():
        for key in keys:
            lc = raw[key]["languages"][lang]
            tmpl = lc["prompt_template"]
            gold_field = next((f"{w}_label" for w in ("prompt", "response") if key.endswith(f"_{w}")), "label")
            rows = _rows(tree_dir, lc["filepath"], 3)
            spec = tree.spec(key)
            kind = get_kind(spec.kind)
            items = kind.make_items(spec, lang, rows)
            assert [it.label for it in items] == [r[gold_field] for r in rows], (key, lang)
            unit = Unit(lang, spec, kind, items, [], 1)
            payload, req = runner._request(unit, items[0], 0, [], seed=1)
            want = (tmpl["preamble"].format(answer_tag=tmpl["answer_tag"]) + "\n\n"
                    + tmpl["task_template"].format(**rows[0]["prompts"][0])).strip()
            assert payload["messages"] == [{"role": "user", "content": want}], (key, lang)
            assert req.params.max_new_tokens == lc["max_tokens"]
            # scored as SEA-HELM's F1AccMetric: the tag, then the label
            outs = [[TurnOutput(text=f"{tmpl['answer_tag']} {it.label}", answer=f"{tmpl['answer_tag']} {it.label}")]
                    for it in items]
            assert [s.score for s in kind.score(spec, lang, items, outs, None)] == [1.0] * 3
            checked += 1
    assert checked == sum(len(v) for v in sets.values()) and checked >= 35


def test_safeguard_runs_end_to_end_under_safety(tree_dir, tiny_text_dir, tmp_path):
    assert load_tree(str(tree_dir)).resolve_plan(["sea_safeguard"], ["id"]) == {"id": SAFEGUARD}
    tasks = ["safeguard_general_response", "safeguard_cultural_in_the_wild"]
    res = run_eval(EvalConfig(model=str(tiny_text_dir), seahelm=str(tree_dir), tasks=tasks,
                              languages=["id"], runs=1, limit=2, max_tokens=3, out=str(tmp_path / "r"),
                              progress=False))
    safety = res["results"]["id"]["safety"]
    assert set(tasks) <= set(safety) and all(safety[k]["n_items"] == 2 for k in tasks)


class _ScriptedJudge:
    """An engine whose replies are scripted per criterion text; it records every request's messages."""

    def __init__(self, reply_for):
        self.reply_for, self.seen = reply_for, []

    def chat(self, reqs):
        from sealion.engine.types import Completion

        out = []
        for r in reqs:
            self.seen.append(r.messages)
            text = self.reply_for(r.messages[-1]["content"])
            out.append(Completion(text=text, content=text, finish_reason="stop", prompt_tokens=1, completion_tokens=1))
        return out

    def close(self):
        pass


def _ctx(tmp_path, judge):
    from sealion.evaluate.tasks import ScoreContext

    return ScoreContext(run=0, seed=1, cache_dir=tmp_path, engine_factory=lambda ref: judge, options={"judge": "j"})


@pytest.mark.parametrize("key, lang", [("kalahi-judge", "tl"), ("syntax-criteria", "id"), ("mt-bench-judge", "id")])
def test_criteria_judges_use_the_tree_prompts_and_classes(tree_dir, tmp_path, key, lang, raw_blocks):
    """Judge messages are the task config's system prompt and criteria prompt filled in; scores follow its
    `classifications` with SEA-HELM's case-sensitive last-tag parse, mean over criteria then over turns."""
    judge_cfg = raw_blocks[key]["judge"]
    classes = judge_cfg["classifications"]
    names = list(classes)
    multi = isinstance(judge_cfg["judge_prompts"]["criteria_prompt"], dict)
    crit = [[{"keyPointText": "c-first"}, {"keyPointText": "c-second"}], [{"keyPointText": "c-third"}]]
    severity = key == "syntax-criteria"  # LINDSEA's rows carry severities, and its metric weighs by them
    if severity:
        crit[0] = [dict(crit[0][0], severity="high"), dict(crit[0][1], severity="low"),
                   {"keyPointText": "c-gen", "severity": "generic"}]
    row = {"id": "q1", "prompts": [{"text": "Q one"}] + ([{"text": "Q two"}] if multi else []),
           "criteria": crit if multi else crit[0], "metadata": {"category": "writing"}}
    replies = {"c-first": f"<reflection>x</reflection><classification>{names[-1]}</classification>",
               "c-second": f"<classification>{names[-1]}</classification> then <classification>{names[0]}</classification>",
               "c-third": f"<classification>{names[-1].lower()}</classification>",  # lower case: unknown -> 0
               "c-gen": f"<classification>{names[-1]}</classification>"}
    judge = _ScriptedJudge(lambda text: next(v for k, v in replies.items() if k in text))
    tree = load_tree(str(tree_dir))
    spec = tree.spec(key)
    kind = get_kind(spec.kind)
    items = kind.make_items(spec, lang, [row])
    answers = ["A one", "A two"][: len(row["prompts"])]
    outs = [[TurnOutput(text=a, answer=a) for a in answers]]
    scores = kind.score(spec, lang, items, outs, _ctx(tmp_path, judge))
    turn1 = (classes[names[-1]] + classes[names[0]]) / 2
    expected = (turn1 + 0.0) / 2 if multi else turn1
    if severity:  # SEA-HELM: (10 x high + 1 x low) / 11, times the generic criteria's mean
        expected = (10 * classes[names[-1]] + classes[names[0]]) / 11 * classes[names[-1]]
    assert scores[0].score == pytest.approx(expected)
    # the first call, filled in by hand from the config's templates
    tmpl = judge_cfg["judge_prompts"]["criteria_prompt"]
    tmpl = tmpl["turn_1"] if multi else tmpl
    fields = {"transcript": "[User]\nQ one", "prompt": "Q one", "response": "A one", "keyPointText": "c-first"}
    assert judge.seen[0] == [{"role": "system", "content": judge_cfg["judge_prompts"]["system_prompt"]},
                             {"role": "user", "content": tmpl.format(**fields)}]
    if multi:
        want = judge_cfg["judge_prompts"]["criteria_prompt"]["turn_2"].format(
            transcript="[User]\nQ one\n\n[Assistant (fixed)]\nA one\n\n[User]\nQ two", response="A two",
            keyPointText="c-third")
        assert judge.seen[2][-1]["content"] == want


def test_default_set_runs_the_criteria_mt_bench_where_seahelm_does(tree_dir):
    """SEA-HELM's `seahelm` set has `mt-bench-judge` (criteria); sealion's own set follows it, not the legacy
    pairwise `mt-bench`."""
    from sealion.evaluate.tasks import task_sets

    theirs = yaml.safe_load(open(tree_dir / "seahelm_tasks" / "task_config.yaml", encoding="utf-8"))["seahelm"]
    ours = task_sets()["seahelm"]
    for lang, tasks in theirs.items():
        assert ("mt-bench-criteria" in ours[lang]) == ("mt-bench-judge" in tasks), lang
        assert "mt-bench" not in ours[lang]
        for judged in ("syntax-criteria", "kalahi-judge"):
            assert (judged in ours[lang]) == (judged in tasks), (lang, judged)


def test_sealion_specs_of_the_single_turn_criteria_judges(tmp_path):
    """Without a tree: kalahi-judge / syntax-criteria are one-turn criteria tasks judged with sealion's prompts."""
    from sealion.evaluate.mtbench.prompts import criteria_messages
    from sealion.evaluate.tasks import get_spec

    for name, lang in (("kalahi-judge", "tl"), ("syntax-criteria", "id")):
        spec = get_spec(name)
        kind = get_kind(spec.kind)
        row = {"id": "k1", "prompts": [{"text": "Sitwasyon X"}], "criteria": [{"keyPointText": "c-a"}, "c-b"]}
        items = kind.make_items(spec, lang, [row])
        judge = _ScriptedJudge(lambda text: "<classification>CLASS_EXACTLY_MET</classification>" if "c-a" in text
                               else "<classification>CLASS_UNMET</classification>")
        scores = kind.score(spec, lang, items, [[TurnOutput(text="ans", answer="ans")]], _ctx(tmp_path / name, judge))
        assert scores[0].score == pytest.approx(0.5)
        assert judge.seen[0] == criteria_messages(["Sitwasyon X"], ["ans"], 1, "c-a")


@pytest.mark.parametrize("backend", ["in-process", "http"])
def test_logprob_variant_scores_labels_by_prompt_logprobs(tree_dir, tiny_text_dir, tmp_path, raw_blocks, backend):
    """`sentiment-logprobs` as SEA-HELM runs it: the model's own text up to the answer tag, then the gold label after
    the template's separator; its log-prob (engine core, prompt_logprobs; or a real `sealion serve` on 127.0.0.1
    through vLLM's prompt_logprobs and /tokenize) equals a dense forward pass over prompt + generated text + label.
    The item scores exp of it, an answer that never reached the tag is null (0), and
    average_cumulative_probabilities = 100 x the mean; average_cumulative_logprobs is over non-null items."""
    import math
    import re

    import torch
    from transformers import AutoModelForCausalLM

    from sealion.engine import open_engine, prompting
    from sealion.evaluate.tasks import Item, ScoreContext

    tree = load_tree(str(tree_dir))
    spec = tree.spec("sentiment-logprobs")
    assert spec.kind == "logprob-choice" and spec.max_runs == 1 and kind_stops_at_tag(spec)
    kind = get_kind(spec.kind)
    tmpl = raw_blocks["sentiment"]["languages"]["id"]["prompt_template"]
    sep = re.search(r"\{answer_tag\}(.*)\{label\}", tmpl["answer_template"]).group(1)
    messages = [{"role": "user", "content": "Kalimat: bagus sekali"}]
    items = [Item(id=str(i), prompts=[{"text": "x"}], label=lab, metadata={}, extra={"_prompts": {0: [messages]}})
             for i, lab in enumerate(["Positif", "Netral", "Negatif"])]
    generated = [f"Sentimennya jelas. {tmpl['answer_tag']}", f"Hmm {tmpl['answer_tag']}", "tanpa tag"]
    outputs = [[TurnOutput(text=t, answer=t, finish_reason=r)] for t, r in zip(generated, ["stop", "stop", "length"])]
    local = open_engine(str(tiny_text_dir))
    srv = None
    if backend == "http":
        from sealion.serve import ServeConfig, ServerThread, create_app
        from sealion.serve.loading import load_for_serving

        model_and_tok = load_for_serving(str(tiny_text_dir), dtype="float32")
        srv = ServerThread(create_app(*model_and_tok, config=ServeConfig(model_name="tiny"))).start()
        engine = open_engine(srv.url)
    else:
        engine = local
    try:
        ctx = ScoreContext(run=0, seed=1, cache_dir=tmp_path, engine_factory=lambda ref: engine)
        scores = kind.score(spec, "id", items, outputs, ctx)
        prefix = list(prompting.chat_prompt(local.tokenizer, messages).ids)
        model = AutoModelForCausalLM.from_pretrained(str(tiny_text_dir), dtype=torch.float32).eval()
        ref = []
        for text, item in zip(generated[:2], items):
            response = local.tokenizer(text, add_special_tokens=False).input_ids
            answer = local.tokenizer(sep + item.label, add_special_tokens=False).input_ids
            ids = prefix + response + answer
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
            start = len(prefix) + len(response)
            ref.append(sum(float(logp[start + j - 1, t]) for j, t in enumerate(answer)))
    finally:
        if srv is not None:
            engine.close()
            srv.stop()
        local.close()
    for got, want in zip(scores[:2], ref):
        assert got.details["cumulative_logprob"] == pytest.approx(want, abs=2e-3)
        assert got.score == pytest.approx(math.exp(want), rel=2e-3)
    assert scores[2].score == 0.0 and scores[2].details["null"]
    m = kind.task_metrics(spec, "id", items, scores)
    assert m["average_cumulative_probabilities"] == pytest.approx(100 * (math.exp(ref[0]) + math.exp(ref[1])) / 3,
                                                                  rel=2e-3)
    assert m["average_cumulative_logprobs"] == pytest.approx((ref[0] + ref[1]) / 2, abs=2e-3)
    assert m["null_count"] == 1.0


def kind_stops_at_tag(spec) -> bool:
    return get_kind(spec.kind).stops_at_answer_tag


def test_logprob_variant_generates_up_to_the_answer_tag(tree_dir, tmp_path, raw_blocks):
    """SEA-HELM's first phase: the task's max_tokens, the answer tag as the only stop, kept in the text; the
    generative task keeps its own stops and drops the matched one."""
    tree = load_tree(str(tree_dir))
    runner = _runner(tree_dir, tmp_path)
    lc = raw_blocks["sentiment"]["languages"]["id"]
    row = {"id": "r0", "text": "Makanannya enak sekali.", "label": "Positif"}
    for key, tag_stop in (("sentiment-logprobs", True), ("sentiment", False)):
        spec = tree.spec(key)
        kind = get_kind(spec.kind)
        items = kind.make_items(spec, "id", [dict(row, prompts=[{"text": row["text"]}])])
        _, req = runner._request(Unit("id", spec, kind, items, [], 1), items[0], 0, [], seed=1)
        assert req.params.include_stop_str_in_output is tag_stop, key
        assert (req.params.stop == [lc["prompt_template"]["answer_tag"]]) is tag_stop, key
        assert req.params.max_new_tokens == lc["max_tokens"]
    # a base model's first phase stops at the tag too (then continue_past_answer_tag goes on)
    runner.base_model = True
    spec = tree.spec("sentiment")
    kind = get_kind(spec.kind)
    items = kind.make_items(spec, "id", [dict(row, prompts=[{"text": row["text"]}])])
    _, req = runner._request(Unit("id", spec, kind, items, [], 1), items[0], 0, [], seed=1)
    assert req.params.stop == [lc["prompt_template"]["answer_tag"]] and req.params.include_stop_str_in_output


def test_base_model_two_phase_decoding_continues_after_the_answer_tag(tiny_text_dir):
    """SEA-HELM's BaseModelInferenceStrategy: stop at the answer tag (kept), then continue from prompt + generated
    ids with the few-shot stops and the rest of max_tokens. Greedy, the joined answer is the one-pass greedy answer
    (the same tokens, computed in two requests); an answer that never reaches the tag is left as it is."""
    from sealion.engine import CompletionRequest, SamplingParams, open_engine
    from sealion.evaluate.runner import continue_past_answer_tag

    engine = open_engine(str(tiny_text_dir))
    try:
        prompt = "Pertanyaan: satu dua tiga"
        one = engine.complete([CompletionRequest(prompt, SamplingParams(max_new_tokens=12, temperature=0.0,
                                                                         stop=["\n\n"]))])[0]
        assert one.completion_tokens >= 6
        tag = engine.tokenizer.decode(one.token_ids[:3])
        assert one.text.startswith(tag)
        first = SamplingParams(max_new_tokens=12, temperature=0.0, stop=[tag], include_stop_str_in_output=True)
        never = SamplingParams(max_new_tokens=5, temperature=0.0, stop=["\u00a7never\u00a7"],
                               include_stop_str_in_output=True)
        reqs = [CompletionRequest(prompt, first), CompletionRequest(prompt, never)]
        phase1 = engine.complete(reqs)
        assert phase1[0].text == tag and phase1[0].finish_reason == "stop"
        joined = continue_past_answer_tag(engine, reqs, phase1, ["\n\n"])
    finally:
        engine.close()
    assert joined[0].text == one.text and joined[0].token_ids == one.token_ids
    assert joined[0].completion_tokens == one.completion_tokens and joined[0].finish_reason == one.finish_reason
    assert joined[1] == phase1[1] and joined[1].finish_reason == "length"

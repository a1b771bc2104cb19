"""SEA-HELM fidelity mode: prompts built from a SEA-HELM tree equal the prompts SEA-HELM's assembly gives.

The reference here is a small re-implementation of SEA-HELM's `generate_formatted_conversation` and of its
`base_model.jinja` layout, written in the test from the tree's own YAML (read with yaml, not with sealion's reader)."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import yaml

from sealion.evaluate import EvalConfig, run_eval
from sealion.evaluate.runner import Runner, Unit
from sealion.evaluate.seahelm_tree import load_tree
from sealion.evaluate.tasks import Item, TaskKind, get_kind




def _seahelm_set(tree_dir: Path, raw: dict) -> list[tuple[str, str]]:
    """(lang, task key) of the `seahelm` set, group names (thai_exam) expanded to their tasks."""
    sets = yaml.safe_load(open(tree_dir / "seahelm_tasks" / "task_config.yaml", encoding="utf-8"))
    pairs = []
    for lang, entries in sets["seahelm"].items():
        for e in entries:
            keys = [e] if e in raw else [k for k, b in raw.items() if b.get("aggregation_group") == e]
            pairs += [(lang, k) for k in keys if lang in raw[k]["languages"]]
    return pairs


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _row(template: str, i: int, turns: int = 1) -> dict:
    """A synthetic row with every field the template names; values carry braces, newlines and non-ASCII text."""
    prompts = [{f: f"{f} {i}.{t} {{kept}} ไทย\n  tail " for f in _fields(template) if f != "answer_tag"}
               for t in range(turns)]
    for p in prompts:
        p.setdefault("subject", "astronomy")
    return {"id": str(i), "prompts": prompts, "label": f"L{i % 3}", "metadata": {"subject": "astronomy"}}


def _item(row: dict) -> Item:
    return Item(id=row["id"], prompts=row["prompts"], label=row["label"], metadata=row["metadata"],
                extra={k: v for k, v in row.items() if k not in ("id", "prompts", "label", "metadata")})


def _expected(tmpl: dict, row: dict, examples: list[dict], turn: int = 0) -> list[str]:
    """SEA-HELM: examples as user/assistant pairs, then the user turn; the preamble in front of the first."""
    contents = []
    for ex in examples:
        contents.append(tmpl["task_template"].format(**ex["prompts"][0], answer_tag=tmpl["answer_tag"]))
        contents.append(tmpl["answer_template"].format(**ex, **ex["prompts"][0], answer_tag=tmpl["answer_tag"]))
    contents.append(tmpl["task_template"].format(**row["prompts"][turn]))
    contents[0] = (tmpl["preamble"].format(answer_tag=tmpl["answer_tag"]) + "\n\n" + contents[0]).strip()
    return contents


def _base_layout(contents: list[str]) -> str:
    """base_model.jinja: each message trimmed, joined by blank lines, a blank line for the generation prompt."""
    return "\n\n".join(c.strip() for c in contents) + "\n\n"


def _runner(tree_dir, tmp_path, base: bool) -> Runner:
    r = Runner(EvalConfig(model="unused", seahelm=str(tree_dir), out=str(tmp_path), temperature=0, progress=False))
    r.base_model = base
    return r


def test_prompts_byte_equal_for_every_seahelm_task_and_language(tree_dir, tmp_path, raw_blocks):
    raw = raw_blocks
    pairs = _seahelm_set(tree_dir, raw)
    assert len(pairs) >= 80 and ("th", "thai_exam_ic") in pairs and ("id", "syntax-criteria") in pairs
    tree = load_tree(str(tree_dir))
    instruct, base = _runner(tree_dir, tmp_path / "i", False), _runner(tree_dir, tmp_path / "b", True)
    checked = 0
    for lang, key in pairs:
        lc = raw[key]["languages"][lang]
        tmpl = lc["prompt_template"]
        assert all("${" not in str(v) for v in tmpl.values()), (key, lang)
        spec = tree.spec(key)
        kind = get_kind(spec.kind) if spec.kind else TaskKind()
        turns = 2 if key == "mt-bench-judge" else 1
        rows = [_row(tmpl["task_template"], i, turns) for i in range(7)]
        row, examples = rows[0], rows[1:6]
        unit = Unit(lang, spec, kind, [_item(row)], [_item(x) for x in rows[1:]], 1)
        payload, req = instruct._request(unit, unit.items[0], 0, [], seed=1)
        assert payload["messages"] == [{"role": "user", "content": _expected(tmpl, row, [])[0]}], (key, lang)
        assert req.params.max_new_tokens == lc["max_tokens"]
        if turns == 2:
            from sealion.evaluate.tasks import TurnOutput

            payload, _ = instruct._request(unit, unit.items[0], 1, [TurnOutput(text="a1", answer="a1")], seed=1)
            assert [m["content"] for m in payload["messages"]] == [
                _expected(tmpl, row, [])[0], "a1", _expected(tmpl, row, [], turn=1)[0]]
        n_shots = raw[key]["fewshot_num_examples"]["base"]
        if n_shots:
            payload, req = base._request(unit, unit.items[0], 0, [], seed=1)
            assert payload["prompt"] == _base_layout(_expected(tmpl, row, examples[:n_shots])), (key, lang)
            # SEA-HELM's base-model first phase stops at the answer tag (kept); the few-shot stop comes in phase 2
            tag = tmpl.get("answer_tag")
            assert req.params.stop == ([tag] if tag else ["\n\n"]), (key, lang)
            assert req.params.include_stop_str_in_output is bool(tag)
        checked += 1
    assert checked == len(pairs)


def test_global_mmlu_lite_real_rows_few_shot_from_the_same_subject(tree_dir, tmp_path, raw_blocks):
    """Real tree rows: 5-shot examples are the item's subject's first dev rows (SEA-HELM's Global-MMLU loader)."""
    d = tree_dir / "seahelm_tasks" / "knowledge" / "global_mmlu_lite"
    test_rows = [json.loads(x) for x in (d / "global_mmlu_lite_id_test.jsonl").read_text().splitlines()[:40]]
    dev_rows = [json.loads(x) for x in (d / "global_mmlu_lite_id_dev.jsonl").read_text().splitlines()]
    tmpl = raw_blocks["global_mmlu_lite"]["languages"]["id"]["prompt_template"]
    tree = load_tree(str(tree_dir))
    spec = tree.spec("global_mmlu_lite")
    runner = _runner(tree_dir, tmp_path, True)
    kind = get_kind(spec.kind)
    unit = Unit("id", spec, kind, kind.make_items(spec, "id", test_rows), kind.make_items(spec, "id", dev_rows), 1)
    subjects = set()
    for row, item in zip(test_rows, unit.items):
        want = row["prompts"][0]["subject"].lower()
        same = [x for x in dev_rows if x["metadata"]["subject"].lower() == want][:5]
        payload, _ = runner._request(unit, item, 0, [], seed=1)
        assert payload["prompt"] == _base_layout(_expected(tmpl, row, same))
        subjects.add(want)
    assert len(subjects) >= 2


def test_seahelm_set_and_groups_resolve_from_the_tree(tree_dir, raw_blocks):
    tree = load_tree(str(tree_dir))
    raw = raw_blocks
    plan = tree.resolve_plan(["seahelm"])
    assert sorted((lang, k) for lang, ks in plan.items() for k in ks) == sorted(_seahelm_set(tree_dir, raw))
    assert [k for k in plan["th"] if k.startswith("thai_exam")] == [
        "thai_exam_a_level", "thai_exam_ic", "thai_exam_onet", "thai_exam_tgat", "thai_exam_tpat1"]
    # sealion's set names map onto the tree's keys
    assert tree.resolve_plan(["seahelm-mini"], ["ms"]) == {"ms": ["belebele-qa-mc", "global_mmlu_lite"]}
    spec = tree.spec("translation-en-xx")
    assert spec.group == "translations" and spec.metric == "normalized_metricx_wmt24_scores"
    assert not tree.spec("if-eval").base_model  # constants.yaml: skipped for base models
    # LindseaJudgeMetric's severity weighting; the criteria judge of mt-bench-judge stays a plain mean
    assert tree.spec("syntax-criteria").options["criteria_weighting"] == "severity"
    assert "criteria_weighting" not in tree.spec("mt-bench-judge").options


def test_run_with_the_tree_writes_seahelm_prompts_and_says_so(tree_dir, tiny_text_dir, tmp_path, raw_blocks):
    res = run_eval(EvalConfig(model=str(tiny_text_dir), seahelm=str(tree_dir), tasks=["global_mmlu_lite"],
                              languages=["id"], runs=2, limit=2, max_tokens=4, out=str(tmp_path / "r"),
                              progress=False))
    assert res["prompts"]["source"] == "seahelm"
    entry = res["results"]["id"]["knowledge"]["global_mmlu_lite"]
    assert entry["n_items"] == 2 and entry["n_runs"] == 2 and not entry["incomplete"]
    tmpl = raw_blocks["global_mmlu_lite"]["languages"]["id"]["prompt_template"]
    rows = (tree_dir / "seahelm_tasks/knowledge/global_mmlu_lite/global_mmlu_lite_id_test.jsonl").read_text()
    first = json.loads(rows.splitlines()[0])
    out = [json.loads(x) for x in (tmp_path / "r/runs/run_0/id/global_mmlu_lite.jsonl").read_text().splitlines()]
    assert out[0]["prompt"][0] == [{"role": "user", "content": _expected(tmpl, first, [])[0]}]
    saved = json.loads((tmp_path / "r/results.json").read_text())
    assert saved["prompts"]["source"] == "seahelm" and "sea_average" in saved


def test_bad_tree_path_is_one_clear_error(tmp_path):
    from sealion.errors import ConfigError

    with pytest.raises(ConfigError, match="task_config.yaml"):
        load_tree(str(tmp_path))

"""Suites added to SEA-HELM since v1, run from the SEA-HELM tree (../shared/data/seahelm-head): SEA Safeguard,
the criteria judges and the logprob variants. Expected values come from the tree's own files read with yaml/json
here, and from SEA-HELM's formulas written out in the test."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest
import yaml

from sealion.evaluate import EvalConfig, run_eval
from sealion.evaluate.runner import Runner, Unit
from sealion.evaluate.seahelm_tree import load_tree
from sealion.evaluate.tasks import TurnOutput, get_kind


@pytest.fixture(scope="module")
def tree_dir(shared_dir) -> Path:
    d = shared_dir / "data" / "seahelm-head"
    if not (d / "seahelm_tasks" / "task_config.yaml").is_file():
        pytest.skip("../shared/data/seahelm-head is absent")
    return d


def _raw(tree_dir: Path) -> dict[str, dict]:
    blocks = {}
    for f in glob.glob(f"{tree_dir}/seahelm_tasks/**/config.yaml", recursive=True):
        for key, block in (yaml.safe_load(open(f, encoding="utf-8")) or {}).items():
            if isinstance(block, dict) and isinstance(block.get("languages"), dict):
                blocks[key] = block
    return blocks


def _rows(tree_dir: Path, rel: str, n: int) -> list[dict]:
    return [json.loads(x) for x in (tree_dir / rel).read_text(encoding="utf-8").splitlines()[:n]]


def _runner(tree_dir, tmp_path) -> Runner:
    r = Runner(EvalConfig(model="unused", seahelm=str(tree_dir), out=str(tmp_path), temperature=0, progress=False))
    r.base_model = False
    return r


SAFEGUARD = ["safeguard_cultural_content_generation_prompt", "safeguard_cultural_content_generation_response",
             "safeguard_cultural_in_the_wild", "safeguard_general_prompt", "safeguard_general_response"]


def test_safeguard_prompts_and_golds_from_the_tree(tree_dir, tmp_path):
    """Every sea_safeguard task x language: the prompt is SEA-HELM's assembly of the real first rows, and the gold is
    the field the task's answer template shows (prompt_label / response_label / label)."""
    raw = _raw(tree_dir)
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

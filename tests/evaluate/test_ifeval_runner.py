"""if-eval through the `sealion eval` runner on a tiny random model: runs x seeds, bootstrap, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealion.evaluate import EvalConfig, run_eval

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "seahelm-v1"


def test_if_eval_in_the_runner(tiny_text_dir, tmp_path):
    if not (DATA / "instruction_following").is_dir():
        pytest.skip("../shared data absent")
    cfg = EvalConfig(model=str(tiny_text_dir), tasks=["if-eval"], languages=["id", "th"], data=str(DATA), runs=2,
                     limit=3, max_tokens=4, out=str(tmp_path / "r"), progress=False)
    res = run_eval(cfg)
    for lang in ("id", "th"):
        e = res["results"][lang]["instruction-following"]["if-eval"]
        assert e["metric"] == "overall_lang_normalized_acc" and e["n_runs"] == 2 and e["n_items"] == 3
        assert 0.0 <= e["mean"] <= 100.0 and e["stderr"] >= 0.0
        assert {"correct_language_rate", "strict_prompt_acc", "loose_prompt_acc"} <= set(e["metrics"])
        extras = e["extras"][0] if isinstance(e["extras"], list) else e["extras"]
        assert any(k.startswith("instruction:") for k in extras)  # per-instruction breakdown
    rows = [json.loads(x) for x in (tmp_path / "r/runs/run_1/th/if-eval.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    assert rows[0]["prompt"][0][0]["content"].startswith("ฉันเป็นวิศวกรซอฟต์แวร์")  # the prompt verbatim
    assert {"strict", "loose", "language_ok", "detected_language"} <= set(rows[0]["details"])
    assert "| id | instruction-following | if-eval |" in (tmp_path / "r/results.md").read_text()


def test_chat_only_task_on_a_model_without_chat_template(tiny_gemma3_dir, tmp_path):
    """A model without a chat template is a base model, and SEA-HELM skips if-eval for base models; when if-eval is
    all that was asked for, it runs zero-shot through sealion's chat format instead (with a note), unless the user
    forces --base-model."""
    if not (DATA / "instruction_following").is_dir():
        pytest.skip("../shared data absent")
    from sealion.errors import ConfigError

    kw = dict(model=str(tiny_gemma3_dir), tasks=["if-eval"], languages=["id"], data=str(DATA), runs=1, limit=2,
              max_tokens=4, progress=False)
    res = run_eval(EvalConfig(out=str(tmp_path / "auto"), **kw))
    assert res["mode"] == "instruct (0-shot)"
    assert res["results"]["id"]["instruction-following"]["if-eval"]["n_items"] == 2
    assert any("needs chat prompts" in n for n in res["notes"])
    assert not any("skipped for base models" in n or "evaluated as a base model" in n for n in res["notes"])
    row = json.loads((tmp_path / "auto/runs/run_0/id/if-eval.jsonl").read_text().splitlines()[0])
    assert row["prompt"][0][0]["role"] == "user"  # a chat turn, not a few-shot completion prompt
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        run_eval(EvalConfig(out=str(tmp_path / "forced"), base_model=True, **kw))

"""Smoke run: the demo model (in-process) as the judge, both judging modes. The demo model is a small
pretrained model, so most verdicts are malformed; the run must still finish with every failure recorded."""

from __future__ import annotations

import pytest

from sealion.evaluate.tasks import ScoreContext, TurnOutput, get_kind, get_spec


@pytest.fixture(scope="module")
def demo_engine():
    from sealion.engine import open_engine

    engine = open_engine("demo")
    yield engine
    engine.close()


def _items(spec, kind):
    """One short two-turn question with a short baseline (long real rows make CPU judging slow)."""
    rows = [{
        "question_id": 1, "metadata": {"language": "id", "category": "writing"}, "references": None,
        "prompts": [{"text": "Tulis satu kalimat tentang kucing."}, {"text": "Sekarang tulis tentang anjing."}],
        "baselines": {"gpt-3.5-turbo-0125": ["Kucing suka tidur di bawah matahari.", "Anjing adalah sahabat manusia."]},
    }]
    return kind.make_items(spec, "id", rows)


@pytest.mark.demo
@pytest.mark.parametrize("task", ["mt-bench", "mt-bench-criteria"])
def test_demo_model_as_judge(demo_engine, tmp_path, task):
    spec = get_spec(task)
    kind = get_kind(spec.kind)
    items = _items(spec, kind)
    outputs = [[TurnOutput(text="Baik, ini jawabannya.", answer="Baik, ini jawabannya."),
                TurnOutput(text="Ini revisinya.", answer="Ini revisinya.")] for _ in items]
    ctx = ScoreContext(run=0, seed=25008113, cache_dir=tmp_path, engine_factory=lambda ref: demo_engine,
                       options={"judge": "demo", "judge_max_tokens": 24})
    scores = kind.score(spec, "id", items, outputs, ctx)
    assert len(scores) == len(items)
    m = kind.task_metrics(spec, "id", items, scores)
    assert 0.0 <= m[spec.metric] <= 100.0
    for s in scores:
        assert len(s.details["turns"]) == 2
        if task == "mt-bench":
            assert all(t["verdict"] in ("win", "lose", "tie", "error") for t in s.details["turns"])
            for t in s.details["turns"]:
                for o in t["orders"]:
                    assert (o["label"] is None) == bool(o["error"])  # every unparsed verdict says why
        else:
            assert len(s.details["turns"][0]["criteria"]) == 3 and len(s.details["turns"][1]["criteria"]) == 4
    # verdicts were cached: a second scoring makes no judge calls
    cache_file = tmp_path / "judge" / f"{task}_id.jsonl"
    assert cache_file.exists() and cache_file.read_text().strip()
    again = kind.score(spec, "id", items, outputs, ctx)
    assert [s.score for s in again] == [s.score for s in scores]
    flat = [o for s in again for t in s.details["turns"] for o in t.get("orders", t.get("criteria", []))]
    assert all(o["cached"] for o in flat)

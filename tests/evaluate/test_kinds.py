"""Scoring and aggregation of the built-in kinds on hand-made responses."""

from pathlib import Path

import pytest

from sealion.evaluate.tasks import Item, ScoreContext, TurnOutput, all_specs, get_kind


def _ctx(tmp_path: Path) -> ScoreContext:
    return ScoreContext(run=0, seed=1, cache_dir=tmp_path)


def _out(text: str) -> list[TurnOutput]:
    return [TurnOutput(text=text, answer=text)]


def test_choice_scoring_and_balanced_accuracy(tmp_path):
    spec = all_specs()["sentiment"]
    kind = get_kind("choice")
    items = [Item(str(i), [{"text": "x"}], lab) for i, lab in enumerate(["Positif", "Positif", "Positif", "Negatif"])]
    outs = [_out("Jawaban: Positif"), _out("Jawaban: **positif**"), _out("tidak tahu"), _out("Negatif")]
    scores = kind.score(spec, "id", items, outs, _ctx(tmp_path))
    assert [s.score for s in scores] == [1.0, 1.0, 0.0, 1.0]
    assert [s.extracted for s in scores] == ["Positif", "Positif", None, "Negatif"]
    m = kind.task_metrics(spec, "id", items, scores)
    # recall Positif 2/3, Negatif 1 -> 5/6; 2 gold labels -> (5/6 - 1/2) / (1/2) = 2/3
    assert m["normalized_accuracy"] == pytest.approx(200 / 3)
    assert m["null_count"] == 1


def test_minimal_pairs_macro_over_phenomena(tmp_path):
    spec = all_specs()["mp-r"]
    kind = get_kind(spec.kind)
    items = [Item("0", [{}], "A", {"linguistic_phenomenon": "p1"}), Item("1", [{}], "B", {"linguistic_phenomenon": "p1"}),
             Item("2", [{}], "A", {"linguistic_phenomenon": "p2"}), Item("3", [{}], "B", {"linguistic_phenomenon": "p2"}),
             Item("4", [{}], "B", {"linguistic_phenomenon": "p2"}), Item("5", [{}], "A", {"linguistic_phenomenon": "p2"})]
    outs = [_out("Jawaban: A"), _out("Jawaban: B"), _out("Jawaban: A"), _out("Jawaban: A"), _out("Jawaban: A"),
            _out("jawaban: a")]  # case-sensitive for LINDSEA: the last is null
    scores = kind.score(spec, "id", items, outs, _ctx(tmp_path))
    assert [s.score for s in scores] == [1, 1, 1, 0, 0, 0]
    # p1 acc 1.0, p2 acc 0.25 -> macro 0.625 -> (0.625 - 0.5) / 0.5 = 0.25
    assert kind.task_metrics(spec, "id", items, scores)["normalized_accuracy"] == pytest.approx(25.0)


def test_extractive_qa_thai(tmp_path):
    spec = all_specs()["qa"]
    kind = get_kind(spec.kind)
    items = [Item("0", [{}], "พรรคแรงงาน"), Item("1", [{}], ["x"])]
    scores = kind.score(spec, "th", items, [_out("คำตอบ: พรรคแรงงานออสเตรเลีย\nเพราะ..."), _out("")], _ctx(tmp_path))
    assert scores[0].extracted == "พรรคแรงงานออสเตรเลีย" and scores[0].score == pytest.approx(0.8)
    assert scores[1].score == 0.0 and scores[1].extracted is None
    assert kind.task_metrics(spec, "th", items, scores)["normalized_f1"] == pytest.approx(40.0)


def test_summarization_burmese(tmp_path):
    spec = all_specs()["abssum"]
    kind = get_kind(spec.kind)
    items = [Item("0", [{}], "မြန်မာစာ")]
    scores = kind.score(spec, "my", items, [_out("အကျဉ်းချုပ်- မြန်မာ\nနောက်စာကြောင်း")], _ctx(tmp_path))
    assert scores[0].extracted == "မြန်မာ" and scores[0].score == pytest.approx(0.8)


def test_translation_chrf_when_metricx_absent(tmp_path):
    spec = all_specs()["translation-en-xx"]
    kind = get_kind(spec.kind)
    items = [Item("0", [{"text": "I like fruit."}], "ฉันชอบกินผลไม้"), Item("1", [{"text": "Nice."}], "วันนี้อากาศดี")]
    outs = [_out("คำแปล: ฉันชอบกินผลไม้"), _out("no tag here")]
    scores = kind.score(spec, "th", items, outs, _ctx(tmp_path))
    assert scores[0].score == pytest.approx(1.0) and scores[1].extracted == "no tag here"
    m = kind.task_metrics(spec, "th", items, scores)
    assert "MetricX-24 skipped" in m["metric_used"] and 0 < m["score"] == m["chrf++"] < 100

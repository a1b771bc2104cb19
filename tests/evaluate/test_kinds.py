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
            _out("jawaban: a")]  # case-sensitive tag search for LINDSEA: the last is null
    scores = kind.score(spec, "id", items, outs, _ctx(tmp_path))
    assert [s.score for s in scores] == [1, 1, 1, 0, 0, 0]
    m = kind.task_metrics(spec, "id", items, scores)
    # per run (SEA-HELM's MinimalPairsMetric): p1 acc 1.0, p2 acc 0.25 -> macro 0.625 -> (0.625 - 0.5) / 0.5
    assert m["phenomenon_normalized_accuracy"] == pytest.approx(25.0)
    # leaderboard: recall A 2/3, B 1/3 -> balanced 0.5 -> 0
    assert m["normalized_accuracy"] == pytest.approx(0.0)


def _mp_items(labels, phenomena):
    return [Item(str(i), [{}], lab, {"linguistic_phenomenon": ph}) for i, (lab, ph) in enumerate(zip(labels, phenomena))]


def test_mp_r_leaderboard_and_per_run_values(tmp_path):
    """The issue's example: (A,1),(A,1),(B,0),(B,1) -> leaderboard 50.00 (balanced over A/B), per run 66.67."""
    spec = all_specs()["mp-r"]
    kind = get_kind(spec.kind)
    items = _mp_items(["A", "A", "B", "B"], ["p1", "p1", "p1", "p2"])
    outs = [_out("Jawaban: A"), _out("Jawaban: A"), _out("Jawaban: A"), _out("Jawaban: B")]
    m = kind.task_metrics(spec, "id", items, kind.score(spec, "id", items, outs, _ctx(tmp_path)))
    assert m["normalized_accuracy"] == pytest.approx(50.0)
    assert m["phenomenon_normalized_accuracy"] == pytest.approx(200 / 3)  # p1 2/3, p2 1 -> 5/6 -> 66.67
    assert m["degenerate_slice"] == 0.0


def test_mp_r_one_gold_class_does_not_crash(tmp_path):
    """`--limit 2` on id mp-r: both rows are B (chance 1/1)."""
    spec = all_specs()["mp-r"]
    kind = get_kind(spec.kind)
    items = _mp_items(["B", "B"], ["p1", "p2"])
    scores = kind.score(spec, "id", items, [_out("Jawaban: B"), _out("Jawaban: A")], _ctx(tmp_path))
    assert [s.extracted for s in scores] == ["B", None]  # A is no gold label of this slice
    m = kind.task_metrics(spec, "id", items, scores)
    assert m["normalized_accuracy"] == pytest.approx(50.0) and m["phenomenon_normalized_accuracy"] == pytest.approx(50.0)
    assert m["degenerate_slice"] == 1.0


def test_pragmatics_chance_is_one_over_gold_labels(tmp_path):
    """The issue's example: golds Benar/Salah/Ya/Tidak correct [1,1,1,0] -> 66.67; with pair at 0 the group is
    33.33 (SEA-HELM's leaderboard), not 25.00 (chance fixed at 0.5)."""
    from sealion.evaluate.metrics import pragmatics_per_run

    single, pair = all_specs()["pragmatic-single"], all_specs()["pragmatic-pair"]
    kind = get_kind(single.kind)
    items = _mp_items(["Benar", "Salah", "Ya", "Tidak"], ["scalar_implicatures"] * 2 + ["presuppositions"] * 2)
    outs = [_out("Jawaban: Benar"), _out("Jawaban: Salah"), _out("Jawaban: Ya"), _out("Jawaban: Ya")]
    m1 = kind.task_metrics(single, "id", items, kind.score(single, "id", items, outs, _ctx(tmp_path)))
    assert m1["normalized_accuracy"] == pytest.approx(200 / 3)
    pitems = _mp_items(["Benar", "Salah"], ["presuppositions"] * 2)
    m2 = kind.task_metrics(pair, "id", pitems, kind.score(pair, "id", pitems, [_out("Salah"), _out("Benar")], _ctx(tmp_path)))
    assert m2["normalized_accuracy"] == 0.0
    assert (m1["normalized_accuracy"] + m2["normalized_accuracy"]) / 2 == pytest.approx(100 / 3)
    # SEA-HELM's per-run number: scalar 2/2, presupposition 1/4 pooled -> mean 0.625 -> (0.625 - 0.5) / 0.5
    assert m1["correct:presuppositions"] == 1 and m2["total:presuppositions"] == 2
    assert pragmatics_per_run([m1, m2]) == pytest.approx(25.0)


def test_tamil_pragmatics_uses_the_gold_label_set(tmp_path):
    spec = all_specs()["pragmatic-single"]
    kind = get_kind(spec.kind)
    items = _mp_items(["பொய்", "உண்மை"], ["scalar_implicatures"] * 2)
    scores = kind.score(spec, "ta", items, [_out("பதில்: பொய்ஆம்"), _out("பதில்: ஆம்")], _ctx(tmp_path))
    assert [s.extracted for s in scores] == ["பொய்", None] and scores[0].score == 1.0


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


BURMESE = ["က", "ခ", "ဂ", "ဃ"]


@pytest.mark.parametrize("task,n", [("causal", 2), ("nli", 3), ("belebele-qa-mc", 4), ("global-mmlu-lite", 4)])
def test_burmese_tasks_use_burmese_answer_letters(task, n, tmp_path):
    """SEA-HELM's my prompts ask for က/ခ/ဂ/ဃ and its data labels use them; a Latin-letter spec scored every item 0."""
    spec = all_specs()[task]
    ls = spec.lang("my")
    assert ls.labels == BURMESE[:n]
    kind = get_kind(spec.kind)
    prompt = kind.user_turns(spec, "my", Item("0", [{k: "x" for k in (
        "premise", "question_translated", "choice1", "choice2", "choice3", "choice4", "sentence1", "sentence2", "text",
        "question", "subject", "option_a", "option_b", "option_c", "option_d")}], BURMESE[0]))[0]
    assert all(letter in prompt for letter in BURMESE[:n]) and " A: " not in prompt and "\nA:" not in prompt
    # raw labels (v1 numbers, Latin letters, Burmese letters) all become the Burmese letter
    from sealion.evaluate.tasks import map_label

    assert map_label(BURMESE[n - 1], ls) == BURMESE[n - 1]
    if task != "global-mmlu-lite":
        assert map_label("ABCD"[n - 1], ls) == BURMESE[n - 1]
    items = [Item(str(i), [{}], BURMESE[i]) for i in range(n)]
    scores = kind.score(spec, "my", items, [_out(f"အဖြေ- {BURMESE[i]}") for i in range(n)], _ctx(tmp_path))
    assert [s.score for s in scores] == [1.0] * n


def test_burmese_local_data_labels():
    root = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    gm = root / "global-mmlu-lite" / "global_mmlu_lite_my_test.jsonl"
    if not gm.exists():
        pytest.skip("../shared/data absent")
    import json

    labels = {json.loads(line)["label"] for line in gm.read_text(encoding="utf-8").splitlines() if line.strip()}
    assert labels == set(BURMESE) == set(all_specs()["global-mmlu-lite"].lang("my").labels)

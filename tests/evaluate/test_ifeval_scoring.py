"""SEA-IFEval scoring: language normalisation, skipped items, strict/loose metrics, the task kind on real rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealion.evaluate.ifeval.checkers import CHECKERS
from sealion.evaluate.ifeval.scoring import IFEvalItem, metrics_from_details, score_items, subcategory_metrics
from sealion.evaluate.tasks import ItemScore, ScoreContext, TurnOutput, get_kind, get_spec

SHARED = Path(__file__).resolve().parents[3] / "shared"
IFEVAL = SHARED / "data/seahelm-v1/instruction_following/ifeval/data"


def _rows(lang: str) -> list[dict]:
    path = IFEVAL / f"{lang}_sea_ifeval.jsonl"
    if not path.exists():
        pytest.skip("../shared data absent")
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_language_normalisation_and_metrics_by_hand():
    items = [
        IFEvalItem("p", ["keywords:existence"], [{"keywords": ["nasi"]}], "id", "keywords"),
        IFEvalItem("p", ["keywords:existence"], [{"keywords": ["rice"]}], "id", "keywords"),  # right but English
        IFEvalItem("p", ["startend:quotation"], [{}], "id", "startend"),
        IFEvalItem("p", ["language:response_language"], [{"response_language": "th"}], "id", "language"),
        IFEvalItem("p", ["startend:quotation"], [{}], "id", "startend"),
    ]
    responses = [
        "Saya suka makan nasi goreng setiap pagi bersama keluarga.",
        "I like to eat rice every morning with my family.",
        "Berikut jawabannya:\n\"Saya suka makan nasi goreng setiap pagi.\"",  # loose pass only
        "ฉันชอบกินข้าวผัดทุกเช้ากับครอบครัว",  # expected language is th (from the instruction)
        "",
    ]
    res = score_items(items, responses)
    assert [r.strict_pass for r in res] == [True, True, False, True, False]
    assert [r.loose_pass for r in res] == [True, True, True, True, False]
    assert [r.language_ok for r in res] == [True, False, True, True, False]
    assert res[3].expected_language == "th"
    m = metrics_from_details([r.to_details() for r in res])
    assert m["overall_lang_normalized_acc"] == pytest.approx(40.0)  # items 0 and 3
    assert m["strict_prompt_acc"] == pytest.approx(60.0)
    assert m["loose_lang_normalized_acc"] == pytest.approx(60.0)
    assert m["correct_language_rate"] == pytest.approx(60.0)
    assert m["category:keywords"] == pytest.approx(50.0)
    assert m["category:startend"] == pytest.approx(0.0)
    assert m["category:language"] == pytest.approx(100.0)


def test_thai_word_count_items_are_skipped():
    items = [IFEvalItem("p", ["length_constraints:number_words"], [{"relation": "at least", "num_words": 2}], "th"),
             IFEvalItem("p", ["keywords:existence"], [{"keywords": ["ข้าว"]}], "th")]
    res = score_items(items, ["ฉันชอบกินข้าว", "ฉันชอบกินข้าว"])
    assert res[0].skipped and not res[1].skipped
    m = metrics_from_details([r.to_details() for r in res])
    assert m["n_scored"] == 1 and m["n_skipped"] == 1
    assert m["overall_lang_normalized_acc"] == pytest.approx(100.0)
    assert subcategory_metrics([r.to_details() for r in res]) == {"instruction:keywords:existence": 100.0}


@pytest.mark.parametrize("lang", ["en", "id", "vi", "th", "tl", "jv", "su"])
def test_every_instruction_in_the_data_has_a_checker(lang):
    rows = _rows(lang)
    ids = {r["metadata"]["subcategory"] for r in rows}
    assert len(ids) == 21
    assert ids <= set(CHECKERS), ids - set(CHECKERS)


def test_kind_scores_real_rows_end_to_end():
    rows = _rows("th")
    spec = get_spec("if-eval")
    kind = get_kind(spec.kind)
    items = kind.make_items(spec, "th", rows)
    turns = [kind.user_turns(spec, "th", it) for it in items]
    assert turns[0] == [rows[0]["prompts"][0]["text"]]  # the prompt verbatim, no preamble
    # A response that repeats the prompt-to-repeat and then answers in Thai passes the first item.
    first = items[0]
    assert first.metadata["subcategory"] == "combination:repeat_prompt"
    good = first.extra["kwargs"][0]["prompt_to_repeat"] + "\nได้เลยครับ นี่คือเรซูเม่ของคุณ"
    outputs = [[TurnOutput(text=good, answer=good)]] + [[TurnOutput(text="Hello world", answer="Hello world")]] * (len(items) - 1)
    scores = kind.score(spec, "th", items, outputs, ScoreContext(run=0, seed=1, cache_dir=Path("/tmp")))
    assert scores[0].score == 1.0 and scores[0].details["language_ok"]
    assert all(s.score in (0.0, None) for s in scores[1:])
    skipped = [s for s in scores if s.score is None]
    assert len(skipped) == 5 and all(s.details["subcategories"] == ["length_constraints:number_words"] for s in skipped)
    m = kind.task_metrics(spec, "th", items, scores)
    assert m[spec.metric] == pytest.approx(100.0 / 100)
    assert m["correct_language_rate"] == pytest.approx(1.0)
    assert isinstance(scores[0], ItemScore)


def test_malformed_row_fails_its_item_not_the_run():
    items = [IFEvalItem("p", ["keywords:frequency"], [{"keyword": "nasi"}], "id"),  # no relation/frequency
             IFEvalItem("p", ["no:such_instruction"], [{}], "id")]
    res = score_items(items, ["Saya makan nasi goreng setiap pagi.", "Saya makan nasi goreng setiap pagi."])
    assert [r.strict_pass for r in res] == [False, False]
    assert all(r.to_details()["errors"] for r in res)

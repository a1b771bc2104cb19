"""SEA-MT-Bench verdict parsing and aggregation, by hand."""

from __future__ import annotations

import pytest

from sealion.evaluate.mtbench.prompts import criteria_messages, pairwise_messages
from sealion.evaluate.mtbench.scoring import (ERROR, LOSE, TIE, WIN, combine_orders, criteria_item_score,
                                              criteria_metrics, model_view, pairwise_metrics, parse_criteria,
                                              parse_pairwise, severity_scores)


def test_parse_pairwise_needs_exactly_one_label():
    assert parse_pairwise("B is more accurate.\n[[B]]") == "B"
    assert parse_pairwise("[[C]]") == "C"
    assert parse_pairwise("[[A]] ... final: [[A]]") == "A"  # repeated, still one label
    assert parse_pairwise("[[A]] or maybe [[B]]") is None
    assert parse_pairwise("Assistant A is better.") is None
    assert parse_pairwise("") is None and parse_pairwise(None) is None


def test_model_view_and_order_combination():
    assert model_view("A", "A") == WIN and model_view("A", "B") == LOSE
    assert model_view("B", "B") == WIN and model_view("C", "A") == TIE
    assert model_view(None, "A") == ERROR
    assert combine_orders(WIN, WIN) == WIN
    assert combine_orders(LOSE, LOSE) == LOSE
    assert combine_orders(WIN, LOSE) == TIE  # position bias: disagreement is a tie
    assert combine_orders(ERROR, WIN) == TIE
    assert combine_orders(ERROR, ERROR) == ERROR


def test_weighted_win_rate_is_mean_of_category_rates():
    details = [
        {"category": "math", "turns": [{"verdict": WIN}, {"verdict": WIN}]},
        {"category": "math", "turns": [{"verdict": WIN}, {"verdict": LOSE}]},
        {"category": "writing", "turns": [{"verdict": TIE}, {"verdict": ERROR}]},
    ]
    m = pairwise_metrics(details)
    # math: 3/4 = .75, writing: (.5 + 0)/2 = .25 -> weighted .5; unweighted 3.5/6
    assert m["weighted_win_rate"] == pytest.approx(50.0)
    assert m["win_rate"] == pytest.approx(100 * 3.5 / 6)
    assert m["category:math"] == pytest.approx(75.0)
    assert m["judge_errors"] == 1 and m["ties"] == 1 and m["wins"] == 3 and m["losses"] == 1


def test_parse_criteria_five_classes_last_tag_wins():
    assert parse_criteria("<classification>CLASS_EXACTLY_MET</classification>") == (1.0, "CLASS_EXACTLY_MET")
    assert parse_criteria("<reflection>x</reflection><classification> class_majorly_met </classification>") == (0.75, "CLASS_MAJORLY_MET")
    text = "<classification>CLASS_UNMET</classification> on reflection <classification>CLASS_MODERATELY_MET</classification>"
    assert parse_criteria(text) == (0.5, "CLASS_MODERATELY_MET")
    assert parse_criteria("CLASS_EXACTLY_MET") == (0.0, None)  # no tag
    assert parse_criteria("<classification>CLASS_GREAT</classification>") == (0.0, None)


def test_criteria_mean_over_criteria_then_turns():
    assert criteria_item_score([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0, 0.0]]) == pytest.approx((0.5 + 0.75) / 2)
    details = [
        {"category": "math", "turns": [{"scores": [1.0, 1.0], "errors": 0}, {"scores": [0.5, 0.5], "errors": 0}]},
        {"category": "stem", "turns": [{"scores": [0.0, 0.25], "errors": 1}, {"scores": [0.25], "errors": 0}]},
    ]
    m = criteria_metrics(details)
    assert m["average_criteria_score"] == pytest.approx(100 * (0.75 + 0.1875) / 2)
    assert m["turn1_score"] == pytest.approx(100 * (1.0 + 0.125) / 2)
    assert m["category:stem"] == pytest.approx(18.75)
    assert m["judge_errors"] == 1


def test_prompts_place_answers_and_reference():
    msgs = pairwise_messages(["Q1", "Q2"], ["a1", "a2"], ["b1", "b2"], 2, reference="REF")
    assert msgs[0]["role"] == "system" and "[[C]]" in msgs[0]["content"]
    user = msgs[1]["content"]
    assert user.index("[Assistant A] a1") < user.index("[Assistant A] a2") < user.index("[Assistant B] b1")
    assert "<reference_answer>\nREF" in user and "SECOND message" in user
    single = pairwise_messages(["Q1", "Q2"], ["a1", "a2"], ["b1", "b2"], 1)[1]["content"]
    assert "a2" not in single and "reference" not in single
    crit = criteria_messages(["Q1", "Q2"], ["a1", "a2"], 2, "Is it polite?")[1]["content"]
    assert "[Assistant - to evaluate] a2" in crit and "context only] a1" in crit and "Is it polite?" in crit


# SEA-HELM's LindseaJudgeMetric (syntax-criteria), its formula applied by hand: specific criteria weighted
# high 10 / medium 5 / low 1, generic ones 1, overall = criteria_score x generic_score.

def test_severity_weighted_product_as_seahelm_computes_it():
    overall, specific, generic = severity_scores(["high", "medium", "low", "generic", "generic"], [1, 0, 1, 1, 0])
    assert specific == pytest.approx(11 / 16) and generic == pytest.approx(0.5)
    assert overall == pytest.approx(11 / 32)
    assert severity_scores(["High", "bogus"], [1, 0])[1] == pytest.approx(10 / 11)  # case-folded; unknown weighs 1
    assert severity_scores(["high", "low"], [1, 1])[0] == 0.0  # no generic criterion: SEA-HELM's product is 0


def test_severity_pairing_follows_seahelm_string_sorted_reply_ids():
    """Past ten criteria SEA-HELM pairs replies sorted as criteria0, criteria1, criteria10, criteria11, criteria2...
    with the criteria in row order: criterion 11's "met" lands on criterion 3 (low), criterion 11 (high) gets
    criterion 9's "unmet"."""
    severities = ["generic"] + ["low"] * 10 + ["high"]
    scores = [1.0] + [0.0] * 10 + [1.0]
    overall, specific, generic = severity_scores(severities, scores)
    assert generic == 1.0 and specific == pytest.approx(1 / 20) and overall == pytest.approx(0.05)


def test_severity_metrics_average_items_and_report_both_factors():
    def item(category, severities, scores):
        return {"category": category, "weighting": "severity",
                "turns": [{"turn": 1, "scores": scores, "severities": severities, "errors": 0}]}

    details = [item("np", ["high", "generic"], [1.0, 1.0]), item("np", ["high", "low", "generic"], [0.0, 1.0, 1.0]),
               item("vp", ["medium", "generic", "generic"], [1.0, 1.0, 0.0])]
    m = criteria_metrics(details)
    # items: 1 x 1 = 1; (1/11) x 1; 1 x 0.5
    assert m["average_criteria_score"] == pytest.approx(100 * (1 + 1 / 11 + 0.5) / 3)
    assert m["category:np"] == pytest.approx(100 * (1 + 1 / 11) / 2) and m["category:vp"] == pytest.approx(50.0)
    assert m["criteria_score"] == pytest.approx(100 * (1 + 1 / 11 + 1) / 3)
    assert m["generic_score"] == pytest.approx(100 * (1 + 1 + 0.5) / 3)

"""The leaderboard's aggregation, against SEA-HELM's formulas recomputed here with plain loops and `statistics`."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from sealion.evaluate.aggregate import TaskRuns, aggregate, is_multiple_choice

SEED = 94370244


def _stderr(xs):
    return math.sqrt(statistics.variance(xs) / len(xs))


def _balanced(labels, correct):
    per_class = {}
    for lab, c in zip(labels, correct):
        per_class.setdefault(lab, []).append(1.0 if c else 0.0)
    return sum(sum(v) / len(v) for v in per_class.values()) / len(per_class)


def _reference(tasks, n_boot=30, seed=SEED, raw=False):
    """SEA-HELM's notebook: one generator, tasks in order; per replicate each question takes one run's score.
    raw: the balanced accuracy before chance normalisation (the leaderboard's raw column)."""
    gen = np.random.default_rng(seed)
    out = {}
    for t in tasks:
        runs = [r for r in t.scores if r]
        idx = gen.integers(0, len(runs), size=(n_boot, len(runs[0])))
        reps = []
        for b in range(n_boot):
            drawn = [runs[idx[b, i]][i] for i in range(len(runs[0]))]
            labels = t.labels
            hashable = labels and all(isinstance(x, str) for x in labels)  # list golds (QA): a TypeError there
            if hashable and len(set(labels)) != len(labels):
                chance = 0.0 if raw else 1 / len(set(labels))
                reps.append(100 * max((_balanced(labels, [d >= 1 for d in drawn]) - chance) / (1 - chance), 0))
            else:
                reps.append(100 * sum(drawn) / len(drawn))
        out[(t.lang, t.task)] = reps
    return out


def _tasks():
    rng = np.random.default_rng(5)
    labels_a = ["A", "B", "A", "B", "A", "C", "C", "B", "A", "C"]

    def runs(n_items, p, n_runs=4):
        return [[float(rng.random() < p) for _ in range(n_items)] for _ in range(n_runs)]

    return [
        TaskRuns("id", "sentiment", "nlu", runs(10, 0.6), labels=labels_a, per_run_code=[1.0, 2.0, 3.0, 4.0]),
        TaskRuns("id", "qa", "nlu", [[float(x) for x in rng.random(6)] for _ in range(4)],
                 labels=[["x"], ["y"], ["z"], ["w"], ["v"], ["u"]]),
        TaskRuns("id", "causal", "nlr", runs(8, 0.7), labels=list("ABABABAB")),
        TaskRuns("id", "pragmatic-single", "linguistic-diagnostics", runs(6, 0.5), labels=list("TFTFTF"),
                 group="pragmatics"),
        TaskRuns("id", "pragmatic-pair", "linguistic-diagnostics", runs(6, 0.8), labels=list("TTFFTF"),
                 group="pragmatics"),
        TaskRuns("th", "sentiment", "nlu", runs(9, 0.4), labels=list("PNPNPNEEE")),
        TaskRuns("th", "translation-en-xx", "nlg", [[0.5] * 5] * 4, labels=list("abcde"), group="translations",
                 excluded="MetricX-24 not run"),
    ]


def test_task_means_and_stderrs_match_the_notebook_formula():
    tasks = _tasks()
    agg = aggregate(tasks)
    ref = _reference(tasks)
    for t in tasks:
        e = agg["results"][t.lang][t.competency][t.task]
        reps = ref[(t.lang, t.task)]
        assert e["mean"] == pytest.approx(statistics.mean(reps)), t.task
        assert e["stderr"] == pytest.approx(_stderr(reps)), t.task


def test_hierarchy_group_competency_language_sea():
    tasks = _tasks()
    agg = aggregate(tasks)
    ref = {k: np.array(v) for k, v in _reference(tasks).items()}
    prag = (ref[("id", "pragmatic-single")] + ref[("id", "pragmatic-pair")]) / 2
    nlu = (ref[("id", "sentiment")] + ref[("id", "qa")]) / 2
    id_lang = (nlu + ref[("id", "causal")] + prag) / 3
    th_lang = ref[("th", "sentiment")]  # translation is left out: th has nlu only
    sea = (id_lang + th_lang) / 2
    r = agg["results"]
    assert r["id"]["linguistic-diagnostics"]["groups"]["pragmatics"]["mean"] == pytest.approx(prag.mean())
    assert r["id"]["nlu"]["total"]["mean"] == pytest.approx(nlu.mean())
    assert r["id"]["total"]["mean"] == pytest.approx(id_lang.mean())
    assert r["id"]["total"]["stderr"] == pytest.approx(_stderr(list(id_lang)))
    assert r["th"]["total"]["mean"] == pytest.approx(th_lang.mean())
    assert agg["sea_average"]["mean"] == pytest.approx(sea.mean())
    assert agg["sea_average"]["stderr"] == pytest.approx(_stderr(list(sea)))
    assert agg["sea_average"]["languages"] == ["id", "th"] and not agg["sea_average"]["complete"]


def test_translation_without_metricx_is_reported_but_not_averaged():
    agg = aggregate(_tasks())
    e = agg["results"]["th"]["nlg"]["translation-en-xx"]
    assert e["mean"] == pytest.approx(50.0) and "MetricX" in e["excluded_from_average"]
    assert agg["results"]["th"]["nlg"]["total"]["mean"] is None
    assert agg["excluded_tasks"] == ["th/translation-en-xx"]


def test_balanced_accuracy_example_from_the_issue():
    """mp-r items (A,1),(A,1),(B,0),(B,1): the leaderboard's balanced accuracy 0.75 -> normalised 50.00."""
    t = TaskRuns("id", "mp-r", "linguistic-diagnostics", [[1.0, 1.0, 0.0, 1.0]], labels=["A", "A", "B", "B"],
                 per_run_code=[66.67])
    e = aggregate([t])["results"]["id"]["linguistic-diagnostics"]["mp-r"]
    assert e["mean"] == pytest.approx(50.0) and e["stderr"] == 0.0
    assert e["raw"]["mean"] == pytest.approx(75.0)  # raw: balanced accuracy before the chance correction
    assert e["per_run_code"]["mean"] == pytest.approx(66.67)  # SEA-HELM's per-run number, carried alongside


def test_raw_and_normalised_differ_only_for_multiple_choice():
    tasks = _tasks()
    r = aggregate(tasks)["results"]
    qa = r["id"]["nlu"]["qa"]
    assert qa["raw"]["mean"] == pytest.approx(qa["mean"]) and not qa["multiple_choice"]
    s = r["id"]["nlu"]["sentiment"]
    assert s["multiple_choice"] and s["raw"]["mean"] > s["mean"]
    assert not is_multiple_choice([["a"], ["b"]]) and not is_multiple_choice(["a", "b"])


def test_missing_run_flags_the_task_and_draws_from_the_complete_runs():
    full = [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    t = TaskRuns("vi", "qa", "nlu", full + [None], labels=None)
    agg = aggregate([t])
    e = agg["results"]["vi"]["nlu"]["qa"]
    assert e["incomplete"] and e["n_runs"] == 2 and agg["incomplete_tasks"] == ["vi/qa"]
    ref = _reference([TaskRuns("vi", "qa", "nlu", full)])[("vi", "qa")]
    assert e["mean"] == pytest.approx(statistics.mean(ref))
    assert not agg["sea_average"]["complete"]


def test_generator_order_matters_as_in_seahelm():
    """One stream: the same task gives other draws when another task is drawn before it."""
    a = TaskRuns("id", "qa", "nlu", [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    b = TaskRuns("vi", "qa", "nlu", [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    first = aggregate([a, b])["results"]
    assert first["id"]["nlu"]["qa"]["mean"] != pytest.approx(first["vi"]["nlu"]["qa"]["mean"])
    swapped = aggregate([b, a])["results"]
    assert swapped["vi"]["nlu"]["qa"]["mean"] == pytest.approx(first["id"]["nlu"]["qa"]["mean"])


def test_results_nest_language_competency_task_and_carry_the_sea_average_normalised_and_raw():
    tasks = _tasks()
    agg = aggregate(tasks)
    r = agg["results"]
    assert set(r) == {"id", "th"} and set(r["id"]) == {"nlu", "nlr", "linguistic-diagnostics", "total"}
    assert {"sentiment", "qa", "total"} <= set(r["id"]["nlu"]) and "causal" in r["id"]["nlr"]
    for kind, ref in (("norm", _reference(tasks)), ("raw", _reference(tasks, raw=True))):
        ref = {k: np.array(v) for k, v in ref.items()}
        id_lang = ((ref[("id", "sentiment")] + ref[("id", "qa")]) / 2 + ref[("id", "causal")]
                   + (ref[("id", "pragmatic-single")] + ref[("id", "pragmatic-pair")]) / 2) / 3
        sea = (id_lang + ref[("th", "sentiment")]) / 2
        got = agg["sea_average"] if kind == "norm" else agg["sea_average"]["raw"]
        assert got["mean"] == pytest.approx(sea.mean()), kind
        assert got["stderr"] == pytest.approx(_stderr(list(sea))), kind
    assert agg["sea_average"]["raw"]["mean"] > agg["sea_average"]["mean"]

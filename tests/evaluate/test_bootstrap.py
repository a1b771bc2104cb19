"""Question-wise run bootstrap: deterministic under its seed, and matching hand-computed values."""

import numpy as np
import pytest

from sealion.evaluate.bootstrap import bootstrap_task, combine, draw_runs, summarize, task_rng


def test_summarize_hand_computed():
    mean, se = summarize(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0
    assert se == pytest.approx(np.sqrt((2 / 3) / 3))  # population variance / n_boot


def test_identical_runs_have_zero_stderr():
    scores = np.array([[1, 0, 1, 1], [1, 0, 1, 1]], dtype=float)
    reps = bootstrap_task(2, 4, lambda row: 100 * np.mean([scores[r, i] for i, r in enumerate(row)]),
                          rng=task_rng(1, "id", "t"))
    assert np.allclose(reps, 75.0)
    assert summarize(reps) == (75.0, 0.0)


def test_replicate_equals_share_of_draws_from_the_good_run():
    # run 0 answers everything right, run 1 everything wrong: each replicate = % of questions drawn from run 0
    scores = np.array([[1.0] * 5, [0.0] * 5])
    reps = bootstrap_task(2, 5, lambda row: 100 * np.mean([scores[r, i] for i, r in enumerate(row)]),
                          n_boot=4, rng=task_rng(7, "th", "qa"))
    draws = draw_runs(2, 5, n_boot=4, rng=task_rng(7, "th", "qa"))
    assert np.allclose(reps, 100 * (draws == 0).mean(axis=1))


def test_hand_example_with_fixed_draws():
    # 2 runs x 3 questions; draws written out by hand: replicate 1 takes runs (0,0,1), replicate 2 (1,1,0)
    scores = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    fn = lambda row: 100 * np.mean([scores[r, i] for i, r in enumerate(row)])  # noqa: E731
    reps = np.array([fn(np.array([0, 0, 1])), fn(np.array([1, 1, 0]))])
    assert reps.tolist() == pytest.approx([100 / 3, 200 / 3])
    assert summarize(reps) == pytest.approx((50.0, np.sqrt(((100 / 6) ** 2) / 2)))


def test_deterministic_under_seed_and_task():
    a = draw_runs(8, 50, rng=task_rng(94370244, "id", "sentiment"))
    b = draw_runs(8, 50, rng=task_rng(94370244, "id", "sentiment"))
    c = draw_runs(8, 50, rng=task_rng(94370244, "id", "qa"))
    assert (a == b).all() and not (a == c).all()
    assert a.shape == (30, 50) and a.min() >= 0 and a.max() <= 7


def test_combine_is_elementwise_mean():
    assert combine([np.array([0.0, 10.0]), np.array([20.0, 30.0])]).tolist() == [10.0, 20.0]

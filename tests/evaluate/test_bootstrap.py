"""Question-wise run bootstrap: SEA-HELM's generator (numpy default_rng seeded 94370244) and its n-1 stderr."""

import math
import statistics

import numpy as np
import pytest

from sealion.evaluate.bootstrap import BOOTSTRAP_SEED, combine, draw_runs, make_rng, summarize


def test_stderr_uses_the_sample_variance():
    # SEA-HELM: math.sqrt(statistics.variance(values) / len(values)); variance of 1,2,3 with n-1 is 1
    mean, se = summarize(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0 and se == pytest.approx(math.sqrt(1 / 3))
    values = [12.5, 40.0, 33.3, 71.0, 5.5]
    assert summarize(values)[1] == pytest.approx(math.sqrt(statistics.variance(values) / 5))


def test_identical_replicates_have_zero_stderr():
    assert summarize([75.0] * 30) == (75.0, 0.0)


def test_draws_are_seahelm_generator_calls_in_order():
    """Two tasks drawn from one generator equal two consecutive `integers` calls of default_rng(94370244)."""
    rng = make_rng()
    a = draw_runs(8, 50, rng=rng)
    b = draw_runs(8, 20, rng=rng)
    ref = np.random.default_rng(BOOTSTRAP_SEED)
    assert (a == ref.integers(0, 8, size=(30, 50))).all() and (b == ref.integers(0, 8, size=(30, 20))).all()
    assert BOOTSTRAP_SEED == 94370244 and a.min() >= 0 and a.max() <= 7


def test_combine_is_elementwise_mean():
    assert combine([np.array([0.0, 10.0]), np.array([20.0, 30.0])]).tolist() == [10.0, 20.0]

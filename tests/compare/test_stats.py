"""compare.stats against known answers: exact binomial McNemar, the BH worked example, SEA-HELM's metric, and
simulations (false positive rate near alpha, power rising with the effect, pairing finding what unpairing misses)."""

from fractions import Fraction
from math import comb

import numpy as np
import pytest

from sealion.compare import stats
from sealion.evaluate.metrics.classification import normalized_accuracy

SEED = 20261202


@pytest.mark.parametrize("b,c", [(0, 0), (1, 0), (0, 5), (3, 7), (10, 2), (6, 6), (25, 40), (200, 230)])
def test_mcnemar_matches_exact_binomial(b, c):
    n = b + c
    exact = min(Fraction(1), 2 * sum(Fraction(comb(n, k), 2 ** n) for k in range(min(b, c) + 1))) if n else 1
    assert stats.mcnemar_exact(b, c) == pytest.approx(float(exact), rel=1e-9)


def test_benjamini_hochberg_worked_example():
    # Benjamini & Hochberg (1995), section 4: 15 p-values, FDR 0.05 rejects the four smallest
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528,
         0.7590, 1.0000]
    q = stats.benjamini_hochberg(p)
    assert list(q <= 0.05) == [True] * 4 + [False] * 11
    # by hand: sorted 0.005 0.01 0.03 0.04 -> p*m/rank 0.02 0.02 0.04 0.04 (already monotone)
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # monotone step-up: 0.03*3/2 = 0.045 > 0.04*3/3 -> both 0.04; NaN passes through
    q = stats.benjamini_hochberg([0.04, np.nan, 0.03, 0.5])
    assert q[0] == pytest.approx(0.06) and np.isnan(q[1]) and q[2] == pytest.approx(0.06) and q[3] == pytest.approx(0.5)


def test_minimum_detectable_effect_known_constant():
    # z_{0.975} + z_{0.8} = 1.95996 + 0.84162
    assert stats.minimum_detectable_effect(1.0) == pytest.approx(2.80158, abs=1e-4)
    assert stats.minimum_detectable_effect(2.0, alpha=0.01, power=0.9) == pytest.approx(2 * (2.57583 + 1.28155), abs=1e-4)


def _choice_data(rng, n_items=60, n_runs=3, k=3):
    classes = rng.integers(0, k, n_items)
    scores = (rng.random((n_runs, n_items)) < 0.6).astype(float)
    return stats.TaskScores(scores, classes=classes)


def test_replicates_follow_seahelm_metric():
    """Scores and replicates equal sealion's normalized_accuracy (SEA-HELM's formula) on the drawn items."""
    rng = np.random.default_rng(SEED)
    ts = _choice_data(rng)
    golds_all = [str(c) for c in ts.classes]
    assert stats.task_score(ts) == pytest.approx(np.mean([
        normalized_accuracy(golds_all, [g if s else "null" for g, s in zip(golds_all, run)]) for run in ts.scores]))
    # a replicate: the drawn items, each with its mean correctness over runs (balanced accuracy is linear in it)
    items = stats.draw_items(ts.n_items, 5, np.random.default_rng(1))
    reps = stats.paired_replicates([ts], n_boot=5, rng=np.random.default_rng(1))[0]
    one_run = stats.TaskScores(ts.scores[:1], classes=ts.classes)
    reps_one = stats.paired_replicates([one_run], n_boot=5, rng=np.random.default_rng(1))[0]
    for b in range(5):
        golds = [golds_all[i] for i in items[b]]
        per_run = [normalized_accuracy(golds, [g if s else "null" for g, s in zip(golds, run[items[b]])], chance=1 / 3)
                   for run in ts.scores]
        assert reps_one[b] == pytest.approx(per_run[0])
        if min(per_run) > 0:  # no clipping at chance: the run-mean score is the mean of the run scores
            assert reps[b] == pytest.approx(np.mean(per_run))
    mean_ts = stats.TaskScores(np.array([[0.5, 1.0, np.nan, 0.0]]))
    assert stats.task_score(mean_ts) == pytest.approx(100 * 1.5 / 3)


def _simulate(rng, effect, n_items=150, n_runs=2):
    """Items of varied difficulty; B is right with probability difficulty + effect. Strongly item-correlated."""
    p = rng.uniform(0.1, 0.9, n_items)
    a = (rng.random((n_runs, n_items)) < p).astype(float)
    b = (rng.random((n_runs, n_items)) < np.clip(p + effect, 0, 1)).astype(float)
    return stats.TaskScores(a), stats.TaskScores(b)


def _paired_p(a, b, rng, n_boot=400):
    reps = stats.paired_replicates([a, b], n_boot=n_boot, rng=rng)
    d = stats.difference(stats.task_score(b) - stats.task_score(a), reps[1] - reps[0])
    return d


def test_false_positive_rate_near_alpha_without_effect():
    rng = np.random.default_rng(SEED)
    ps = np.array([_paired_p(*_simulate(rng, 0.0), rng).p for _ in range(400)])
    rate = np.mean(ps < 0.05)
    assert 0.02 <= rate <= 0.085, rate  # 5% +- ~3 binomial standard errors over 400 simulations
    assert 0.35 < np.mean(ps) < 0.65  # p-values roughly uniform under the null


def test_power_rises_with_effect_and_mde_gives_about_80_percent():
    rng = np.random.default_rng(SEED + 1)
    power = []
    for effect in (0.0, 0.03, 0.06, 0.12):
        ds = [_paired_p(*_simulate(rng, effect), rng) for _ in range(120)]
        power.append(np.mean([d.p < 0.05 for d in ds]))
    assert power == sorted(power) and power[0] < 0.1 and power[-1] > 0.9, power
    # the MDE at this size (in score points) is detected about 80% of the time
    mde = np.mean([_paired_p(*_simulate(rng, 0.0), rng).mde for _ in range(40)]) / 100
    hit = np.mean([_paired_p(*_simulate(rng, mde), rng).p < 0.05 for _ in range(150)])
    assert 0.65 <= hit <= 0.92, (mde, hit)


def test_unpaired_test_misses_what_the_paired_test_finds():
    """B fixes 14 of A's 100 wrong items and breaks none: a clear paired effect (McNemar p ~ 1e-4), but the two
    accuracies (50% vs 57% on 200 items) are within an unpaired test's noise."""
    rng = np.random.default_rng(SEED)
    a = np.zeros(200)
    a[rng.permutation(200)[:100]] = 1
    b = a.copy()
    b[np.flatnonzero(a == 0)[:14]] = 1
    ta, tb = stats.TaskScores(a), stats.TaskScores(b)
    diff = stats.task_score(tb) - stats.task_score(ta)
    paired = stats.paired_replicates([ta, tb], rng=np.random.default_rng(1))
    unpaired = stats.unpaired_replicates([ta, tb], rng=np.random.default_rng(1))
    assert diff == pytest.approx(7.0)
    assert stats.difference(diff, paired[1] - paired[0]).p < 0.01
    assert stats.difference(diff, unpaired[1] - unpaired[0]).p > 0.05
    assert stats.mcnemar_exact(*stats.discordant(a, b)) < 0.001


def test_identical_runs_and_constant_shift():
    ts = stats.TaskScores(np.array([[1.0, 0.0, 1.0, 1.0]]))
    reps = stats.paired_replicates([ts, ts], n_boot=50, rng=np.random.default_rng(0))
    d = stats.difference(0.0, reps[1] - reps[0])
    assert d.p == 1.0 and d.lo == d.hi == 0.0 and d.se == 0.0
    assert stats.majority(np.array([[1, 0, 1], [1, 0, 0]])).tolist()[:2] == [1.0, 0.0]
    assert np.isnan(stats.majority(np.array([[1, 0, 1], [1, 0, 0]]))[2])


def test_ratio_replicates_pair_rows():
    """A token-weighted ratio: the point is sum/sum; a model that adds a constant per token to every row differs
    by exactly that constant in every replicate (pairing), so its interval has zero width."""
    rng = np.random.default_rng(SEED)
    tokens = rng.integers(5, 50, 80).astype(float)
    kl_a = rng.gamma(2.0, 1.0, 80) * tokens
    kl_b = kl_a + 0.25 * tokens
    point, reps = stats.ratio_replicates(np.stack([kl_a, kl_b]), tokens, n_boot=300, rng=rng)
    assert point[0] == pytest.approx(kl_a.sum() / tokens.sum())
    assert np.allclose(reps[1] - reps[0], 0.25)
    d = stats.difference(point[1] - point[0], reps[1] - reps[0])
    assert d.diff == pytest.approx(0.25) and d.p < 0.01 and d.hi - d.lo < 1e-9

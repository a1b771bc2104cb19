"""Paired statistics for comparing models on the same items (pure numpy, no I/O).

A task's per-item scores are a `[runs, items]` matrix per model. One bootstrap replicate resamples the items with
replacement, the same draw for every model (that is the pairing), and each drawn item brings all its runs with it:
the runs are resampled as clusters of their item, which is the clustered standard error SEA-HELM cites (Miller
2024: average a question's samples, then resample questions). Drawing one run per item on top, as SEA-HELM's
leaderboard bootstrap does, would count the run noise twice and make the test conservative (a simulation with no
effect gave 0 false positives in 400 at alpha 0.05). The replicate score follows SEA-HELM's leaderboard rule:
chance-normalised balanced accuracy for classification tasks, else 100 x the mean item score. Differences at every
level (group, competency, language, SEA average) are element-wise means of the task difference vectors.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

N_REPLICATES = 2000
COMPARE_SEED = 17094233  # fixed: the same runs always give the same intervals and p-values
ALPHA = 0.05
POWER = 0.8


@dataclass
class TaskScores:
    """One model's per-item scores on one task: `scores[run, item]` on 0..1 (NaN = not scorable). `classes` (an int
    class index per item) selects balanced accuracy with `chance` (default 1 / number of classes)."""

    scores: np.ndarray
    classes: np.ndarray | None = None
    chance: float | None = None

    def __post_init__(self):
        self.scores = np.atleast_2d(np.asarray(self.scores, dtype=float))
        if self.classes is not None:
            self.classes = np.asarray(self.classes, dtype=np.int64)

    @property
    def n_runs(self) -> int:
        return self.scores.shape[0]

    @property
    def n_items(self) -> int:
        return self.scores.shape[1]


@contextmanager
def _quiet():
    """An all-NaN replicate is a legitimate NaN score, not a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _metric(picked: np.ndarray, ts: TaskScores, classes: np.ndarray | None) -> np.ndarray:
    """picked[b, i] item scores (0..1) of replicate b -> [b] task scores on 0..100."""
    if ts.classes is None:
        with np.errstate(invalid="ignore"), _quiet():
            return 100.0 * np.nanmean(picked, axis=1)
    k = int(ts.classes.max()) + 1
    n_b = picked.shape[0]
    offset = classes + k * np.arange(n_b)[:, None]
    hits = np.bincount(offset.ravel(), weights=np.nan_to_num(picked).ravel(), minlength=n_b * k).reshape(n_b, k)
    tot = np.bincount(offset.ravel(), minlength=n_b * k).reshape(n_b, k)
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        balanced = np.nanmean(np.where(tot > 0, hits / tot, np.nan), axis=1)
    chance = ts.chance if ts.chance is not None else 1.0 / len(np.unique(ts.classes))
    if chance >= 1.0:
        return 100.0 * balanced
    return 100.0 * np.maximum((balanced - chance) / (1.0 - chance), 0.0)


def item_means(ts: TaskScores) -> np.ndarray:
    """[items] mean score of each item over its runs (NaN when no run scored it)."""
    with _quiet():
        return np.nanmean(ts.scores, axis=0)


def _score(ts: TaskScores, items: np.ndarray) -> np.ndarray:
    """[n_boot, n] item draws -> [n_boot] task scores on the drawn items' run means."""
    return _metric(item_means(ts)[items], ts, None if ts.classes is None else ts.classes[items])


def task_score(ts: TaskScores) -> float:
    """The task score on all items (for linear metrics, the mean over runs of each run's score)."""
    return float(_score(ts, np.arange(ts.n_items)[None, :])[0])


def draw_items(n_items: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_items] item indices, drawn with replacement."""
    return rng.integers(0, n_items, size=(n_boot, n_items))


def paired_replicates(models: Sequence[TaskScores], *, n_boot: int = N_REPLICATES,
                      rng: np.random.Generator) -> np.ndarray:
    """[n_models, n_boot] replicate scores sharing one item draw (the models must cover the same items)."""
    n = models[0].n_items
    if any(m.n_items != n for m in models):
        raise ValueError("paired replicates need the same items for every model")
    items = draw_items(n, n_boot, rng)
    return np.stack([_score(m, items) for m in models])


def unpaired_replicates(models: Sequence[TaskScores], *, n_boot: int = N_REPLICATES,
                        rng: np.random.Generator) -> np.ndarray:
    """The same, but every model draws its own items (what an unpaired test assumes; for contrast only)."""
    return np.stack([_score(m, draw_items(m.n_items, n_boot, rng)) for m in models])


@dataclass
class Difference:
    """B - A: point estimate, percentile interval, two-sided bootstrap p-value, standard error and the minimum
    detectable effect (at `alpha`, 80% power) of a run this size."""

    diff: float
    lo: float
    hi: float
    p: float
    se: float
    mde: float

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.__dict__.items()}


def bootstrap_p(diff: float, reps: np.ndarray) -> float:
    """Two-sided p-value of 'no difference': the share of replicates, centred on the estimate, at least as far from
    it as the estimate is from zero (+1 smoothing, so p is never 0)."""
    reps = np.asarray(reps, dtype=float)
    reps = reps[np.isfinite(reps)]
    if not len(reps) or not math.isfinite(diff):
        return float("nan")
    if np.all(reps == diff):  # no variability at all: identical outputs give p = 1; a constant shift p -> 0
        return 1.0 if diff == 0 else 1.0 / (len(reps) + 1)
    extreme = np.sum(np.abs(reps - diff) >= abs(diff) - 1e-12)
    return float((extreme + 1) / (len(reps) + 1))


def minimum_detectable_effect(se: float, *, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true difference a two-sided test at `alpha` detects with probability `power`: (z_{1-a/2} + z_power) se."""
    z = NormalDist()
    return (z.inv_cdf(1 - alpha / 2) + z.inv_cdf(power)) * se


def difference(diff: float, reps: np.ndarray, *, alpha: float = ALPHA) -> Difference:
    """Summarise a difference from its point estimate and replicate vector."""
    reps = np.asarray(reps, dtype=float)
    good = reps[np.isfinite(reps)]
    if not len(good):
        nan = float("nan")
        return Difference(diff, nan, nan, nan, nan, nan)
    lo, hi = np.quantile(good, [alpha / 2, 1 - alpha / 2])
    se = float(np.std(good, ddof=1)) if len(good) > 1 else 0.0
    return Difference(float(diff), float(lo), float(hi), bootstrap_p(diff, good), se,
                      minimum_detectable_effect(se, alpha=alpha))


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts (b: only A right, c: only B right): twice the
    binomial(b + c, 1/2) tail at min(b, c), capped at 1. Computed in log space so large counts do not overflow."""
    n = b + c
    if n == 0:
        return 1.0
    k = np.arange(min(b, c) + 1)
    log_pmf = (math.lgamma(n + 1) - np.array([math.lgamma(i + 1) + math.lgamma(n - i + 1) for i in k])
               - n * math.log(2.0))
    return float(min(1.0, 2.0 * np.exp(log_pmf).sum()))


def discordant(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Per-item binary outcomes of two models -> (only A right, only B right). Items with NaN are dropped."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok] >= 0.5, b[ok] >= 0.5
    return int(np.sum(a & ~b)), int(np.sum(~a & b))


def majority(scores: np.ndarray) -> np.ndarray:
    """[runs, items] binary scores -> per-item majority outcome (1, 0, or NaN when the runs split evenly)."""
    m = np.nanmean(np.asarray(scores, dtype=float), axis=0)
    return np.where(m > 0.5, 1.0, np.where(m < 0.5, 0.0, np.nan))


def is_binary(scores: np.ndarray) -> bool:
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    return bool(len(s)) and bool(np.all((s == 0) | (s == 1)))


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """BH-adjusted p-values (q-values): reject at FDR level q where adjusted <= q. NaN stays NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return out


def ratio_replicates(numerators: np.ndarray, denominator: np.ndarray, *, n_boot: int = N_REPLICATES,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paired bootstrap of a ratio metric over rows (e.g. held-out KL: summed KL / summed tokens per sequence):
    numerators[model, row], a shared denominator[row] -> (point [models], replicates [models, n_boot]); every
    model sees the same resampled rows."""
    num = np.atleast_2d(np.asarray(numerators, dtype=float))
    den = np.asarray(denominator, dtype=float)
    idx = draw_items(len(den), n_boot, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        point = num.sum(axis=1) / den.sum()
        reps = num[:, idx].sum(axis=2) / den[idx].sum(axis=1)
    return point, reps

"""Question-wise run bootstrap (SEA-HELM's leaderboard aggregation); the aggregation itself is `aggregate.py`.

Each of `n_boot` replicates lets every question draw one of the runs independently; one generator, seeded 94370244,
is consumed task by task (`make_rng` once per evaluation, `draw_runs` per task). The standard error of a replicate
vector uses the sample variance (n - 1), as SEA-HELM's `calculate_stderr`: sqrt(variance / n_boot).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .aggregate import BOOTSTRAP_SEED, N_BOOTSTRAPS, stderr

__all__ = ["BOOTSTRAP_SEED", "N_BOOTSTRAPS", "make_rng", "draw_runs", "summarize", "combine"]


def make_rng(seed: int = BOOTSTRAP_SEED) -> np.random.Generator:
    """The one generator of an evaluation's bootstrap (numpy's default_rng, as SEA-HELM)."""
    return np.random.default_rng(seed)


def draw_runs(n_runs: int, n_items: int, *, n_boot: int = N_BOOTSTRAPS, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_items] run index per (replicate, question)."""
    return rng.integers(0, n_runs, size=(n_boot, n_items))


def summarize(replicates: Sequence[float]) -> tuple[float, float]:
    """-> (mean, stderr) of a replicate vector."""
    r = np.asarray(replicates, dtype=float)
    return float(r.mean()), stderr(r.tolist())


def combine(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Element-wise mean of replicate vectors (a group, competency, language or the SEA average)."""
    return np.mean(np.stack([np.asarray(v, dtype=float) for v in vectors]), axis=0)

"""Question-wise run bootstrap (SEA-HELM's leaderboard aggregation).

Each of `n_boot` replicates lets every question draw one of the runs independently and recomputes the task score
from those draws; a task's mean and standard error come from its replicate vector (stderr = sqrt(var / n_boot),
as SEA-HELM computes it). Groups, competencies, languages and the SEA average are element-wise means of their
members' replicate vectors, so their stderr accounts for the shared draws.
"""

from __future__ import annotations

import zlib
from typing import Callable, Sequence

import numpy as np

N_BOOTSTRAPS = 30
BOOTSTRAP_SEED = 94370244


def task_rng(seed: int, lang: str, task: str) -> np.random.Generator:
    """One generator per (language, task): replicates do not depend on which other tasks ran."""
    return np.random.default_rng([seed, zlib.crc32(f"{lang}/{task}".encode())])


def draw_runs(n_runs: int, n_items: int, *, n_boot: int = N_BOOTSTRAPS, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_items] run index per (replicate, question)."""
    return rng.integers(0, n_runs, size=(n_boot, n_items))


def bootstrap_task(n_runs: int, n_items: int, score_fn: Callable[[np.ndarray], float], *,
                   n_boot: int = N_BOOTSTRAPS, rng: np.random.Generator) -> np.ndarray:
    """score_fn(run_index_per_item) -> task score; returns the [n_boot] replicate vector."""
    draws = draw_runs(n_runs, n_items, n_boot=n_boot, rng=rng)
    return np.array([score_fn(row) for row in draws], dtype=float)


def summarize(replicates: np.ndarray) -> tuple[float, float]:
    """-> (mean, stderr) of a replicate vector."""
    r = np.asarray(replicates, dtype=float)
    return float(r.mean()), float(np.sqrt(r.var() / len(r)))


def combine(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Element-wise mean of replicate vectors (a group, competency, language or the SEA average)."""
    return np.mean(np.stack([np.asarray(v, dtype=float) for v in vectors]), axis=0)

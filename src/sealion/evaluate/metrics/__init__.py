"""Metrics: pure functions over plain data (no model), plus the pluggable model-based MetricX-24."""

from .classification import balanced_accuracy, normalized_accuracy, normalize_score, pragmatics_per_run
from .qa import squad_f1, qa_f1
from .rouge import rouge_l_f1, lcs_length
from .tokenize import rouge_tokenize, burmese_syllables
from .translation import chrf_pp

__all__ = [
    "balanced_accuracy", "normalized_accuracy", "normalize_score", "pragmatics_per_run", "squad_f1", "qa_f1", "rouge_l_f1",
    "lcs_length", "rouge_tokenize", "burmese_syllables", "chrf_pp",
]

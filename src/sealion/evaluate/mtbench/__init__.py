"""SEA-MT-Bench for `sealion eval`: two-turn generation judged pairwise against stored baseline answers
(`mt-bench`, weighted win rate) or against per-turn criteria (`mt-bench-criteria`, five classes).

Importing this package registers the task kinds `mtbench-pairwise` and `mtbench-criteria`.
"""

from . import kind as _kind  # noqa: F401  (registers the task kinds)
from .scoring import (combine_orders, criteria_item_score, criteria_metrics, model_view, pairwise_metrics,
                      parse_criteria, parse_pairwise)

__all__ = ["parse_pairwise", "model_view", "combine_orders", "pairwise_metrics", "parse_criteria",
           "criteria_item_score", "criteria_metrics"]

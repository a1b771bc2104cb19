"""SEA-IFEval for `sealion eval`: instruction checkers, strict/loose scoring with language normalisation.

Importing this package registers the `ifeval` task kind; its spec (`specs/if-eval.yaml`) names task `if-eval`.
"""

from . import kind as _kind  # noqa: F401  (registers the task kind)
from .checkers import CHECKERS, CheckContext, check
from .scoring import IFEvalItem, IFEvalResult, metrics_from_details, score_items

__all__ = ["CHECKERS", "CheckContext", "check", "IFEvalItem", "IFEvalResult", "score_items", "metrics_from_details"]

"""SEA-HELM-style evaluation: `run_eval(EvalConfig(...)) -> results dict`.

Tasks are YAML specs interpreted by task kinds (`sealion.evaluate.tasks`); the runner (`sealion.evaluate.runner`)
generates with any `sealion.engine` engine, caches every response, scores, bootstraps over runs and writes
results.json, a markdown table and report.html.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EvalConfig", "run_eval"]


def __getattr__(name: str) -> Any:  # lazy: importing sealion.evaluate must not import torch
    if name in ("EvalConfig", "run_eval"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(name)

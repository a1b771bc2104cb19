"""The training record: which parameters of the student the distillation actually changed.

Written next to the trained model as sealion_training.json: the parameters that never received a gradient
(`frozen`; e.g. the vision and audio towers, which text-only data does not reach). The merge reads it
(merge.plan.trained_components) so it keeps what distillation learned, e.g. Gemma 4's per-layer embedding table,
and copies from the base only what was not trained. Plain parameter names: distill does not know merge's
component names, merge does not import distill.
"""

from __future__ import annotations

from pathlib import Path

from .. import io as sio

TRAINING_RECORD = "sealion_training.json"  # merge/plan.py reads the same file name
FORMAT = "sealion-training/1"


class GradientLedger:
    """Names of the parameters that received a gradient at least once (checked after each step's backward)."""

    def __init__(self, model):
        self.model = model
        self.touched: set[str] = set()

    def update(self) -> None:
        for name, p in self.model.named_parameters():
            if p.grad is not None:
                self.touched.add(name)

    def record(self, *, tied: bool) -> dict:
        names = [n for n, _ in self.model.named_parameters()]
        # a wrapper that hides per-parameter grads (FSDP1 flat parameters) leaves nothing touched: then the
        # trainable ones are what was trained
        trained = self.touched or {n for n, p in self.model.named_parameters() if p.requires_grad}
        return {"format": FORMAT, "frozen": sorted(n for n in names if n not in trained),
                "trained_parameters": sum(n in trained for n in names), "tied_head": tied,
                "how": "a parameter is trained when it received a gradient at least once"}


def write_record(out: Path, record: dict) -> None:
    sio.write_json(Path(out) / TRAINING_RECORD, record)

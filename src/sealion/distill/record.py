"""The training record: which components of the student the distillation actually changed.

Written next to the trained model as sealion_training.json and read by the merge (merge.plan), so a merge keeps
what distillation learned (e.g. Gemma 4's per-layer embedding table) and copies from the base only what it did not
touch (e.g. the vision and audio towers, which text-only data gives no gradient).
"""

from __future__ import annotations

from pathlib import Path

from .. import io as sio
from ..merge.plan import COMPONENTS, TRAINING_RECORD, component_of


class GradientLedger:
    """Names of the parameters that received a gradient at least once (checked after each step's backward)."""

    def __init__(self, model):
        self.model = model
        self.touched: set[str] = set()

    def update(self) -> None:
        for name, p in self.model.named_parameters():
            if p.grad is not None and name not in self.touched:
                self.touched.add(name)

    def record(self, *, tied: bool) -> dict:
        """{"trained": {component: bool}, ...} for the components this model has."""
        present: dict[str, list[str]] = {}
        for name, p in self.model.named_parameters():
            comp = component_of(name)
            if comp is not None:
                present.setdefault(comp, []).append(name)
        # a sharded wrapper (FSDP without orig params) hides per-parameter grads: fall back to requires_grad
        seen_grads = bool(self.touched)
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        trained = {comp: any((n in self.touched) if seen_grads else (n in trainable) for n in names)
                   for comp, names in present.items()}
        return {"trained": trained, "tied_head": tied, "components": sorted(COMPONENTS),
                "how": "a component is trained when any of its parameters received a gradient"}


def write_record(out: Path, record: dict) -> None:
    sio.write_json(Path(out) / TRAINING_RECORD, record)

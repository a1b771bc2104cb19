"""Logit distillation with a shared tokenizer: data -> teacher capture (top-k shards) -> student training.

Python API (what the recipe stage calls):
    capture(CaptureConfig(teacher=..., data=[...], out=..., k=64)) -> manifest dict
    train(TrainConfig(student=..., capture=..., out=...)) -> run summary dict
    init_student(teacher, layers, out) -> Path
Both configs take `callback=` (called with progress events) and `progress=` (tqdm bars).
"""

from .capture import CaptureConfig, capture
from .losses import LossConfig, sparse_divergence
from .student import init_student
from .train import TrainConfig, train

__all__ = ["CaptureConfig", "capture", "TrainConfig", "train", "init_student", "LossConfig", "sparse_divergence"]

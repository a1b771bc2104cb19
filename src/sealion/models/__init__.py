"""Model references and loading: `load(ref)`, `resolve(ref)`, the demo model, tiny test models."""

from .demo import demo_path
from .load import LoadedModel, load, load_tokenizer
from .refs import ALIASES, resolve

__all__ = ["load", "load_tokenizer", "resolve", "demo_path", "LoadedModel", "ALIASES"]

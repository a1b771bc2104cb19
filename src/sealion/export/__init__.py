"""On-device exports: GGUF files llama.cpp runs (`export_gguf`), and how far a quantised model drifts from the
original per language (`fidelity`)."""

from .gguf_export import QUANTS, ExportResult, export_gguf
from .names import ExportError

__all__ = ["export_gguf", "ExportResult", "ExportError", "QUANTS"]

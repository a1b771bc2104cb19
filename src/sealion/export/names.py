"""Hugging Face tensor names -> GGUF tensor names for Gemma 3 and Gemma 4 text models.

The mapping itself is the `gguf` package's (`gguf.get_tensor_name_map`, the table llama.cpp's converter uses); this
module only puts checkpoint names into the form that table expects (multimodal checkpoints nest the text model
under `model.language_model.`; Gemma 4 stores `layer_scalar` without a `.weight` suffix) and says which tensors
belong to the vision/audio towers.
"""

from __future__ import annotations

import re

from ..errors import SealionError


class ExportError(SealionError):
    """A model or request that cannot be exported; the message names the tensor, field or quant."""


TOWER_PREFIXES = ("model.vision_tower.", "model.audio_tower.", "model.embed_vision.", "model.embed_audio.",
                  "vision_tower.", "multi_modal_projector.", "model.multi_modal_projector.")
_TEXT_PREFIXES = (("model.language_model.", "model."), ("language_model.model.", "model."),
                  ("language_model.lm_head.", "lm_head."))
_BLOCK = re.compile(r"\.layers\.(\d+)\.")


def is_tower_tensor(name: str) -> bool:
    return name.startswith(TOWER_PREFIXES)


def text_name(name: str) -> str:
    """A checkpoint's text-model tensor name in the flat `model.layers.N...` form."""
    for old, new in _TEXT_PREFIXES:
        if name.startswith(old):
            name = new + name[len(old):]
            break
    if name.endswith(".layer_scalar"):
        name += ".weight"
    return name


def block_id(name: str) -> int | None:
    m = _BLOCK.search(name)
    return int(m.group(1)) if m else None


class TextNameMap:
    """`gguf_name(hf_name)` for one architecture ("gemma3" or "gemma4") and block count."""

    def __init__(self, arch: str, n_blocks: int):
        import gguf

        self.arch = {"gemma3": gguf.MODEL_ARCH.GEMMA3, "gemma4": gguf.MODEL_ARCH.GEMMA4}[arch]
        self._map = gguf.get_tensor_name_map(self.arch, n_blocks)

    def gguf_name(self, hf_name: str) -> str:
        flat = text_name(hf_name)
        mapped = self._map.get_name(flat, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise ExportError(f"tensor {hf_name!r}: no GGUF name for it in llama.cpp's "
                              f"{self.arch.name.lower()} tensor map")
        return mapped

"""Loading a checkpoint's multimodal processor.

transformers' Gemma4Processor needs torchvision for its video processor; where torchvision is missing (the CPU
setup here), the image processor and audio feature extractor are still loaded from the same processor_config.json
and bundled in `Processor`, so images and audio work and video falls back to frames as images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Processor:
    tokenizer: Any
    image_processor: Any = None
    feature_extractor: Any = None
    video_processor: Any = None
    image_seq_length: int | None = None
    audio_seq_length: int | None = None
    audio_ms_per_token: int | None = None


def load_processor(path: Path, tokenizer) -> Any | None:
    config_file = path / "processor_config.json"
    if not config_file.exists() and not (path / "preprocessor_config.json").exists():
        return None
    try:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(path)
    except Exception:  # torchvision missing, or a processor class this transformers lacks
        pass
    if not config_file.exists():
        return None
    cfg = json.loads(config_file.read_text())
    import transformers

    def build(section: str, type_key: str):
        sub = dict(cfg.get(section) or {})
        cls_name = sub.pop(type_key, None)
        if not cls_name:
            return None
        cls = getattr(transformers, cls_name, None) or getattr(transformers, cls_name.replace("Fast", ""), None)
        if cls is None and cls_name.endswith("ImageProcessor"):
            cls = getattr(transformers, cls_name + "Pil", None)
        return cls(**sub) if cls else None

    return Processor(
        tokenizer=tokenizer,
        image_processor=build("image_processor", "image_processor_type"),
        feature_extractor=build("feature_extractor", "feature_extractor_type"),
        image_seq_length=cfg.get("image_seq_length"),
        audio_seq_length=cfg.get("audio_seq_length"),
        audio_ms_per_token=cfg.get("audio_ms_per_token"),
    )

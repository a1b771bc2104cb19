"""RefCLIPScore (Hessel et al., 2021) with a local CLIP checkpoint.

CLIP-S(c, v) = w * max(cos(E_c, E_v), 0) with w = 2.5; RefCLIP-S(c, R, v) = the harmonic mean of CLIP-S(c, v) and
max(max_r cos(E_c, E_r), 0). SEA-HELM (`RefClipScoreMetric`) reports ``normalized_refclipscore`` =
100 * max(mean RefCLIP-S, 0) (its `normalize_score(x, 0, 1)`: clipped below only, so it can pass 100), and scores
each caption the same way; ``clipscore`` / ``normalized_clipscore`` likewise.

Differences from SEA-HELM, both only where its number is undefined or odd: the reference similarity is clamped at 0
as in the paper (SEA-HELM leaves it unclamped), and a caption whose two parts are both 0 scores 0 (SEA-HELM divides
by zero). SEA-HELM's judge is open_clip's xlm-roberta-large-ViT-H-14; any checkpoint transformers' `AutoModel`
loads with `get_image_features` / `get_text_features` works here (CLIPModel, AltCLIP, Chinese-CLIP, SigLIP).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import ConfigError

CLIP_WEIGHT = 2.5  # Hessel et al.'s w


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def refclip_from_features(images: np.ndarray, candidates: np.ndarray, references: Sequence[np.ndarray],
                          w: float = CLIP_WEIGHT) -> list[dict[str, float]]:
    """Per item {clipscore, ref_similarity, refclipscore} from raw (unnormalised) features: images and candidates
    (n, d), references[i] (k_i, d)."""
    img, cand = _unit(images), _unit(candidates)
    out = []
    for i in range(len(cand)):
        clip_s = w * max(float(img[i] @ cand[i]), 0.0)
        refs = _unit(references[i])
        ref_s = max(float(np.max(refs @ cand[i])), 0.0)
        total = clip_s + ref_s
        out.append({"clipscore": clip_s, "ref_similarity": ref_s,
                    "refclipscore": 2 * clip_s * ref_s / total if total > 0 else 0.0})
    return out


class ClipScorer:
    """A CLIP-style checkpoint in a local directory: image and text features (fp32, CPU unless CUDA is there)."""

    def __init__(self, path: str | Path, batch_size: int = 32):
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        self.path = Path(path).expanduser()
        if not (self.path / "config.json").is_file():
            raise ConfigError(f"--clip {path}: not a model directory (no config.json)")
        try:
            self.model = AutoModel.from_pretrained(self.path, local_files_only=True, torch_dtype=torch.float32)
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self.image_processor = AutoImageProcessor.from_pretrained(self.path, local_files_only=True)
        except Exception as e:
            raise ConfigError(f"--clip {path}: cannot load a CLIP model, tokenizer and image processor "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
        if not hasattr(self.model, "get_image_features") or not hasattr(self.model, "get_text_features"):
            raise ConfigError(f"--clip {path}: {type(self.model).__name__} has no image/text feature heads")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        text_cfg = getattr(self.model.config, "text_config", None) or self.model.config
        self.max_length = int(getattr(text_cfg, "max_position_embeddings", 77) or 77)

    @staticmethod
    def _tensor(out: Any):
        return out if hasattr(out, "shape") else out.pooler_output  # transformers 5 returns the pooled output object

    def image_features(self, images: list) -> np.ndarray:
        import torch

        feats = []
        with torch.inference_mode():
            for k in range(0, len(images), self.batch_size):
                px = self.image_processor(images=images[k:k + self.batch_size], return_tensors="pt")["pixel_values"]
                feats.append(self._tensor(self.model.get_image_features(pixel_values=px.to(self.device))).float().cpu())
        return torch.cat(feats).numpy()

    def text_features(self, texts: list[str]) -> np.ndarray:
        import torch

        feats = []
        with torch.inference_mode():
            for k in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(list(texts[k:k + self.batch_size]), padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
                enc = {n: v.to(self.device) for n, v in enc.items() if n in ("input_ids", "attention_mask")}
                feats.append(self._tensor(self.model.get_text_features(**enc)).float().cpu())
        return torch.cat(feats).numpy()


@lru_cache(maxsize=2)
def clip_scorer(path: str) -> ClipScorer:
    """One loaded checkpoint per path for the whole evaluation (every run and language shares it)."""
    return ClipScorer(path)

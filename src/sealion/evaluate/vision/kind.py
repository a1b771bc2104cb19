"""The vision kinds: `vision-choice` (CVQA, MaRVL, WorldCuisines: SEA-HELM's F1AccMetric on image items) and
`vision-caption` (xm3600, RefCLIPScore).

Images go with the first user turn as OpenAI content parts, text first and then each image as an ``image_url``
data URL, the order SEA-HELM's `HuggingFaceImageDataloader.update_conversation` builds; the engine's multimodal
path (`LocalEngine.media_prompt`) or an OpenAI-compatible server takes them from there. Base models get no images
through completion prompts, so these kinds are chat-only.
"""

from __future__ import annotations

from typing import Any

from ..extraction import extract_text
from ..tasks import Item, ItemScore, TaskKind, TaskSpec, register_kind
from ..tasks.kinds import ChoiceKind, _answer
from .images import data_url, load_pil
from .rows import load_vision_rows

NO_CLIP = ("RefCLIPScore needs a local CLIP checkpoint (--clip DIR; SEA-HELM uses open_clip's "
           "xlm-roberta-large-ViT-H-14): captions were generated but not scored")


class _Images:
    """Rows from the vision loaders; the item's images sent with its first user turn."""

    needs_images = True
    base_model_ok = False

    def load_rows(self, spec: TaskSpec, lang: str, source: Any, *, model: Any = None,
                  limit: int | None = None) -> list[dict]:
        return load_vision_rows(str(spec.options.get("vision_loader")), task=spec.name, lang=lang,
                                hub=spec.lang(lang).source.hub, source=source, limit=limit)

    def user_content(self, spec: TaskSpec, lang: str, item: Item, turn: int, text: str) -> str | list[dict]:
        images = (item.extra.get("images") or []) if turn == 0 else []
        if not images:
            return text
        return [{"type": "text", "text": text}] + [{"type": "image_url", "image_url": {"url": data_url(raw)}}
                                                   for raw in images]


@register_kind
class VisionChoiceKind(_Images, ChoiceKind):
    """Choice over image items: the `choice` kind's extraction and chance-normalised balanced accuracy."""

    name = "vision-choice"


@register_kind
class CaptionKind(_Images, TaskKind):
    """Captioning scored by RefCLIPScore against the item's reference captions (`ctx.options["clip"]`)."""

    name = "vision-caption"

    def __init__(self):
        self._fixed: dict[str, tuple] = {}  # per checkpoint: image and reference features (same in every run)

    def score(self, spec, lang, items, outputs, ctx):
        tag = spec.lang(lang).prompt.answer_tag
        preds = [extract_text(_answer(turns), tag) or "" for turns in outputs]  # SEA-HELM scores "" too
        clip = ctx.options.get("clip")
        if not clip:
            return [ItemScore(score=None, extracted=p, details={"not_scored": NO_CLIP}) for p in preds]
        from ..metrics.refclipscore import clip_scorer, refclip_from_features

        scorer = clip_scorer(str(clip))
        if str(clip) not in self._fixed:
            images = scorer.image_features([load_pil(it.extra["images"][0]) for it in items])
            refs = [scorer.text_features(list(it.label)) for it in items]
            self._fixed[str(clip)] = (images, refs)
        images, refs = self._fixed[str(clip)]
        per = refclip_from_features(images, scorer.text_features(preds), refs)
        return [ItemScore(score=p["refclipscore"], extracted=pred, details=p) for pred, p in zip(preds, per)]

    def task_metrics(self, spec, lang, items, scores):
        reason = next((s.details["not_scored"] for s in scores if "not_scored" in (s.details or {})), None)
        if reason:
            return {"not_scored": reason, "metric_used": "not scored"}
        n = len(scores) or 1
        clip_s = sum(s.details["clipscore"] for s in scores) / n
        ref_s = sum(s.details["refclipscore"] for s in scores) / n
        return {spec.metric: 100.0 * max(ref_s, 0.0), "refclipscore": ref_s, "clipscore": clip_s,
                "normalized_clipscore": 100.0 * max(clip_s, 0.0),
                "null_count": float(sum(1 for s in scores if not s.extracted))}

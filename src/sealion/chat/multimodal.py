"""Images, audio and video in Gemma 4 conversations -> model inputs.

`prepare_inputs(processor, tokenizer, messages)` renders the conversation (each media part becomes a placeholder),
loads every media part, runs it through the Gemma 4 image processor / audio feature extractor, and expands each
placeholder into the soft-token span the model fills with the encoder's output:
    image  -> <|image> + N x <|image|> + <image|>          N = patches / pooling², within the soft-token budget
    audio  -> <|audio> + M x <|audio|> + <audio|>          M = mel frames after two stride-2 convolutions
    video  -> "MM:SS <|image> + K x <|video|> + <image|>" per frame, joined by spaces
The result is a dict of tensors for `model(**inputs)` / the engine: input_ids, attention_mask, mm_token_type_ids,
pixel_values + image_position_ids, input_features + input_features_mask, pixel_values_videos + video_position_ids +
num_frames_per_video.

Media parts accepted (OpenAI and Hugging Face shapes):
    {"type": "image", "image": PIL.Image | path | bytes | "data:image/...;base64,..."} (or "url" / "path")
    {"type": "image_url", "image_url": {"url": "data:..." | path}}
    {"type": "audio", "audio": path | bytes | numpy array, "sampling_rate": 16000} (or "url" / "path"); WAV files
        (FLAC, MP3, Ogg where the optional `soundfile` package is installed)
    {"type": "input_audio", "input_audio": {"data": "<base64 wav>", "format": "wav"}}
    {"type": "video", "video": [frames...] | directory of frame images | animated GIF/WebP, "fps": 1.0}
Video files (mp4, ...) are not decoded here (no video decoder is installed); pass frames or an animation.
"""

from __future__ import annotations

import base64
import io
import math
import wave
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sealion.errors import SealionError

from .messages import MEDIA_PARTS, normalize
from .token_ids import render_prompt

SAMPLING_RATE = 16_000
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


class MediaError(SealionError):
    """A media part that cannot be loaded; the message names the message index and part (`param`, when known:
    `messages[i].content[j]`)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


# ------------------------------------------------------------------------------------------ loading

def _data_url_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise ValueError("only base64 data URLs are supported")
    return base64.b64decode(payload)


def _source(part: Mapping, key: str) -> Any:
    value = part.get(key)
    if isinstance(value, Mapping):  # OpenAI nesting: {"image_url": {"url": ...}}, {"input_audio": {"data": ...}}
        value = value.get("url", value.get("data"))
    for alt in ("url", "path", "data"):
        if value is None:
            value = part.get(alt)
    return value


def _bytes_from(value: Any) -> bytes | None:
    """Raw bytes for a path, data URL, bytes, or bare base64 string; None when it is none of those."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, Path):
        return value.read_bytes()
    if isinstance(value, str):
        if value.startswith("data:"):
            return _data_url_bytes(value)
        if value.startswith(("http://", "https://")):
            raise ValueError("remote URLs are not fetched; download the file and pass its path")
        path = Path(value[7:] if value.startswith("file://") else value).expanduser()
        try:
            if path.is_file():
                return path.read_bytes()
        except OSError:  # e.g. a long base64 payload is no valid file name
            pass
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise FileNotFoundError(f"no such file: {value[:200]}") from None
    return None


def load_image(value: Any):
    """A PIL RGB image from a PIL image, numpy array (H, W, C), path, bytes or base64 data URL."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, np.ndarray):
        array = value if value.dtype == np.uint8 else np.clip(value * 255 if value.max() <= 1 else value, 0, 255)
        return Image.fromarray(array.astype(np.uint8)).convert("RGB")
    raw = _bytes_from(value)
    if raw is None:
        raise ValueError(f"cannot read an image from {type(value).__name__}")
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image.convert("RGB")


def _read_wav(raw: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(raw)) as w:
        rate, width, channels, frames = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
        data = w.readframes(frames)
    if width == 1:
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = np.where(ints >= 1 << 23, ints - (1 << 24), ints).astype(np.float32) / float(1 << 23)
    elif width == 4:
        samples = np.frombuffer(data, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"unsupported WAV sample width {width}")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


def resample(samples: np.ndarray, rate: int, target: int = SAMPLING_RATE) -> np.ndarray:
    """Resample by linear interpolation (enough for speech features at 16 kHz)."""
    if rate == target or len(samples) == 0:
        return samples.astype(np.float32)
    n_out = int(round(len(samples) * target / rate))
    x_old = np.arange(len(samples)) / rate
    x_new = np.arange(n_out) / target
    return np.interp(x_new, x_old, samples).astype(np.float32)


def load_audio(value: Any, sampling_rate: int | None = None) -> np.ndarray:
    """Mono float32 samples at 16 kHz from a WAV path/bytes/base64, or an array (at `sampling_rate`)."""
    if isinstance(value, np.ndarray) or (isinstance(value, list) and value and isinstance(value[0], (int, float))):
        samples = np.asarray(value, dtype=np.float32)
        if samples.ndim > 1:
            samples = samples.mean(axis=-1) if samples.shape[-1] <= 8 else samples.mean(axis=0)
        return resample(samples, sampling_rate or SAMPLING_RATE)
    raw = _bytes_from(value)
    if raw is None:
        raise ValueError(f"cannot read audio from {type(value).__name__}")
    if raw[:4] == b"RIFF":
        samples, rate = _read_wav(raw)
    else:
        samples, rate = _decode_compressed(raw)
    return resample(samples, rate)


def audio_format(raw: bytes) -> str | None:
    """'wav', 'flac', 'mp3' or 'ogg' from the first bytes; None when it is none of those."""
    if raw[:4] == b"RIFF" and raw[8:12] == b"WAVE":
        return "wav"
    if raw[:4] == b"fLaC":
        return "flac"
    if raw[:4] == b"OggS":
        return "ogg"
    if raw[:3] == b"ID3" or (len(raw) > 1 and raw[0] == 0xFF and raw[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def compressed_audio_supported() -> bool:
    """Whether FLAC/MP3/Ogg can be decoded here (the optional `soundfile` package, libsndfile >= 1.1 for MP3)."""
    import importlib.util

    return importlib.util.find_spec("soundfile") is not None


def _decode_compressed(raw: bytes) -> tuple[np.ndarray, int]:
    kind = audio_format(raw)
    if kind is None:
        raise ValueError("not a WAV, FLAC, MP3 or Ogg file")
    if not compressed_audio_supported():
        raise ValueError(f"{kind} audio cannot be decoded here (install the `soundfile` package, or send WAV)")
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, soundfile.LibsndfileError) as e:
        raise ValueError(f"cannot decode {kind} audio: {e}") from None
    return samples.mean(axis=1), int(rate)


def load_video_frames(value: Any) -> tuple[list, list[float] | None]:
    """(frames as PIL images, their times in seconds or None) from a list of frames (images, arrays, paths), a
    directory of image files, or an animated GIF/WebP/PNG (frame times from its per-frame durations)."""
    from PIL import Image, ImageSequence

    if isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise ValueError(f"no frame images in directory {path}")
            return [load_image(p) for p in files], None
        if path.is_file() and path.suffix.lower() in (".gif", ".webp", ".png", ".apng"):
            frames, stamps, clock = [], [], 0.0
            with Image.open(path) as anim:
                for frame in ImageSequence.Iterator(anim):
                    frames.append(frame.convert("RGB"))
                    stamps.append(clock)
                    clock += (frame.info.get("duration") or 100) / 1000.0
            return frames, stamps
        raise ValueError("video files are not decoded here (no video decoder installed); pass a list of frames, "
                         "a directory of frame images or an animated GIF/WebP")
    if isinstance(value, np.ndarray) and value.ndim == 4:
        return [load_image(frame) for frame in value], None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not value:
            raise ValueError("a video needs at least one frame")
        return [load_image(frame) for frame in value], None
    raise ValueError(f"cannot read video frames from {type(value).__name__}")


def sample_frames(frames: list, stamps: list[float], max_frames: int) -> tuple[list, list[float]]:
    """At most `max_frames` frames, evenly spaced over the clip (first and last kept)."""
    if len(frames) <= max_frames:
        return frames, stamps
    picks = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
    return [frames[i] for i in picks], [stamps[i] for i in picks]


# ------------------------------------------------------------------------------------------ processors

def _components(processor: Any) -> tuple[Any, Any, Any]:
    """(image processor, audio feature extractor, video settings) from a processor, or Gemma 4 defaults."""
    image = getattr(processor, "image_processor", None) if processor is not None else None
    audio = getattr(processor, "feature_extractor", None) if processor is not None else None
    video = getattr(processor, "video_processor", None) if processor is not None else None
    if image is None:
        from transformers import Gemma4ImageProcessorPil

        image = Gemma4ImageProcessorPil()
    if audio is None:
        from transformers import Gemma4AudioFeatureExtractor

        audio = Gemma4AudioFeatureExtractor()
    return image, audio, video


def audio_soft_tokens(mask: np.ndarray, cap: int | None = None) -> int:
    """Soft tokens for one clip: the valid mel frames left after the encoder's two stride-2 convolutions."""
    mask = np.asarray(mask).astype(bool)
    for _ in range(2):
        t_out = (len(mask) + 2 - 3) // 2 + 1
        mask = mask[::2][:t_out]
    count = int(mask.sum())
    return min(count, cap) if cap else count


def _timestamp(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


# ------------------------------------------------------------------------------------------ the entry point

def _collect(messages: list[dict]) -> list[tuple[int, int, dict]]:
    """(message index, part index, part) for every media part, in prompt order."""
    found = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, Mapping) and part.get("type") in MEDIA_PARTS:
                    found.append((i, j, part))
    return found


def prepare_inputs(
    processor: Any,
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Any] | None = None,
    enable_thinking: bool = False,
    add_generation_prompt: bool = True,
    image_soft_tokens: int | None = None,
    video_soft_tokens: int | None = None,
    max_video_frames: int = 32,
    return_tensors: str = "pt",
) -> dict[str, Any]:
    """Model inputs (batch of one) for a conversation with images, audio and/or video parts.

    `processor` is a Gemma 4 processor (or anything with `image_processor` / `feature_extractor`), or None for
    the Gemma 4 defaults. `image_soft_tokens` / `video_soft_tokens` (70/140/280/560/1120) override the per-image
    and per-frame budgets; longer videos are sampled down to `max_video_frames` evenly spaced frames.
    """
    import torch

    clean = normalize(list(messages))
    image_proc, audio_proc, video_proc = _components(processor)
    media = _collect(clean)
    images, clips, videos = [], [], []
    for i, j, part in media:
        kind = MEDIA_PARTS[part["type"]]
        where = f"messages[{i}].content[{j}]"
        try:
            if kind == "image":
                images.append(load_image(_source(part, part["type"])))
            elif kind == "audio":
                clips.append(load_audio(_source(part, part["type"]), part.get("sampling_rate")))
            else:
                frames, stamps = load_video_frames(_source(part, "video"))
                if part.get("timestamps"):
                    stamps = [float(t) for t in part["timestamps"]]
                elif stamps is None or part.get("fps"):
                    fps = float(part.get("fps") or 1.0)  # frames given one by one: 1 per second unless told
                    stamps = [k / fps for k in range(len(frames))]
                videos.append(sample_frames(frames, stamps, max_video_frames))
        except (OSError, ValueError) as e:
            raise MediaError(f"{where}: cannot load {kind}: {e}", param=where) from None

    out: dict[str, Any] = {}
    image_spans: list[str] = []
    if images:
        budget = image_soft_tokens or getattr(image_proc, "max_soft_tokens", 280)
        feats = image_proc(images, max_soft_tokens=budget, return_tensors="pt")
        out["pixel_values"] = feats["pixel_values"]
        out["image_position_ids"] = feats["image_position_ids"]
        image_spans = [f"<|image>{'<|image|>' * int(n)}<image|>" for n in feats["num_soft_tokens_per_image"]]
    audio_spans: list[str] = []
    if clips:
        feats = audio_proc(clips, sampling_rate=SAMPLING_RATE, return_tensors="pt")
        out["input_features"] = feats["input_features"]
        out["input_features_mask"] = feats["input_features_mask"]
        cap = getattr(processor, "audio_seq_length", None) or 750
        audio_spans = [f"<|audio>{'<|audio|>' * audio_soft_tokens(m, cap)}<audio|>"
                       for m in feats["input_features_mask"].numpy()]
    video_spans: list[str] = []
    if videos:
        budget = video_soft_tokens or getattr(video_proc, "max_soft_tokens", None) or 70
        all_frames = [frame for frames, _ in videos for frame in frames]
        feats = image_proc(all_frames, max_soft_tokens=budget, return_tensors="pt")
        out["pixel_values_videos"] = feats["pixel_values"]
        out["video_position_ids"] = feats["image_position_ids"]
        out["num_frames_per_video"] = torch.tensor([len(frames) for frames, _ in videos])
        counts = iter(feats["num_soft_tokens_per_image"])
        for frames, stamps in videos:
            video_spans.append(" ".join(f"{_timestamp(t)} <|image>{'<|video|>' * int(next(counts))}<image|>"
                                        for t in stamps[:len(frames)]))

    # the one renderer; only its own media markers widen into soft-token spans (a marker typed as text stays text)
    spans = {"<|image|>": image_spans, "<|audio|>": audio_spans, "<|video|>": video_spans}
    prompt = render_prompt(tokenizer, clean, tools=tools, enable_thinking=enable_thinking,
                           add_generation_prompt=add_generation_prompt, expand=lambda text: _expand(text, spans))
    ids = torch.tensor([prompt.ids])
    out["input_ids"] = ids
    out["attention_mask"] = torch.ones_like(ids)
    out["mm_token_type_ids"] = _token_types(tokenizer, ids)
    _check_counts(tokenizer, ids, image_spans, audio_spans, out)
    if return_tensors != "pt":
        out = {k: v.numpy() if hasattr(v, "numpy") else v for k, v in out.items()}
    return out


def _expand(prompt: str, spans: dict[str, list[str]]) -> str:
    """Replace each placeholder occurrence, in order, by its soft-token span."""
    pieces: list[str] = []
    pos = 0
    queues = {token: list(reversed(items)) for token, items in spans.items()}
    while True:
        hits = [(prompt.find(token, pos), token) for token in spans if prompt.find(token, pos) >= 0]
        if not hits:
            break
        at, token = min(hits)
        pieces.append(prompt[pos:at])
        if not queues[token]:
            raise MediaError(f"the prompt has more {token} placeholders than media parts")
        pieces.append(queues[token].pop())
        pos = at + len(token)
    pieces.append(prompt[pos:])
    left = {token: len(q) for token, q in queues.items() if q}
    if left:
        raise MediaError(f"media parts without a placeholder in the rendered prompt: {left}")
    return "".join(pieces)


def _token_id(tokenizer: Any, token: str) -> int | None:
    tid = tokenizer.convert_tokens_to_ids(token)
    return None if tid is None or tid == getattr(tokenizer, "unk_token_id", None) else int(tid)


def _token_types(tokenizer: Any, ids):
    """0 text, 1 image soft token, 2 video soft token, 3 audio soft token (transformers' convention)."""
    import torch

    types = torch.zeros_like(ids)
    for token, kind in (("<|image|>", 1), ("<|video|>", 2), ("<|audio|>", 3)):
        tid = _token_id(tokenizer, token)
        if tid is not None:
            types[ids == tid] = kind
    return types


def _check_counts(tokenizer: Any, ids, image_spans: list[str], audio_spans: list[str], out: dict) -> None:
    """Every soft token must be one token id, or the model's feature scatter fails far from the cause."""
    for token, spans in (("<|image|>", image_spans), ("<|audio|>", audio_spans)):
        if not spans:
            continue
        tid = _token_id(tokenizer, token)
        expected = sum(span.count(token) for span in spans)
        if tid is None or int((ids == tid).sum()) != expected:
            raise MediaError(f"the tokenizer does not encode {token} as one special token; "
                             "is this a Gemma 4 tokenizer?")


def soft_token_budget(height: int, width: int, *, patch_size: int = 16, pooling: int = 3,
                      max_soft_tokens: int = 280) -> int:
    """Soft tokens an image of this size gets (aspect ratio kept, within the budget)."""
    max_patches = max_soft_tokens * pooling ** 2
    factor = math.sqrt(max_patches * patch_size ** 2 / (height * width))
    side = pooling * patch_size
    h = int(math.floor(factor * height / side)) * side
    w = int(math.floor(factor * width / side)) * side
    if h == 0:
        h, w = side, min(int(width // height) * side, (max_patches // pooling ** 2) * side)
    elif w == 0:
        w, h = side, min(int(height // width) * side, (max_patches // pooling ** 2) * side)
    return (h // patch_size) * (w // patch_size) // pooling ** 2

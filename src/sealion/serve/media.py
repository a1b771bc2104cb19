"""Image and audio parts of a chat request, checked and decoded before they reach the engine.

Each OpenAI part becomes the chat layer's part with the media already decoded (a PIL image, 16 kHz samples), so
every problem is a 400 naming the wire part (`messages[i].content[j]`): a bad data URL, an undecodable image or
audio clip, an unsupported audio format, media over `max_media_bytes`, more parts than `max_media_parts`, and a
file path or http(s) URL when the server was not started with `allow_media_paths`. This runs in a worker thread
(the caller's job): decoding must not stall the event loop for other clients.
"""

from __future__ import annotations

import base64
import binascii
import urllib.error
import urllib.request
import wave
from pathlib import Path
from typing import Any

from . import protocol as P
from .state import ApiError, ServeConfig

AUDIO_FORMATS = ("wav", "mp3", "flac")  # OpenAI's input_audio.format values we read (mp3/flac need soundfile)


def media_parts(messages: list[P.Message]) -> list[str]:
    """`messages[i].content[j]` of every image or audio part, in order."""
    return [f"messages[{i}].content[{j}]" for i, m in enumerate(messages) if isinstance(m.content, list)
            for j, part in enumerate(m.content) if not isinstance(part, P.TextPart)]


def to_media_messages(messages: list[P.Message], config: ServeConfig) -> list[dict[str, Any]]:
    """The request's messages for `LocalEngine.media_prompt`: text parts as text, media parts decoded."""
    found = media_parts(messages)
    if len(found) > config.max_media_parts:
        raise ApiError(400, f"{found[config.max_media_parts]}: the request has {len(found)} image/audio parts; "
                       f"this server accepts at most {config.max_media_parts}", param=found[config.max_media_parts],
                       code="too_many_media_parts")
    out = P.to_chat_messages(messages)
    for i, m in enumerate(messages):
        if not isinstance(m.content, list) or not m.has_media():
            continue
        parts: list[dict[str, Any]] = []
        for j, part in enumerate(m.content):
            where = f"messages[{i}].content[{j}]"
            if isinstance(part, P.TextPart):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, P.ImagePart):
                parts.append({"type": "image", "image": _image(_image_bytes(part.image_url.url, where, config),
                                                               where)})
            else:
                parts.append({"type": "audio", "audio": _audio(part.input_audio, where, config),
                              "sampling_rate": 16_000})
        out[i]["content"] = parts
    return out


def _bad(where: str, message: str, code: str = "invalid_media") -> ApiError:
    return ApiError(400, f"{where}: {message}", param=where, code=code)


def _too_big(where: str, size: int, config: ServeConfig) -> ApiError:
    return _bad(where, f"the media is {size} bytes; this server accepts at most {config.max_media_bytes} "
                "(--max-media-mb)", code="media_too_large")


def _base64(payload: str, where: str, config: ServeConfig) -> bytes:
    if len(payload) * 3 // 4 > config.max_media_bytes + 3:  # refused before decoding
        raise _too_big(where, len(payload) * 3 // 4, config)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(where, "the data is not valid base64") from None
    if not raw:
        raise _bad(where, "the media is empty")
    return raw


def _image_bytes(url: str, where: str, config: ServeConfig) -> bytes:
    if url.startswith("data:"):
        header, comma, payload = url.partition(",")
        if not comma or ";base64" not in header:
            raise _bad(where, "a data URL must be base64 ('data:image/png;base64,...')")
        return _base64(payload, where, config)
    if not config.allow_media_paths:
        kind = "http(s) URLs" if url.startswith(("http://", "https://")) else "file paths"
        raise _bad(where, f"{kind} are not accepted by this server (start it with --allow-media-paths); send the "
                   "image as a base64 data URL", code="media_path_not_allowed")
    if url.startswith(("http://", "https://")):
        return _fetch(url, where, config)
    path = Path(url[7:] if url.startswith("file://") else url).expanduser()
    try:
        size = path.stat().st_size
        if size > config.max_media_bytes:
            raise _too_big(where, size, config)
        return path.read_bytes()
    except OSError as e:
        raise _bad(where, f"cannot read {str(path)[:200]}: {e.strerror or e}") from None


def _fetch(url: str, where: str, config: ServeConfig) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=config.media_fetch_timeout) as response:  # noqa: S310 - opt-in
            raw = response.read(config.max_media_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _bad(where, f"cannot fetch {url[:200]}: {getattr(e, 'reason', e)}") from None
    if len(raw) > config.max_media_bytes:
        raise _too_big(where, len(raw), config)
    return raw


def _image(raw: bytes, where: str):
    from PIL import Image, UnidentifiedImageError

    from sealion.chat.multimodal import load_image

    try:
        return load_image(raw)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise _bad(where, f"cannot decode the image: {str(e)[:200]}") from None


def _audio(part: P.InputAudio, where: str, config: ServeConfig):
    from sealion.chat.multimodal import audio_format, compressed_audio_supported, load_audio

    fmt = part.format.lower()
    if fmt not in AUDIO_FORMATS:
        raise _bad(where, f"input_audio.format {part.format!r} is not supported (use one of: "
                   f"{', '.join(AUDIO_FORMATS)})", code="unsupported_media_format")
    if fmt != "wav" and not compressed_audio_supported():
        raise _bad(where, f"{fmt} audio is not supported by this server (no decoder installed); send wav",
                   code="unsupported_media_format")
    raw = _base64(part.data, where, config)
    found = audio_format(raw)
    if found != fmt:
        raise _bad(where, f"input_audio.format is {fmt!r} but the data is {found or 'not audio of a known format'}")
    try:
        return load_audio(raw)
    except (OSError, ValueError, EOFError, wave.Error) as e:
        raise _bad(where, f"cannot decode the audio: {str(e)[:200]}") from None

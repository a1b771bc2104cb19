"""Image values of vision rows -> checked bytes, data URLs and digests.

Rows hold images as the hub stores them (``{"bytes": ..., "path": ...}`` structs of an ``Image`` column), raw
bytes, PIL images, base64 data URLs or file paths (relative paths resolve against the data file's folder). Every
image is decoded once when the rows are read, so a bad one is a one-line `DataError` naming the file and row before
any model loads.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

from ...errors import DataError


def image_bytes(value: Any, *, base: Path | None, where: str) -> bytes:
    """The encoded image (PNG/JPEG/... bytes) of one row value; `where` names the file and row for errors."""
    if isinstance(value, dict):  # datasets' Image struct: bytes when embedded, else a path
        raw = value.get("bytes")
        value = raw if raw else value.get("path")
    if value is None or value == "" or value == b"":
        raise DataError(f"{where}: the image is empty")
    try:
        from PIL import Image

        if isinstance(value, Image.Image):
            buf = io.BytesIO()
            value.save(buf, format="PNG")
            raw = buf.getvalue()
        elif isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
        elif isinstance(value, str) and value.startswith("data:"):
            raw = base64.b64decode(value.partition(",")[2], validate=True)
        elif isinstance(value, (str, Path)):
            path = Path(value).expanduser()
            if not path.is_absolute() and base is not None:
                path = base / path
            if not path.is_file():
                raise DataError(f"{where}: image file {path} does not exist")
            raw = path.read_bytes()
        else:
            raise DataError(f"{where}: cannot read an image from a {type(value).__name__}")
        check_image(raw, where)
        return raw
    except DataError:
        raise
    except Exception as e:  # bad base64, unreadable file
        raise DataError(f"{where}: cannot read the image ({type(e).__name__}: {str(e)[:120]})") from None


def check_image(raw: bytes, where: str) -> None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
    except Exception as e:
        raise DataError(f"{where}: the image cannot be decoded ({type(e).__name__}: {str(e)[:120]})") from None


def mime_type(raw: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as im:
        fmt = (im.format or "png").lower()
    return f"image/{'jpeg' if fmt == 'jpg' else fmt}"


def data_url(raw: bytes) -> str:
    return f"data:{mime_type(raw)};base64,{base64.b64encode(raw).decode('ascii')}"


def digest(raw: bytes) -> str:
    """What stands for an image in cache keys and logged prompts (the bytes themselves would bloat both)."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:24]


def load_pil(raw: bytes):
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as im:
        return im.convert("RGB")
